using AscendCC.Server;
using AscendCC.Server.Plain;
using Microsoft.Extensions.AI;

WebApplicationBuilder builder = WebApplication.CreateBuilder(args);
builder.Services.Configure<NpuServerOptions>(builder.Configuration.GetSection(NpuServerOptions.Section));
builder.Services.AddProblemDetails();
builder.Services.AddExceptionHandler<ProblemExceptionHandler>();
// The NPUs: a test or a deployment registers the NpuHardware it got from the manufacturer; with
// Npu:Simulate the server plays the factory itself (development only; see docs/server.md).
builder.Services.AddSingleton(sp => DevelopmentFactory.HardwareFromConfiguration(sp));
builder.Services.AddSingleton<NpuFleet>();
// CC off only: the plaintext chat behind the OpenAI endpoints (never mapped with CC on).
builder.Services.AddSingleton<IChatClient>(sp => DeviceChatClient.Create(sp.GetRequiredService<NpuFleet>()));

WebApplication app = builder.Build();
app.UseExceptionHandler();
app.UseStatusCodePages();
// Boot the devices before the first request (readiness reports them).
NpuFleet fleet = app.Services.GetRequiredService<NpuFleet>();
app.MapNpuEndpoints(fleet.Options.Confidential);
app.Run();

/// <summary>The server's entry point (public for WebApplicationFactory).</summary>
public partial class Program;
