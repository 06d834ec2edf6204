using System.Globalization;
using System.Text.Json;
using Replayer.Core;
using Replayer.Formats;
using Replayer.Formats.Writers;
using Replayer.Replay;
using Replayer.TestKit;

namespace Replayer.Report.Tests;

/// <summary>convert --to chrome: valid Chrome Trace Event JSON with the expected tracks, checked against the input
/// trace and an independent audit of it.</summary>
public class ChromeExportTests
{
    public static TheoryData<string> Prefixes() => new(Directory.GetDirectories(Repo.Trace("synthetic"))
        .Select(Path.GetFileName).Where(n => n!.EndsWith("-prefix", StringComparison.Ordinal)).Order(StringComparer.Ordinal)!);

    static List<TraceEvent> ReadAll(string path)
    {
        using var r = TraceOpener.Open(path, new TraceOpenOptions { Strict = true });
        var l = new List<TraceEvent>();
        while (r.Read() is { } e) l.Add(e);
        return l;
    }

    static JsonDocument Export(string path, out ReportData data)
    {
        var ms = new MemoryStream();
        using (var r = TraceOpener.Open(path, new TraceOpenOptions { Strict = true }))
            data = ChromeExport.Write(new ReportInput { Name = path, Reader = r, TracePath = path }, ms);
        return JsonDocument.Parse(ms.ToArray());
    }

    static long Ns(JsonElement ts) => (long)Math.Round(decimal.Parse(ts.GetRawText(), CultureInfo.InvariantCulture) * 1000m);

    static ulong Pfn(string s) => s.StartsWith("0x", StringComparison.Ordinal) ? ulong.Parse(s[2..], NumberStyles.HexNumber, CultureInfo.InvariantCulture) : ulong.Parse(s, CultureInfo.InvariantCulture);

    [Theory]
    [MemberData(nameof(Prefixes))]
    public void Seed_era_prefix_trace_exports_cpu_tracks_migration_slices_memcg_counters_and_findings(string folder)
    {
        var path = Repo.Trace("synthetic", folder, "trace.txt");
        var events = ReadAll(path);
        var audit = Audit.Run(events, new AuditOptions { TracePath = path });
        Assert.NotEmpty(audit.Findings); // a prefix (unfixed) capture: the export must carry findings
        using var doc = Export(path, out _);
        var root = doc.RootElement;
        Assert.Equal("ns", root.GetProperty("displayTimeUnit").GetString());
        var all = root.GetProperty("traceEvents").EnumerateArray().ToList();

        // one named track per CPU, every trace event on its CPU's track at its exact time
        var cpus = events.Select(e => e.Cpu).Distinct().Order().ToList();
        var threadNames = all.Where(e => e.GetProperty("ph").GetString() == "M" && e.GetProperty("name").GetString() == "thread_name"
            && e.GetProperty("pid").GetInt32() == ChromeTraceWriter.CpuProcess).ToDictionary(e => e.GetProperty("tid").GetInt32(), e => e.GetProperty("args").GetProperty("name").GetString());
        foreach (var c in cpus) Assert.Equal("CPU " + c, threadNames[c]);
        var onCpu = all.Where(e => e.GetProperty("ph").GetString() == "i" && e.GetProperty("pid").GetInt32() == ChromeTraceWriter.CpuProcess
            && e.GetProperty("cat").GetString() != ChromeExport.FindingCategory).ToList();
        Assert.Equal(events.Count, onCpu.Count);
        for (int i = 0; i < events.Count; i++)
        {
            Assert.Equal(events[i].Name, onCpu[i].GetProperty("name").GetString());
            Assert.Equal(events[i].Cpu, onCpu[i].GetProperty("tid").GetInt32());
            Assert.Equal(events[i].Timestamp, Ns(onCpu[i].GetProperty("ts")));
            Assert.Equal(events[i].Pid, onCpu[i].GetProperty("args").GetProperty("pid").GetInt32());
        }

        // migration slices: begin/end pairs with src/dst pfn args; each (src, dst) is a pair the trace prepared
        var prepared = events.Where(e => e.ShortName.SequenceEqual("mem_cgroup_prepare_migration"))
            .Select(e => (e.U64("page")!.Value, e.U64("newpage")!.Value)).ToHashSet();
        Assert.NotEmpty(prepared);
        var begins = all.Where(e => e.GetProperty("ph").GetString() == "b" && e.GetProperty("cat").GetString() == ChromeExport.AttemptCategory).ToList();
        var ends = all.Where(e => e.GetProperty("ph").GetString() == "e" && e.GetProperty("cat").GetString() == ChromeExport.AttemptCategory)
            .ToDictionary(e => e.GetProperty("id").GetInt64());
        Assert.NotEmpty(begins);
        foreach (var b in begins)
        {
            var args = b.GetProperty("args");
            var src = Pfn(args.GetProperty("src_pfn").GetString()!);
            var dst = args.GetProperty("dst_pfn").GetString()!;
            Assert.Contains((src, Pfn(dst)), prepared);
            var e = ends[b.GetProperty("id").GetInt64()];
            Assert.True(Ns(e.GetProperty("ts")) >= Ns(b.GetProperty("ts")));
        }
        Assert.Equal(begins.Count, ends.Count);

        // FILE_MAPPED counters: one counter track per memcg of the audit, ending at its deltas
        var counters = all.Where(e => e.GetProperty("ph").GetString() == "C").GroupBy(e => e.GetProperty("name").GetString()!).ToDictionary(g => g.Key, g => g.ToList());
        foreach (var m in audit.Memcgs)
        {
            var last = counters[ChromeExport.CounterName(m.Memcg)][^1].GetProperty("args");
            Assert.Equal(m.CounterDelta, last.GetProperty("counter").GetInt64());
            Assert.Equal(m.ImpliedDelta, last.GetProperty("implied").GetInt64());
        }

        // findings: instant events with the audit's invariant, time and cpu, and their evidence lines
        var found = all.Where(e => e.GetProperty("ph").GetString() == "i" && e.GetProperty("cat").GetString() == ChromeExport.FindingCategory).ToList();
        Assert.Equal(audit.Findings.Length, found.Count);
        for (int i = 0; i < found.Count; i++)
        {
            var f = audit.Findings[i];
            var a = found[i].GetProperty("args");
            Assert.Equal(f.InvariantId, a.GetProperty("invariant").GetString());
            Assert.Equal(f.Timestamp, Ns(found[i].GetProperty("ts")));
            Assert.Equal(f.Cpu, found[i].GetProperty("tid").GetInt32());
            Assert.Equal(f.Evidence.Length, a.GetProperty("evidence").GetArrayLength());
        }
    }

    [Fact]
    public void Real_capture_exports_windows_and_counters_that_match_the_audit()
    {
        var path = Repo.Trace("6.1-ext4-fail", "ftrace", "trace.txt.zst");
        using var doc = Export(path, out var data);
        var all = doc.RootElement.GetProperty("traceEvents").EnumerateArray().ToList();
        var windows = all.Where(e => e.GetProperty("ph").GetString() == "b" && e.GetProperty("cat").GetString() == ChromeExport.WindowCategory).ToList();
        var starts = ReadAll(path).Count(e => e.Name == "migrate:mm_migrate_pages_start");
        Assert.Equal(starts, windows.Count);
        Assert.Equal(data.Timeline.AttemptsBegun, all.Count(e => e.GetProperty("ph").GetString() == "b" && e.GetProperty("cat").GetString() == ChromeExport.AttemptCategory));
        Assert.True(data.Timeline.AttemptsFailed > 0, "the fail capture has pinned pages whose migration fails");
        foreach (var m in data.Audit.Memcgs)
        {
            var last = all.Last(e => e.GetProperty("ph").GetString() == "C" && e.GetProperty("name").GetString() == ChromeExport.CounterName(m.Memcg)).GetProperty("args");
            Assert.Equal(m.CounterDelta, last.GetProperty("counter").GetInt64());
        }
    }
}
