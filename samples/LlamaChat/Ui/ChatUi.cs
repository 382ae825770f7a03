using AscendCC.Runtime.Trusted.Verification;
using Microsoft.Extensions.Logging;
using Spectre.Console;

namespace LlamaChat.Ui;

/// <summary>
/// The terminal: each party's step with its evidence, verifier checks, progress bars, and the reply
/// stream. The reply goes to its own writer so a one-shot run can pipe just the answer.
/// </summary>
internal sealed class ChatUi
{
    private readonly IAnsiConsole _console;
    private readonly IAnsiConsole _errors;
    private readonly TextWriter _reply;

    /// <param name="console">Steps, evidence, progress and warnings.</param>
    /// <param name="errors">Errors: always standard error, so a script sees them apart from the chat and the reply.</param>
    /// <param name="reply">The reply stream.</param>
    /// <param name="logger">Diagnostics (--verbose).</param>
    public ChatUi(IAnsiConsole console, IAnsiConsole errors, TextWriter reply, ILogger logger)
    {
        _console = console;
        _errors = errors;
        _reply = reply;
        Logger = logger;
    }

    /// <summary>Diagnostics shown with --verbose.</summary>
    public ILogger Logger { get; }

    /// <summary>
    /// --quiet: no party steps, no evidence and, for an attestation that passed, one summary line
    /// instead of every check. A failed attestation, warnings and errors are always shown in full.
    /// </summary>
    public bool Quiet { get; init; }

    /// <summary>
    /// Whether the console is a terminal. Off a terminal (a pipe, a file, CI) a progress bar renders
    /// nothing until it ends, so <see cref="Progress{T}"/> writes plain lines instead.
    /// </summary>
    public bool Terminal { get; init; } = true;

    /// <summary>Least time between two progress lines off a terminal.</summary>
    public TimeSpan PlainProgressInterval { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>Ctrl-C presses: the reply loop stops when one arrives.</summary>
    public ReplyInterrupt Interrupt { get; init; } = new();

    public IAnsiConsole Console => _console;

    /// <summary>A party starts a step.</summary>
    public void Step(string party, string what)
    {
        if (!Quiet)
        {
            _console.MarkupLine($"[bold deepskyblue1]{Spectre.Console.Markup.Escape(party)}[/] [grey]>[/] {Spectre.Console.Markup.Escape(what)}");
        }
        Logger.LogDebug("{Party}: {Step}", party, what);
    }

    /// <summary>A piece of evidence for the step.</summary>
    public void Evidence(string label, string value)
    {
        if (!Quiet)
        {
            _console.MarkupLine($"    [grey]{Spectre.Console.Markup.Escape(label)}:[/] [white]{Spectre.Console.Markup.Escape(value)}[/]");
        }
    }

    /// <summary>Every named check <paramref name="verifier"/>'s verifier made, with pass/fail.</summary>
    public void Checks(string verifier, AttestationResult result)
    {
        ArgumentNullException.ThrowIfNull(result);
        bool summary = Quiet && result.PolicySatisfied;
        if (summary)
        {
            AscendCC.Protocol.Attestation.AttestationReport? report = result.Report;
            _console.MarkupLine(Spectre.Console.Markup.Escape(
                $"{verifier}: NPU attested, all {result.Checks.Count} checks passed (firmware {report?.FirmwareVersion} SVN {report?.FirmwareSvn}, CC {report?.CcMode}, debug {report?.DebugState})"));
        }
        foreach (CheckResult check in result.Checks)
        {
            Logger.LogDebug("{Verifier} attestation check {Check}: {Verdict} ({Detail})", verifier, check.Check, check.Passed ? "PASS" : "FAIL", check.Detail);
            if (summary)
            {
                continue;
            }
            string mark = check.Passed ? "[green]PASS[/]" : "[red]FAIL[/]";
            _console.MarkupLine($"    {mark} {Spectre.Console.Markup.Escape(check.Check.ToString())} [grey]{Spectre.Console.Markup.Escape(check.Detail)}[/]");
        }
        if (!summary)
        {
            _console.MarkupLine(result.PolicySatisfied ? "    [green]policy satisfied[/]" : "    [red]policy NOT satisfied[/]");
        }
        Logger.LogInformation("{Verifier} attestation: {Passed} of {Total} checks passed, policy {Verdict}", verifier, result.Checks.Count(c => c.Passed), result.Checks.Count, result.PolicySatisfied ? "satisfied" : "NOT satisfied");
    }

    public void Warning(string text) => _console.MarkupLine($"[yellow]{Spectre.Console.Markup.Escape(text)}[/]");

    /// <summary>Something the chat did on the user's behalf (e.g. dropped old turns): always on standard error.</summary>
    public void Notice(string text) => _errors.MarkupLine($"[yellow]{Spectre.Console.Markup.Escape(text)}[/]");

    public void Error(string text) => _errors.MarkupLine($"[red]error:[/] {Spectre.Console.Markup.Escape(text)}");

    public void Info(string text) => _console.MarkupLine($"[grey]{Spectre.Console.Markup.Escape(text)}[/]");

    public void Line(string markup) => _console.MarkupLine(markup);

    /// <summary>Runs <paramref name="work"/> under a progress bar of <paramref name="total"/> units; work reports (done, description).</summary>
    public T Progress<T>(string label, double total, Func<Action<double, string?>, T> work)
    {
        ArgumentNullException.ThrowIfNull(work);
        if (!Terminal)
        {
            return PlainProgress(label, total, work);
        }
        T result = default!;
        _console.Progress()
            .AutoClear(false)
            .HideCompleted(false)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(), new RemainingTimeColumn())
            .Start(ctx =>
            {
                ProgressTask task = ctx.AddTask(Spectre.Console.Markup.Escape(label), maxValue: Math.Max(1, total));
                result = work((done, description) =>
                {
                    task.Value = done;
                    if (description is not null)
                    {
                        task.Description = Spectre.Console.Markup.Escape($"{label} {description}");
                    }
                });
                task.Value = task.MaxValue;
            });
        return result;
    }

    /// <summary>
    /// Progress as lines: one when the work starts, then at most one per tenth of the work and at least
    /// <see cref="PlainProgressInterval"/> apart, then one when it ends — so a log shows a long first run is working, without a line
    /// per step.
    /// </summary>
    private T PlainProgress<T>(string label, double total, Func<Action<double, string?>, T> work)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        _console.WriteLine($"{label}: started");
        TimeSpan last = TimeSpan.Zero;
        double lastDone = 0;
        double max = Math.Max(1, total);
        T result = work((done, description) =>
        {
            TimeSpan now = clock.Elapsed;
            if (done - lastDone >= max / 10 && now - last >= PlainProgressInterval)
            {
                last = now;
                lastDone = done;
                _console.WriteLine($"{label}: {description ?? $"{done:F0}/{max:F0}"} ({100 * done / max:F0}%, {now.TotalSeconds:F0} s)");
            }
        });
        _console.WriteLine($"{label}: done in {clock.Elapsed.TotalSeconds:F1} s");
        return result;
    }

    /// <summary>Runs <paramref name="work"/> under a spinner (for steps that report no progress).</summary>
    public T Status<T>(string label, Func<T> work)
    {
        ArgumentNullException.ThrowIfNull(work);
        T result = default!;
        _console.Status().Start(Spectre.Console.Markup.Escape(label), _ => result = work());
        return result;
    }

    /// <summary>Streams reply text as it is decoded.</summary>
    public void ReplyText(string text)
    {
        _reply.Write(text);
        _reply.Flush();
    }

    public void ReplyEnd() => _reply.WriteLine();
}
