using System.CommandLine;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Replayer.Core;
using Replayer.Formats;

namespace Replayer.Cli.Commands;

/// <summary><c>replayer stats FILE [--json] [--strict]</c>: what a trace contains and what its reader counted.</summary>
public static class StatsCommand
{
    public static Command Create()
    {
        var file = new Argument<string>("file") { Description = "Trace file (raw ftrace text, trace-cmd report, perf script, JSONL, trace.dat, perf.data; gzip/zstd/xz ok), or a stored capture (capture-<id> or its hex id)" };
        var json = new Option<bool>("--json") { Description = "Print JSON instead of a table" };
        var strict = new Option<bool>("--strict") { Description = "Stop at the first line that is not understood (exit 2)" };
        var store = IngestCommand.StoreOption();
        var cmd = new Command("stats", "Events per name, CPUs, time span, lost events, unparsed lines and reader counters of a trace") { file, json, strict, store };
        cmd.SetAction(pr => CliRunner.Run(() => Run(pr.GetValue(file)!, pr.GetValue(json), pr.GetValue(strict), Console.Out, pr.GetValue(store))));
        return cmd;
    }

    public sealed class Summary
    {
        public required string File { get; init; }
        public TraceFormat Format { get; set; }
        public long Events { get; set; }
        public SortedDictionary<string, long> PerName { get; } = new(StringComparer.Ordinal);
        public SortedSet<int> Cpus { get; } = new();
        public long? FirstTs { get; set; }
        public long? LastTs { get; set; }
        public long MinTs { get; set; } = long.MaxValue;
        public long MaxTs { get; set; } = long.MinValue;
        public long NonMonotonic { get; set; }
        public CaptureHeader Header { get; set; } = new();
        public ReadStats Stats { get; set; } = new();
    }

    public static Summary Collect(string path, bool strict, string? storeSpec = null)
    {
        if (StoredCapture.Names(path))
        {
            // the reader counters are the ones recorded when the capture was ingested
            using var stored = StoredCapture.Open(storeSpec, path);
            using var sr = stored.OpenReader();
            return Collect(sr, stored.StreamName);
        }
        if (!File.Exists(path)) throw new UsageException($"{path}: no such file");
        using var r = TraceOpener.Open(path, new TraceOpenOptions { Strict = strict });
        return Collect(r, path);
    }

    public static Summary Collect(ITraceReader r, string name)
    {
        var s = new Summary { File = name, Format = r.Format };
        var perName = new Dictionary<string, long>(StringComparer.Ordinal);
        long prev = long.MinValue;
        while (r.Read() is { } e)
        {
            s.Events++;
            ref var c = ref System.Runtime.InteropServices.CollectionsMarshal.GetValueRefOrAddDefault(perName, e.Name, out _);
            c++;
            s.Cpus.Add(e.Cpu);
            s.FirstTs ??= e.Timestamp;
            s.LastTs = e.Timestamp;
            if (e.Timestamp < s.MinTs) s.MinTs = e.Timestamp;
            if (e.Timestamp > s.MaxTs) s.MaxTs = e.Timestamp;
            if (e.Timestamp < prev) s.NonMonotonic++;
            prev = e.Timestamp;
        }
        foreach (var (k, v) in perName) s.PerName[k] = v;
        s.Header = r.Header;
        s.Stats = r.Stats;
        return s;
    }

    public static int Run(string path, bool json, bool strict, TextWriter output, string? storeSpec = null)
    {
        var s = Collect(path, strict, storeSpec);
        if (json) WriteJson(s, output);
        else WriteTable(s, output);
        return ExitCodes.Ok;
    }

    static void WriteJson(Summary s, TextWriter output)
    {
        var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms, new JsonWriterOptions { Indented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            w.WriteStartObject();
            w.WriteString("file", s.File);
            w.WriteString("format", s.Format.ToString());
            w.WriteNumber("events", s.Events);
            w.WriteNumber("lines", s.Stats.Lines);
            w.WriteNumber("unparsed_lines", s.Stats.UnparsedLines);
            w.WriteNumber("lost_events", s.Stats.LostEvents);
            w.WriteNumber("data_loss_markers", s.Stats.DataLossMarkers);
            if (s.Header.CpuCount is { } n) w.WriteNumber("cpu_count", n); else w.WriteNull("cpu_count");
            w.WriteStartArray("cpus");
            foreach (var c in s.Cpus) w.WriteNumberValue(c);
            w.WriteEndArray();
            if (s.Header.KernelRelease is { } k) w.WriteString("kernel", k);
            if (s.FirstTs is { } f) { w.WriteNumber("first_ts_ns", f); w.WriteNumber("last_ts_ns", s.LastTs!.Value); w.WriteNumber("min_ts_ns", s.MinTs); w.WriteNumber("max_ts_ns", s.MaxTs); }
            w.WriteNumber("non_monotonic_timestamps", s.NonMonotonic);
            w.WriteStartObject("events_per_name");
            foreach (var (name, c) in s.PerName) w.WriteNumber(name, c);
            w.WriteEndObject();
            w.WriteStartObject("counters");
            foreach (var (name, (sev, v)) in s.Stats.Counters.OrderBy(x => x.Key, StringComparer.Ordinal))
            {
                w.WriteStartObject(name);
                w.WriteString("severity", sev.ToString());
                w.WriteNumber("value", v);
                w.WriteEndObject();
            }
            w.WriteEndObject();
            w.WriteEndObject();
        }
        output.WriteLine(Encoding.UTF8.GetString(ms.ToArray()));
    }

    static string Ts(long? ns) => ns is { } v ? TraceEvent.FormatTimestamp(v) : "-";

    static void WriteTable(Summary s, TextWriter o)
    {
        string N(long v) => v.ToString("N0", CultureInfo.InvariantCulture);
        o.WriteLine($"file            {s.File}");
        o.WriteLine($"format          {s.Format}");
        if (s.Header.KernelRelease != null) o.WriteLine($"kernel          {s.Header.KernelRelease}");
        o.WriteLine($"events          {N(s.Events)}");
        o.WriteLine($"lines           {N(s.Stats.Lines)}");
        o.WriteLine($"unparsed lines  {N(s.Stats.UnparsedLines)}");
        o.WriteLine($"lost events     {N(s.Stats.LostEvents)} ({N(s.Stats.DataLossMarkers)} marker(s))");
        o.WriteLine($"cpus            {(s.Header.CpuCount is { } c ? c + " in header; " : "")}seen: {string.Join(",", s.Cpus)}");
        o.WriteLine($"time            {Ts(s.FirstTs)} .. {Ts(s.LastTs)}" + (s.NonMonotonic > 0 ? $" ({N(s.NonMonotonic)} step(s) back in time)" : ""));
        o.WriteLine();
        int w = Math.Max(10, s.PerName.Keys.Select(k => k.Length).DefaultIfEmpty(0).Max());
        o.WriteLine($"{"event".PadRight(w)}  {"count",12}");
        foreach (var (name, cnt) in s.PerName) o.WriteLine($"{name.PadRight(w)}  {N(cnt),12}");
        if (s.Stats.Counters.Count > 0)
        {
            o.WriteLine();
            int w2 = Math.Max(10, s.Stats.Counters.Keys.Max(k => k.Length));
            o.WriteLine($"{"reader counter".PadRight(w2)}  {"severity",-8}  {"value",12}");
            foreach (var (name, (sev, v)) in s.Stats.Counters.OrderBy(x => x.Key, StringComparer.Ordinal))
                o.WriteLine($"{name.PadRight(w2)}  {sev,-8}  {N(v),12}");
        }
    }
}
