using System.Text;
using Replayer.Core;
using Replayer.Formats.Binary;
using Replayer.Formats.Schema;
using Replayer.TestKit;

namespace Replayer.Formats.Tests.Binary;

/// <summary>
/// <see cref="TraceDatWriter"/>: the real raw ftrace captures (6.1, 6.12) written as trace.dat, read back
/// by <see cref="TraceDatReader"/> (exact: every event equal to the text reader's) and by Debian's
/// <c>trace-cmd report</c> (every line equal to our libtraceevent-style rendering of the source);
/// synthesized formats for events no format describes; lossy events counted, never silent.
/// </summary>
public class TraceDatWriterTests
{
    public static TheoryData<string> RawCaptures => new("6.1-ext4-basic", "6.12-ext4-basic");

    /// <summary>Raw ftrace captures, including the VM captures (trace.txt.zst at the top of the capture).</summary>
    public static TheoryData<string> AllRawCaptures => new("6.1-ext4-basic", "6.12-ext4-basic", "vmcap-6.1-ext4-fail", "vmcap-6.12-ext4-fail");

    static string RawText(string capture) =>
        File.Exists(Repo.Trace(capture, "ftrace", "trace.txt.zst")) ? Repo.Trace(capture, "ftrace", "trace.txt.zst") : Repo.Trace(capture, "trace.txt.zst");

    static List<TraceEvent> ReadText(string path, CaptureContext capture)
    {
        using var r = TraceOpener.Open(path, new TraceOpenOptions { Strict = true, Capture = capture });
        var list = new List<TraceEvent>();
        while (r.Read() is { } e) list.Add(e);
        return list;
    }

    static (byte[] Bytes, TraceDatWriter Writer) Write(IEnumerable<TraceEvent> events, TraceDatWriterOptions options)
    {
        using var ms = new MemoryStream();
        var w = new TraceDatWriter(ms, options, leaveOpen: true);
        foreach (var e in events) w.Write(e);
        w.Dispose();
        return (ms.ToArray(), w);
    }

    static List<TraceEvent> ReadDat(byte[] bytes, IReadOnlyDictionary<string, ulong> symbols)
    {
        var opt = new BinaryReaderOptions();
        foreach (var (k, v) in symbols) opt.SymbolValues[k] = v;
        using var r = new TraceDatReader(BinarySource.FromBytes(bytes, "written.dat"), opt);
        var list = new List<TraceEvent>();
        while (r.Read() is { } e) list.Add(e);
        Assert.Equal(0, r.Stats.UnparsedLines);
        return list;
    }

    /// <summary>trace.dat holds per-CPU buffers merged by time on reading: compare in (time, cpu) order.</summary>
    static List<TraceEvent> ByTime(IEnumerable<TraceEvent> events) => events.Select((e, i) => (e, i))
        .OrderBy(x => x.e.Timestamp).ThenBy(x => x.e.Cpu).ThenBy(x => x.i).Select(x => x.e).ToList();

    static string FtraceText(IEnumerable<TraceEvent> events, SchemaRegistry registry)
    {
        using var ms = new MemoryStream();
        using (var w = new FtraceTextWriter(ms, registry, leaveOpen: true)) foreach (var e in events) w.Write(e);
        return Encoding.UTF8.GetString(ms.ToArray());
    }

    [Theory]
    [MemberData(nameof(AllRawCaptures))]
    public void Raw_capture_round_trips_text_to_trace_dat_to_text_exactly(string capture)
    {
        var path = RawText(capture);
        var ctx = CaptureContext.Discover(path);
        var source = ReadText(path, ctx);
        Assert.NotEmpty(source);
        using var probe = TraceOpener.Open(path, new TraceOpenOptions { Strict = true, Capture = ctx });
        probe.Read();
        var (bytes, w) = Write(source, TraceDatWriterSetup.From(ctx, probe));
        Assert.Equal(source.Count, w.Events);
        Assert.True(w.LossyEvents == 0, "lossy: " + string.Join(", ", w.Lossy.Select(kv => $"{kv.Key} {kv.Value} ({w.LossyExamples.GetValueOrDefault(kv.Key)})")));
        Assert.Empty(w.SynthesizedFormats); // the capture's formats/ describe every event
        var back = ReadDat(bytes, w.SymbolValues);
        var want = ByTime(source);
        Assert.Equal(want.Count, back.Count);
        for (int i = 0; i < want.Count; i++)
            Assert.True(want[i].Equals(back[i]), $"{capture}: event {i} differs\n text: {want[i]} {string.Join(' ', want[i].Fields)} probe={want[i].Probe} flags={want[i].Flags} comm={want[i].Comm}\n back: {back[i]} {string.Join(' ', back[i].Fields)} probe={back[i].Probe} flags={back[i].Flags} comm={back[i].Comm}");
        // ... and as text again, byte for byte.
        var reg = ctx.BuildRegistry();
        Assert.Equal(FtraceText(want, reg), FtraceText(back, reg));
    }

    [Theory]
    [MemberData(nameof(RawCaptures))]
    public void Written_raw_capture_opens_in_trace_cmd_report_with_the_same_events(string capture)
    {
        var tc = BinaryTestKit.RequireTool("trace-cmd", "trace-cmd");
        var path = RawText(capture);
        var ctx = CaptureContext.Discover(path);
        var source = ReadText(path, ctx);
        using var probe = TraceOpener.Open(path, new TraceOpenOptions { Strict = true, Capture = ctx });
        probe.Read();
        var (bytes, w) = Write(source, TraceDatWriterSetup.From(ctx, probe));
        var dir = Repo.TempDir("tdat-writer");
        try
        {
            var file = Path.Combine(dir, "written.dat");
            File.WriteAllBytes(file, bytes);
            var report = BinaryTestKit.Run(tc, $"report -i {file}").Split('\n', StringSplitOptions.RemoveEmptyEntries)
                .Where(l => !l.StartsWith("cpus=", StringComparison.Ordinal)).ToList();
            Assert.Equal(source.Count, report.Count);
            // Our libtraceevent-style rendering of the written records (kprobe columns in hex, as report prints them).
            var mine = TraceDatReportDifferentialTests.RenderAll(file, out var stats);
            TraceDatReportDifferentialTests.CompareLines(capture + " written", report, mine);
            // The report's comm/pid/cpu/time columns are the source events' (time rounded to microseconds).
            var want = ByTime(source);
            for (int i = 0; i < want.Count; i++)
            {
                var e = want[i];
                long us = (e.Timestamp + 500) / 1000;
                string head = $"{e.Comm}-{e.Pid} [{e.Cpu:D3}] {us / 1_000_000}.{us % 1_000_000:D6}: {e.Name[(e.Name.IndexOf(':') + 1)..]}:";
                Assert.StartsWith(head, BinaryTestKit.Squash(report[i]));
            }
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void Real_trace_dat_rewritten_gives_the_same_trace_cmd_report_as_the_original()
    {
        // Binary input: the formats and kallsyms come from the file itself, so probe addresses are the
        // original ones and trace-cmd report of the rewritten file equals the report of the original, line for line.
        var tc = BinaryTestKit.RequireTool("trace-cmd", "trace-cmd");
        const string capture = "6.1-ext4-fail";
        var src = BinaryTestKit.TraceDat(capture);
        var ctx = CaptureContext.Discover(src);
        var dir = Repo.TempDir("tdat-rewrite");
        try
        {
            var file = Path.Combine(dir, "rewritten.dat");
            long events;
            using (var r = new TraceDatReader(src))
            {
                var first = r.Read();
                using var fs = File.Create(file);
                using var w = new TraceDatWriter(fs, TraceDatWriterSetup.From(ctx, r));
                for (var e = first; e != null; e = r.Read()) w.Write(e);
                w.Finish();
                Assert.True(w.LossyEvents == 0, "lossy: " + string.Join(", ", w.Lossy.Select(kv => $"{kv.Key} {kv.Value} ({w.LossyExamples.GetValueOrDefault(kv.Key)})")));
                Assert.Empty(w.SynthesizedFormats);
                events = w.Events;
            }
            var original = BinaryTestKit.ZstdLines(Repo.Trace(capture, "tracecmd", "report_host.txt.zst")).ToList();
            var report = BinaryTestKit.Run(tc, $"report -i {file}").Split('\n', StringSplitOptions.RemoveEmptyEntries).ToList();
            Assert.Equal(events + 1, report.Count); // + "cpus=N"
            Assert.Equal(original.Count, report.Count);
            for (int i = 0; i < original.Count; i++)
                Assert.True(original[i] == report[i], $"line {i}\n original:  {original[i]}\n rewritten: {report[i]}");
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void Perf_data_input_embeds_its_own_formats_and_reads_back_with_only_exec_comms_lossy()
    {
        var path = Repo.Trace("6.1-ext4-basic", "perf", "perf.data.zst");
        var source = new List<TraceEvent>();
        using var r = TraceOpener.Open(path, new TraceOpenOptions { Strict = true, Capture = CaptureContext.None });
        Assert.IsType<PerfDataReader>(r);
        var first = r.Read();
        var opt = TraceDatWriterSetup.From(CaptureContext.None, r);
        Assert.NotEmpty(opt.Formats); // from perf.data's tracing data, not from a formats/ folder
        for (var e = first; e != null; e = r.Read()) source.Add(e);
        var (bytes, w) = Write(source, opt);
        Assert.Empty(w.SynthesizedFormats);
        Assert.Equal(["comm"], w.Lossy.Keys); // pids that exec'd (perf-exec -> migwl) keep one comm
        var back = ReadDat(bytes, w.SymbolValues);
        var want = ByTime(source);
        Assert.Equal(want.Count, back.Count);
        int commDiffs = 0;
        var pairs = new HashSet<string>();
        for (int i = 0; i < want.Count; i++)
        {
            if (want[i].Comm != back[i].Comm) { commDiffs++; pairs.Add($"{want[i].Pid}:[{want[i].Comm}]->[{back[i].Comm}]"); Assert.Equal(want[i], new TraceEvent { Timestamp = back[i].Timestamp, Cpu = back[i].Cpu, Pid = back[i].Pid, Comm = want[i].Comm, Name = back[i].Name, Fields = back[i].Fields, Probe = back[i].Probe, Flags = back[i].Flags }); }
            else Assert.Equal(want[i], back[i]);
        }
        Assert.True(w.LossyEvents == commDiffs, string.Join(" ", pairs));
    }

    [Fact]
    public void Events_without_formats_get_synthesized_ones_that_read_back_exactly_and_open_in_trace_cmd()
    {
        // The 6.1 capture read without its formats/ folder: the text reader's generic fields, written with
        // formats synthesized from them (kprobe location, u64/s64 in the printed style, __data_loc strings).
        var path = RawText("6.1-ext4-basic");
        var source = ReadText(path, CaptureContext.None).Take(3000).ToList();
        source.Add(new TraceEvent
        {
            Timestamp = source[^1].Timestamp + 1, Cpu = 1, Pid = 77, Comm = "x", Name = "custom:thing", Flags = "d..2.",
            Fields = [EventField.Str("who", "a b=c"), EventField.S64("delta", -5), EventField.U64("addr", 0xdead, FieldStyle.Hex)],
        });
        var (bytes, w) = Write(source, new TraceDatWriterOptions());
        Assert.True(w.LossyEvents == 0, "lossy: " + string.Join(", ", w.Lossy.Select(kv => $"{kv.Key} {kv.Value} ({w.LossyExamples.GetValueOrDefault(kv.Key)})")));
        Assert.Contains("custom:thing", w.SynthesizedFormats);
        Assert.Equal(source.Select(e => e.Name).Distinct().Count(), w.SynthesizedFormats.Count);
        var back = ReadDat(bytes, w.SymbolValues);
        Assert.Equal(ByTime(source), back);
        var tc = BinaryTestKit.RequireTool("trace-cmd", "trace-cmd");
        var dir = Repo.TempDir("tdat-writer-synth");
        try
        {
            var file = Path.Combine(dir, "synth.dat");
            File.WriteAllBytes(file, bytes);
            var report = BinaryTestKit.Run(tc, $"report -i {file}").Split('\n', StringSplitOptions.RemoveEmptyEntries)
                .Where(l => !l.StartsWith("cpus=", StringComparison.Ordinal)).ToList();
            var mine = TraceDatReportDifferentialTests.RenderAll(file, out _);
            TraceDatReportDifferentialTests.CompareLines("synthesized", report, mine);
            Assert.Contains(report, l => BinaryTestKit.Squash(l).EndsWith("thing: who=a b=c delta=-5 addr=0xdead", StringComparison.Ordinal));
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void Events_that_cannot_be_inverted_are_counted_by_reason()
    {
        var fmt = Replayer.Formats.Binary.EventFormat.Parse(SyntheticCaptures.Formats[3], "migrate", "test", 0); // mode/reason __print_symbolic
        var opt = new TraceDatWriterOptions();
        opt.Formats.Add(fmt);
        EventField[] F(string mode, string reason) => [EventField.Str("mode", mode), EventField.Str("reason", reason)];
        var events = new List<TraceEvent>
        {
            new() { Timestamp = 10, Cpu = 0, Pid = 5, Comm = "a", Flags = "d..2.", Name = "migrate:mm_migrate_pages_start", Fields = F("MIGRATE_SYNC", "compaction") },
            new() { Timestamp = 20, Cpu = 0, Pid = 5, Comm = "a", Flags = "d..2.", Name = "migrate:mm_migrate_pages_start", Fields = F("NOT_A_MODE", "compaction") },
            new() { Timestamp = 30, Cpu = 0, Pid = 5, Comm = "b", Flags = "d..2.", Name = "migrate:mm_migrate_pages_start", Fields = F("0x7", "syscall_or_cpuset") },
            new() { Timestamp = 40, Cpu = 0, Pid = 5, Comm = "a", Flags = "d..2.", Name = "migrate:mm_migrate_pages_start", Fields = F("MIGRATE_ASYNC", "compaction") },
        };
        var (bytes, w) = Write(events, opt);
        Assert.Equal(4, w.Events);
        Assert.Equal(2, w.LossyEvents);
        Assert.Equal(1, w.Lossy["fields:migrate:mm_migrate_pages_start"]); // NOT_A_MODE is no value of the table
        Assert.Equal(1, w.Lossy["comm"]); // pid 5 is "a" (twice) and "b": saved cmdlines hold one comm per pid, the most frequent
        var back = ReadDat(bytes, w.SymbolValues);
        Assert.Equal(events[0], back[0]);
        Assert.Equal("0x7", back[2].Str("mode")); // a value outside the table prints back as hex
        Assert.Equal("a", back[2].Comm);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Kretprobe_and_kprobe_locations_come_back_through_synthesized_kallsyms(bool bigEndian)
    {
        var events = new List<TraceEvent>
        {
            new() { Timestamp = 1_000, Cpu = 0, Pid = 1, Comm = "c", Flags = "D.h1.", Name = "rt:ret", Probe = "migrate_folio_extra+0x24/0x70 <- folio_migrate_mapping", Fields = [EventField.S64("arg1", 0)] },
            new() { Timestamp = 2_000, Cpu = 0, Pid = 1, Comm = "c", Flags = "D.h1.", Name = "rt:entry", Probe = "page_add_file_rmap+0x0/0x2f0", Fields = [EventField.U64("page", 0xffd4000000001000, FieldStyle.Hex)] },
            new() { Timestamp = 3_000_000_000, Cpu = 1, Pid = 2, Comm = "d", Flags = "..s..", Name = "rt:entry", Probe = "page_add_file_rmap+0x10/0x2f0", Fields = [EventField.U64("page", 1, FieldStyle.Hex)] },
        };
        var (bytes, w) = Write(events, new TraceDatWriterOptions { BigEndian = bigEndian });
        Assert.Equal(0, w.LossyEvents);
        Assert.Equal(bigEndian ? 1 : 0, bytes[10 + 2]); // after magic and "6\0": the endianness byte
        Assert.Equal(events, ReadDat(bytes, w.SymbolValues));
    }
}
