using System.Net;
using System.Text;
using System.Text.Json;
using AscendCC.Runtime.Models;
using AscendCC.Runtime.Models.Gguf;
using AscendCC.Runtime.Tests.Models;
using AscendCC.Runtime.Tokenizers;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using NUnit.Framework;

namespace AscendCC.Server.Tests;

/// <summary>
/// A CC-off host serving a llama.cpp-style .gguf (<c>Npu:Model</c>): by default its weights go to the NPUs
/// in the precision the file stores (<c>Npu:Weights</c> unset), here Q4_K, which fits an HBM the same
/// model in F32 does not; <c>Npu:Weights=F32</c> on that HBM fails at startup.
/// </summary>
[NonParallelizable]
public sealed class PlainGgufServerTests
{
    private static WebApplicationFactory<Program> Start(string model, string store, string? weights, string? kvCache = null) =>
        new WebApplicationFactory<Program>().WithWebHostBuilder(b =>
        {
            b.UseSetting("Npu:Simulate", "true");
            b.UseSetting("Npu:Confidential", "false");
            b.UseSetting("Npu:Model", model);
            b.UseSetting("Npu:MaxContext", "64");
            b.UseSetting("Npu:MaxSequences", "1");
            b.UseSetting("Npu:ModelStore", store);
            // 4 MiB: the random model's matrices are 7.3 MB in F32, 1.2 MB as Q4_K (embedding and output Q8_0).
            b.UseSetting("Npu:HbmCapacity", (4L << 20).ToString(System.Globalization.CultureInfo.InvariantCulture));
            if (weights is not null)
            {
                b.UseSetting("Npu:Weights", weights);
            }
            if (kvCache is not null)
            {
                b.UseSetting("Npu:KvCache", kvCache);
            }
        });

    /// <summary>The random 256-wide Llama (heads of 64) as a Q4_K GGUF, "random-q4_k.gguf".</summary>
    private static string WriteRandomQ4_K(TempFolder temp)
    {
        string folder = RandomLlamaCheckpoint.WriteFolder(temp.File("random"), seed: 4096, edgeBlocks: false);
        string gguf = temp.File("random-q4_k.gguf");
        using (var checkpoint = ModelCheckpoint.Open(folder))
        {
            GgufWriter.WriteLlama(gguf, checkpoint, TextTokenizer.Load(folder), GgufTensorType.Q4_K);
        }
        return gguf;
    }

    private static async Task<JsonDocument> CompleteAsync(HttpClient http)
    {
        using var body = new StringContent("""{"model":"random-q4_k.gguf","messages":[{"role":"user","content":"Once upon a time"}],"temperature":0,"max_tokens":8}""", Encoding.UTF8, "application/json");
        using HttpResponseMessage response = await http.PostAsync("/v1/chat/completions", body);
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK), await response.Content.ReadAsStringAsync());
        return JsonDocument.Parse(await response.Content.ReadAsStringAsync());
    }

    /// <summary>Npu:KvCache=Q8_0 serves a model whose heads are whole 32-blocks, and stops the startup of one whose heads are not, naming the head dimension.</summary>
    [Test]
    public async Task A_q8_0_kv_cache_is_served_where_the_heads_are_whole_blocks()
    {
        using var temp = new TempFolder();
        string gguf = WriteRandomQ4_K(temp);
        string store = temp.File("store");
        using (WebApplicationFactory<Program> factory = Start(gguf, store, weights: null, kvCache: "Q8_0"))
        {
            using HttpClient http = factory.CreateClient();
            using JsonDocument completion = await CompleteAsync(http);
            Assert.That(completion.RootElement.GetProperty("usage").GetProperty("completion_tokens").GetInt32(), Is.GreaterThan(0));
        }
        using (WebApplicationFactory<Program> factory = Start(AscendCC.Tests.TestData.RequireModel("stories260K"), store, weights: null, kvCache: "Q8_0"))
        {
            Exception? e = Assert.Catch(() => factory.CreateClient());
            Assert.That(e!.ToString(), Does.Contain("head dimension is 8").And.Contain("KvCachePrecision.F16"));
        }
    }

    [Test]
    public async Task A_gguf_is_served_in_the_precision_it_stores()
    {
        using var temp = new TempFolder();
        string gguf = WriteRandomQ4_K(temp);
        string store = temp.File("store");
        using (WebApplicationFactory<Program> factory = Start(gguf, store, weights: null))
        {
            using HttpClient http = factory.CreateClient();
            using JsonDocument completion = await CompleteAsync(http);
            Assert.That(completion.RootElement.GetProperty("usage").GetProperty("completion_tokens").GetInt32(), Is.GreaterThan(0));
        }
        using (WebApplicationFactory<Program> factory = Start(gguf, store, weights: "F32"))
        {
            Exception? e = Assert.Catch(() => factory.CreateClient(), "the same model in F32 does not fit the 4 MiB HBM");
            Assert.That(e!.ToString(), Does.Contain("HBM exhausted"));
        }
        // A precision stories260K's widths cannot hold stops the startup, naming the ones that fit.
        using (WebApplicationFactory<Program> factory = Start(AscendCC.Tests.TestData.RequireModel("stories260K"), store, weights: "Q8_0"))
        {
            Exception? e = Assert.Catch(() => factory.CreateClient());
            Assert.That(e!.ToString(), Does.Contain("Npu:Weights Q8_0").And.Contain("not whole blocks of 32; the precisions that hold every matrix: bf16, f16, f32"));
        }
    }
}
