using System.CommandLine;
using Replayer.Core;
using Replayer.Formats;
using Replayer.Formats.Schema;

namespace Replayer.Cli.Commands;

/// <summary><c>replayer convert FILE --to jsonl|ftrace -o OUT</c>.</summary>
public static class ConvertCommand
{
    public static Command Create()
    {
        var file = new Argument<string>("file") { Description = "Trace file in any supported format" };
        var to = new Option<string>("--to") { Description = "Output format: jsonl (canonical JSON lines) or ftrace (trace-cmd report style text)", Required = true };
        var output = new Option<string>("--output", "-o") { Description = "Output file ('-' for stdout)", Required = true };
        var lenient = new Option<bool>("--lenient") { Description = "Count lines that are not understood instead of stopping at the first one" };
        var sort = new Option<bool>("--sort") { Description = "Write events in timestamp order (bounded reorder window)" };
        var window = new Option<int>("--window") { Description = "Reorder window in events for --sort", DefaultValueFactory = _ => TimeSorter.DefaultWindow };
        var horizon = new Option<double>("--horizon-ms") { Description = "For --sort: release an event once the input is this far past it (0: window only)", DefaultValueFactory = _ => TimeSorter.DefaultHorizonNs / 1e6 };
        var cmd = new Command("convert", "Convert a trace to canonical JSONL or to trace-cmd report style text") { file, to, output, lenient, sort, window, horizon };
        cmd.SetAction(pr => CliRunner.Run(() => Run(pr.GetValue(file)!, pr.GetValue(to)!, pr.GetValue(output)!, !pr.GetValue(lenient), pr.GetValue(sort), pr.GetValue(window), (long)(pr.GetValue(horizon) * 1e6))));
        return cmd;
    }

    public static int Run(string path, string to, string outPath, bool strict, bool sort, int window, long horizonNs = TimeSorter.DefaultHorizonNs)
    {
        to = to.ToLowerInvariant();
        if (to is not ("jsonl" or "ftrace")) throw new UsageException($"--to {to}: expected jsonl or ftrace");
        if (!File.Exists(path)) throw new UsageException($"{path}: no such file");
        if (sort && window < 1) throw new UsageException("--window must be at least 1");
        if (sort && horizonNs < 0) throw new UsageException("--horizon-ms must not be negative");
        bool toStdout = outPath == "-";
        var capture = CaptureContext.Discover(path);
        long events = 0, lossy = 0;
        try
        {
            using ITraceReader reader = sort
                ? new TimeSorter(TraceOpener.Open(path, new TraceOpenOptions { Strict = strict, Capture = capture }), window, horizonNs)
                : TraceOpener.Open(path, new TraceOpenOptions { Strict = strict, Capture = capture });
            using var os = toStdout ? Console.OpenStandardOutput() : new FileStream(outPath, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 16);
            if (to == "jsonl")
            {
                using var w = new JsonlWriter(os, leaveOpen: true);
                var first = reader.Read(); // text headers (cpus=, #P:) come before the first event
                w.WriteHeader(reader.Format, reader.Header);
                for (var e = first; e != null; e = reader.Read()) w.Write(e);
                events = w.Events;
            }
            else
            {
                using var w = new FtraceTextWriter(os, capture.BuildRegistry(), leaveOpen: true);
                var first = reader.Read();
                w.WriteHeader(reader.Header);
                for (var e = first; e != null; e = reader.Read()) w.Write(e);
                events = w.Events;
                lossy = w.LossyEvents;
            }
            Console.Error.WriteLine($"replayer: {events} events from {path} ({reader.Format}) written to {(toStdout ? "stdout" : outPath)}"
                + (reader.Stats.UnparsedLines > 0 ? $"; {reader.Stats.UnparsedLines} unparsed line(s) skipped" : "")
                + (lossy > 0 ? $"; {lossy} event(s) hold text the ftrace format cannot carry exactly (newlines or ambiguous strings)" : ""));
        }
        catch
        {
            if (!toStdout) try { File.Delete(outPath); } catch (IOException) { }
            throw;
        }
        return ExitCodes.Ok;
    }
}
