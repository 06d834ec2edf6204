using System.CommandLine;
using Replayer.Core;
using Replayer.Formats;
using Replayer.Formats.Schema;
using Replayer.Formats.Writers;
using Replayer.Replay;
using Replayer.Report;

namespace Replayer.Cli.Commands;

/// <summary><c>replayer convert FILE|capture-&lt;id&gt; --to jsonl|ftrace|perf-script|chrome -o OUT</c>.</summary>
public static class ConvertCommand
{
    public static readonly string[] Formats = ["jsonl", "ftrace", "perf-script", "chrome", "trace.dat"];

    public static Command Create()
    {
        var file = new Argument<string>("file") { Description = "Trace file in any supported format, or a stored capture (capture-<id> or its hex id)" };
        var to = new Option<string>("--to")
        {
            Description = "Output format: jsonl (canonical JSON lines), ftrace (trace-cmd report style text), perf-script (perf script text), "
                + "chrome (Chrome Trace Event JSON for the Perfetto UI / chrome://tracing: CPU tracks, migration slices, FILE_MAPPED counters, findings)",
            Required = true,
        };
        var output = new Option<string>("--output", "-o") { Description = "Output file ('-' for stdout)", Required = true };
        var lenient = new Option<bool>("--lenient") { Description = "Count lines that are not understood instead of stopping at the first one" };
        var sort = new Option<bool>("--sort") { Description = "Write events in timestamp order (bounded reorder window)" };
        var window = new Option<int>("--window") { Description = "Reorder window in events for --sort", DefaultValueFactory = _ => TimeSorter.DefaultWindow };
        var horizon = new Option<double>("--horizon-ms") { Description = "For --sort: release an event once the input is this far past it (0: window only)", DefaultValueFactory = _ => TimeSorter.DefaultHorizonNs / 1e6 };
        var era = new Option<string?>("--era") { Description = "For --to chrome: force the kernel era (2.6.34, 2.6.35, 6.1, 6.12, 6.13)" };
        var store = IngestCommand.StoreOption();
        var cmd = new Command("convert", "Convert a trace (or a stored capture) to canonical JSONL, trace-cmd report style text, perf script text or Chrome Trace Event JSON")
            { file, to, output, lenient, sort, window, horizon, era, store };
        cmd.SetAction(pr => CliRunner.Run(() => Run(pr.GetValue(file)!, pr.GetValue(to)!, pr.GetValue(output)!, !pr.GetValue(lenient), pr.GetValue(sort), pr.GetValue(window),
            (long)(pr.GetValue(horizon) * 1e6), pr.GetValue(store), pr.GetValue(era))));
        return cmd;
    }

    public static int Run(string path, string to, string outPath, bool strict, bool sort, int window, long horizonNs = TimeSorter.DefaultHorizonNs,
        string? storeSpec = null, string? era = null)
    {
        to = to.ToLowerInvariant();
        if (to == "perf") to = "perf-script";
        if (!Formats.Contains(to)) throw new UsageException($"--to {to}: expected {string.Join(", ", Formats)}");
        if (sort && window < 1) throw new UsageException("--window must be at least 1");
        if (sort && horizonNs < 0) throw new UsageException("--horizon-ms must not be negative");
        var forced = CheckCommand.ParseEra(era);
        StoredCapture? stored = null;
        if (StoredCapture.Names(path)) stored = StoredCapture.Open(storeSpec, path);
        else if (!File.Exists(path)) throw new UsageException($"{path}: no such file");
        using var _ = stored;
        string? tracePath = stored != null ? stored.TracePath : path;
        var capture = tracePath != null ? CaptureContext.Discover(tracePath) : CaptureContext.None;
        bool toStdout = outPath == "-";
        long events = 0, lossy = 0;
        try
        {
            ITraceReader Open() => stored?.OpenReader() ?? TraceOpener.Open(path, new TraceOpenOptions { Strict = strict, Capture = capture });
            using ITraceReader reader = sort ? new TimeSorter(Open(), window, horizonNs) : Open();
            using var os = toStdout ? Console.OpenStandardOutput() : new FileStream(outPath, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 16);
            string extra = "";
            switch (to)
            {
                case "jsonl":
                {
                    using var w = new JsonlWriter(os, leaveOpen: true);
                    var first = reader.Read(); // text headers (cpus=, #P:) come before the first event
                    w.WriteHeader(reader.Format, reader.Header);
                    for (var e = first; e != null; e = reader.Read()) w.Write(e);
                    events = w.Events;
                    break;
                }
                case "ftrace":
                case "perf-script":
                {
                    using Replayer.Formats.Writers.ITraceTextWriter w = to == "ftrace"
                        ? new FtraceTextWriter(os, capture.BuildRegistry(), leaveOpen: true)
                        : new PerfScriptWriter(os, capture.BuildRegistry(), leaveOpen: true);
                    var first = reader.Read(); // text headers (cpus=, #P:) come before the first event
                    w.WriteHeader(reader.Header);
                    for (var e = first; e != null; e = reader.Read()) w.Write(e);
                    events = w.Events;
                    lossy = w.LossyEvents;
                    break;
                }
                case "trace.dat":
                {
                    var first = reader.Read(); // text headers (cpus=) come before the first event
                    using var w = new Replayer.Formats.Binary.TraceDatWriter(os, Replayer.Formats.Binary.TraceDatWriterSetup.From(capture, reader), leaveOpen: true);
                    for (var e = first; e != null; e = reader.Read()) w.Write(e);
                    w.Finish();
                    events = w.Events;
                    lossy = w.LossyEvents;
                    if (lossy > 0) extra = "; lossy by reason: " + string.Join(", ", w.Lossy.Select(kv => kv.Key + " " + kv.Value + (w.LossyExamples.TryGetValue(kv.Key, out var ex) ? " (e.g. " + ex + ")" : "")));
                    break;
                }
                default:
                {
                    var input = new ReportInput
                    {
                        Name = stored?.StreamName ?? path, Reader = reader, TracePath = tracePath, Context = stored?.Context, Era = forced,
                        GroundTruth = stored != null ? GroundTruthData.FromFiles(stored.GroundTruthFiles) : GroundTruthData.FromDirectory(path),
                    };
                    var data = ReportCommand.Guard(() => ChromeExport.Write(input, os));
                    events = data.Timeline.TraceEvents;
                    extra = $"; era {data.Audit.Era}, {data.Timeline.AttemptsBegun} migration attempt(s), {data.Audit.Findings.Length} finding(s)";
                    break;
                }
            }
            Console.Error.WriteLine($"replayer: {events} events from {reader.SourceName} ({reader.Format}) written to {(toStdout ? "stdout" : outPath)} as {to}{extra}"
                + (reader.Stats.UnparsedLines > 0 ? $"; {reader.Stats.UnparsedLines} unparsed line(s) skipped" : "")
                + (lossy > 0 ? $"; {lossy} event(s) the {to} format cannot carry exactly" + (to == "trace.dat" ? "" : " (newlines or ambiguous strings)") : ""));
        }
        catch
        {
            if (!toStdout) try { File.Delete(outPath); } catch (IOException) { }
            throw;
        }
        return ExitCodes.Ok;
    }
}
