using System.IO.Compression;
using System.Text;
using Replayer.Core;
using Replayer.Formats;
using static Replayer.Formats.Tests.TestUtil;

namespace Replayer.Formats.Tests;

/// <summary>Small named inputs for the corner cases of the text formats.</summary>
public class InlineTextTests
{
    const string FtraceHeader = "# tracer: nop\n#\n# entries-in-buffer/entries-written: 3/3   #P:4\n#\n";

    [Fact]
    public void Comm_names_with_spaces_dashes_slashes_and_colons()
    {
        var evs = ReadText(FtraceHeader +
            " kworker/u4:1-events_unbound-1234  [003] d..2.   100.000001: mm_page_free: page=ffd9298781fe4b80 pfn=0x7f92e order=1\n" +
            "    Web Content-4242    [001] .....   100.000002: mm_page_free: page=ffd9298781fe4b80 pfn=0x7f92e order=0\n" +
            "  a [000] b:c-d-77    [000] .....   100.000003: mm_page_free: page=ffd9298781fe4b80 pfn=0x1 order=0\n");
        Assert.Equal(["kworker/u4:1-events_unbound", "Web Content", "a [000] b:c-d"], evs.Select(e => e.Comm));
        Assert.Equal([1234, 4242, 77], evs.Select(e => e.Pid));
        Assert.Equal([3, 1, 0], evs.Select(e => e.Cpu));
        Assert.All(evs, e => Assert.Equal("kmem:mm_page_free", e.Name));
        // perf script: "comm pid [cpu]" with a space in the comm
        var perf = ReadText("  Web Content  4242 [001]    62.125995:  kmem:mm_page_free: page=0x5fb5a pfn=0x5fb5a order=0\n" +
                            " kworker/0:1-mm  12/13 [000]    62.125996:  1  kmem:mm_page_free: page=0x5fb5a pfn=0x5fb5a order=0 ffffffff998f9486 free_pages+0x256 ([kernel.kallsyms])\n");
        Assert.Equal(["Web Content", "kworker/0:1-mm"], perf.Select(e => e.Comm));
        Assert.Equal([4242, 13], perf.Select(e => e.Pid));
        Assert.Equal(0UL, perf[1].U64("order"));
        Assert.Equal(3, perf[1].Fields.Length);
    }

    [Fact]
    public void Perf_script_field_selections_without_cpu_or_comm()
    {
        using var r = OpenText("           migwl   565    68.301415: rt:migrate_mapping_ret: (ffffffff9992f2a0 <- ffffffff99930e24) ret=0\n" +
                               "    68.301416: kmem:mm_page_free: page=0x5fb5a pfn=0x5fb5a order=0\n" +
                               "   565 [001]    68.301417: kmem:mm_page_free: page=0x5fb5a pfn=0x5fb5b order=0\n", strict: true);
        Assert.Equal(TraceFormat.PerfScript, r.Format);
        var evs = ReadAll(r);
        Assert.Equal([("migwl", 565, -1), ("", -1, -1), ("", 565, 1)], evs.Select(e => (e.Comm, e.Pid, e.Cpu)));
        Assert.Equal("ffffffff9992f2a0 <- ffffffff99930e24", evs[0].Probe);
        Assert.Equal(68_301_416_000L, evs[1].Timestamp);
        Assert.Equal(0x5fb5bUL, evs[2].U64("pfn"));
    }

    [Fact]
    public void Text_writer_keeps_unknown_cpu_and_pid_and_comms_ending_in_a_dash()
    {
        var events = new[]
        {
            new TraceEvent { Timestamp = 5, Cpu = -1, Pid = -1, Comm = "", Name = "kmem:mm_page_free", Fields = [EventField.U64("page", 1, FieldStyle.Pointer), EventField.U64("pfn", 2, FieldStyle.Hex), EventField.S64("order", 0)] },
            new TraceEvent { Timestamp = 6, Cpu = 2, Pid = 5, Comm = "ab-", Name = "x:y", Fields = [EventField.Str("s", "v w"), EventField.S64("n", -3)] },
            new TraceEvent { Timestamp = 7, Cpu = 3, Pid = -1, Comm = "cd--", Name = "x:y", Fields = [EventField.Str("s", ""), EventField.S64("n", 0)], Probe = "f+0x0/0x10" },
        };
        var ms = new MemoryStream();
        using (var w = new FtraceTextWriter(ms, leaveOpen: true)) foreach (var e in events) w.Write(e);
        ms.Position = 0;
        using var r = TraceOpener.Open(ms, new TraceOpenOptions { Strict = true });
        Assert.Equal(events, ReadAll(r));
    }

    [Fact]
    public void Text_writer_escapes_newlines_in_values_and_counts_the_event_as_lossy()
    {
        var ms = new MemoryStream();
        long lossy;
        using (var w = new FtraceTextWriter(ms, leaveOpen: true))
        {
            w.Write(new TraceEvent { Timestamp = 1000, Comm = "a", Pid = 1, Name = "ftrace:print", Fields = [EventField.Str("ip", "tracing_mark_write"), EventField.Str("buf", "two\nlines")] });
            w.Write(new TraceEvent { Timestamp = 2000, Comm = "a", Pid = 1, Name = "ftrace:print", Fields = [EventField.Str("ip", "tracing_mark_write"), EventField.Str("buf", "one line")] });
            lossy = w.LossyEvents;
        }
        Assert.Equal(1, lossy);
        ms.Position = 0;
        using var r = TraceOpener.Open(ms, new TraceOpenOptions { Strict = true });
        var evs = ReadAll(r);
        Assert.Equal(["two\\nlines", "one line"], evs.Select(e => e.Str("buf")));
    }

    [Fact]
    public void Irq_info_column_on_and_off_give_the_same_fields()
    {
        var on = ReadText(FtraceHeader + "           migwl-401     [000] dN.2.    25.368709: mm_lru_insertion: folio=ffd92987810ecc00 pfn=0x43b30 lru=2 flags= f  d \n");
        var off = ReadText(FtraceHeader + "           migwl-401     [000]    25.368709: mm_lru_insertion: folio=ffd92987810ecc00 pfn=0x43b30 lru=2 flags= f  d \n");
        Assert.Equal("dN.2.", on[0].Flags);
        Assert.Null(off[0].Flags);
        Assert.Equal(on[0].Fields, off[0].Fields);
        Assert.Equal(" f  d ", on[0].Str("flags"));
        Assert.Equal(25_368_709_000L, on[0].Timestamp);
    }

    [Fact]
    public void Trace_pipe_without_header_and_nanosecond_timestamps()
    {
        var text = "           <idle>-0       [001] d.h1.  5123.456789012: mm_page_alloc: page=ffd9298781fe4b80 pfn=0x7f92e order=1 migratetype=0 gfp_flags=GFP_KERNEL\n";
        using var r = OpenText(text, strict: true);
        Assert.Equal(TraceFormat.FtraceText, r.Format);
        var e = r.Read()!;
        Assert.Equal("<idle>", e.Comm);
        Assert.Equal(0, e.Pid);
        Assert.Equal(5123_456_789_012L, e.Timestamp);
        Assert.Equal("GFP_KERNEL", e.Str("gfp_flags"));
        Assert.Equal(-1L + 2, e.S64("order"));
    }

    [Fact]
    public void Byte_order_mark_and_crlf_line_ends_are_accepted()
    {
        var bytes = new byte[] { 0xEF, 0xBB, 0xBF }.Concat(Encoding.UTF8.GetBytes(FtraceHeader.Replace("\n", "\r\n") +
            "           migwl-401     [000] .....    25.000001: mm_page_free: page=ffd9298781fe4b80 pfn=0x7f92e order=0\r\n")).ToArray();
        using var r = TraceOpener.Open(new MemoryStream(bytes), new TraceOpenOptions { Strict = true });
        Assert.Equal(TraceFormat.FtraceText, r.Format);
        Assert.Equal(0UL, Assert.Single(ReadAll(r)).U64("order"));
    }

    [Fact]
    public void Function_tracer_lines_are_ftrace_function_events()
    {
        var evs = ReadText("# tracer: function\n" +
            "           migwl-401     [000] ...1.    25.000001: move_to_new_folio <-migrate_pages_batch\n" +
            "           migwl-401     [000] ...1.    25.000002: mm_page_free: page=ffd9298781fe4b80 pfn=0x7f92e order=0\n");
        Assert.Equal(["ftrace:function", "kmem:mm_page_free"], evs.Select(e => e.Name));
        Assert.Equal("move_to_new_folio", evs[0].Str("ip"));
        Assert.Equal("migrate_pages_batch", evs[0].Str("parent_ip"));
        // and through the text writer and back
        var ms = new MemoryStream();
        using (var w = new FtraceTextWriter(ms, leaveOpen: true)) foreach (var e in evs) w.Write(e);
        ms.Position = 0;
        using var r = TraceOpener.Open(ms, new TraceOpenOptions { Strict = true });
        Assert.Equal(evs, ReadAll(r));
    }

    [Fact]
    public void Overwritten_ring_buffer_entries_are_a_data_loss_event_before_the_first_event()
    {
        using var r = OpenText("# tracer: nop\n#\n# entries-in-buffer/entries-written: 2/1002   #P:2\n#\n" +
            "           migwl-401     [000] .....    25.000001: mm_page_free: page=ffd9298781fe4b80 pfn=0x1 order=0\n" +
            "           migwl-401     [000] .....    25.000002: mm_page_free: page=ffd9298781fe4b80 pfn=0x2 order=0\n", strict: true);
        var evs = ReadAll(r);
        Assert.Equal([SyntheticEvents.DataLoss, "kmem:mm_page_free", "kmem:mm_page_free"], evs.Select(e => e.Name));
        Assert.Equal(1000UL, evs[0].U64("lost"));
        Assert.Equal(evs[1].Timestamp, evs[0].Timestamp);
        Assert.Equal(1000, r.Stats.LostEvents);
        Assert.Equal(3, r.Stats.Events);
        Assert.Equal(1000, r.Stats.Counters["entries_overwritten"].Value);
    }

    [Fact]
    public void Counter_clock_integer_timestamps()
    {
        var evs = ReadText("# tracer: nop\n            bash-1977  [000] ....  123456789012: mm_page_free: page=ffd9298781fe4b80 pfn=0x7f92e order=0\n");
        Assert.Equal(123456789012L, Assert.Single(evs).Timestamp);
    }

    [Fact]
    public void Lost_events_lines_become_data_loss_events_not_errors()
    {
        using var r = OpenText(FtraceHeader +
            "           migwl-401     [000] .....    25.000001: mm_page_free: page=ffd9298781fe4b80 pfn=0x7f92e order=0\n" +
            "CPU:1 [LOST 4321 EVENTS]\n" +
            "           migwl-401     [001] .....    25.000002: mm_page_free: page=ffd9298781fe4b80 pfn=0x7f92f order=0\n" +
            "CPU:0 [LOST 9 EVENTS]\n", strict: true);
        var evs = ReadAll(r);
        Assert.Equal(4, evs.Count);
        Assert.Equal(SyntheticEvents.DataLoss, evs[1].Name);
        Assert.Equal(4321UL, evs[1].U64("lost"));
        Assert.Equal(1, evs[1].Cpu);
        Assert.Equal(25_000_001_000L, evs[1].Timestamp);
        Assert.Equal(4330, r.Stats.LostEvents);
        Assert.Equal(2, r.Stats.DataLossMarkers);
        Assert.Equal(0, r.Stats.UnparsedLines);
        Assert.Equal(4, r.Header.CpuCount);
    }

    [Fact]
    public void Trace_cmd_dropped_and_perf_lost_records_become_data_loss_events()
    {
        using var r = OpenText("cpus=2\n           migwl-487   [000]    45.404999: mm_page_free: page=0xffffffff9aa189bc pfn=0x1 order=0\n" +
                               "CPU:1 [120 EVENTS DROPPED]\n" +
                               "CPU:0 [EVENTS DROPPED]\n", strict: true);
        var evs = ReadAll(r);
        Assert.Equal([0UL, 120UL, 0UL], evs.Select(e => e.U64("lost") ?? 0));
        Assert.Equal(120, r.Stats.LostEvents);
        Assert.Equal(2, r.Stats.DataLossMarkers);
        using var p = OpenText("            perf   564 [001]    62.125995:  kmem:mm_page_free: page=0x5fb5a pfn=0x5fb5a order=0\n" +
                               "            perf   564 [001]    62.125996: PERF_RECORD_LOST lost: 77\n", strict: true);
        var pe = ReadAll(p);
        Assert.Equal(SyntheticEvents.DataLoss, pe[1].Name);
        Assert.Equal(77UL, pe[1].U64("lost"));
        Assert.Equal(77, p.Stats.LostEvents);
    }

    [Fact]
    public void Decimal_pfns_of_2_6_35_style_traces()
    {
        var evs = ReadText(FtraceHeader +
            "           migwl-401     [000] .....    25.000001: mm_page_free_direct: page=ffffea0000123400 pfn=12345 order=0\n" +
            "           migwl-401     [000] .....    25.000002: mm_pagevec_free: page=ffffea0000123400 pfn=12346 order=0 cold=1\n" +
            "           migwl-401     [000] .....    25.000003: mm_page_alloc: page=ffffea0000123400 pfn=12347 order=0 migratetype=2 gfp_flags=GFP_HIGHUSER_MOVABLE\n" +
            "           migwl-401     [000] .....    25.000004: page_add_file_rmap: (page_add_file_rmap+0x0/0x60) page=0x1a2b mapcount=-1\n");
        Assert.Equal(["kmem:mm_page_free_direct", "kmem:mm_pagevec_free", "kmem:mm_page_alloc", "unknown:page_add_file_rmap"], evs.Select(e => e.Name));
        Assert.Equal([12345UL, 12346UL, 12347UL], evs.Take(3).Select(e => e.U64("pfn")!.Value));
        Assert.All(evs.Take(3), e => { e.TryGet("pfn", out var f); Assert.Equal(FieldStyle.Decimal, f.Style); });
        Assert.Equal(1L, evs[1].S64("cold"));
        Assert.Equal("page_add_file_rmap+0x0/0x60", evs[3].Probe);
        Assert.Equal(0x1a2bUL, evs[3].U64("page"));
        Assert.Equal(-1L, evs[3].S64("mapcount"));
    }

    [Fact]
    public void Hashed_and_unhashed_pointers_and_trace_cmd_0x_pointers()
    {
        var evs = ReadText(FtraceHeader +
            "           migwl-401     [000] .....    25.000001: mm_page_free: page=00000000a1b2c3d4 pfn=0x7f92e order=0\n" +
            "           migwl-401     [000] .....    25.000002: mm_page_free: page=ffd9298781fe4b80 pfn=0x7f92e order=0\n" +
            "           migwl-401     [000] .....    25.000003: mm_page_free: page=0xffffffff9aa189bc pfn=0x7f92e order=0\n");
        Assert.Equal([0xa1b2c3d4UL, 0xffd9298781fe4b80UL, 0xffffffff9aa189bcUL], evs.Select(e => e.U64("page")!.Value));
        evs[0].TryGet("page", out var p);
        Assert.Equal(FieldStyle.Pointer, p.Style);
        Assert.Equal("00000000a1b2c3d4", p.FormatValue());
    }

    [Fact]
    public void Kprobe_columns_symbolized_addresses_and_kretprobe_arrows()
    {
        var raw = ReadText(FtraceHeader +
            "           migwl-401     [000] .....    25.439854: move_to_new_folio_ret: (migrate_pages_batch+0x462/0xc70 <- move_to_new_folio) ret=-11\n");
        Assert.Equal("migrate_pages_batch+0x462/0xc70 <- move_to_new_folio", raw[0].Probe);
        Assert.Equal(-11L, raw[0].S64("ret"));
        var report = ReadText("cpus=2\n           migwl-487   [000]    45.404999: migrate_mapping_ret:  (ffffffff9992f2a0 <- ffffffff99930e24) ret=0\n" +
                              "           migwl-487   [000]    45.405000: print:                tracing_mark_write: migwl: iter 0 move_pages -> node1 end ret=0\n");
        Assert.Equal("ffffffff9992f2a0 <- ffffffff99930e24", report[0].Probe);
        Assert.Equal("unknown:migrate_mapping_ret", report[0].Name);
        Assert.Equal(0L, report[0].S64("ret"));
        Assert.Equal("ftrace:print", report[1].Name);
        Assert.Equal("migwl: iter 0 move_pages -> node1 end ret=0", report[1].Str("buf"));
    }

    [Fact]
    public void Tgid_column_is_accepted()
    {
        var evs = ReadText("            bash-1977  (   1977) [000] .... 17284.993652: mm_page_free: page=ffd9298781fe4b80 pfn=0x7f92e order=0\n" +
                           "            bash-1978  (-------) [001] .... 17284.993653: mm_page_free: page=ffd9298781fe4b80 pfn=0x7f92e order=0\n");
        Assert.Equal([1977, 1978], evs.Select(e => e.Pid));
        Assert.Equal("....", evs[0].Flags);
    }

    [Fact]
    public void Unknown_events_keep_key_value_fields_or_the_whole_payload()
    {
        using var r = OpenText(FtraceHeader +
            "           migwl-401     [000] .....    25.000001: my_event: a=1 b=-2 c=0x1f d=GFP_X e=007\n" +
            "           migwl-401     [000] .....    25.000002: my_printk: something happened: 3 pages\n" +
            "           migwl-401     [000] .....    25.000003: empty_event:\n", strict: true);
        var evs = ReadAll(r);
        Assert.Equal("unknown:my_event", evs[0].Name);
        Assert.Equal(1UL, evs[0].U64("a"));
        Assert.Equal(-2L, evs[0].S64("b"));
        Assert.Equal(0x1fUL, evs[0].U64("c"));
        Assert.Equal("GFP_X", evs[0].Str("d"));
        Assert.Equal(FieldType.Str, evs[0].Fields[4].Type);
        Assert.Equal("something happened: 3 pages", evs[1].Str("text"));
        Assert.Empty(evs[2].Fields);
        Assert.Equal(3, r.Stats.Counters["events_without_format"].Value);
    }

    [Fact]
    public void Garbage_line_is_counted_and_strict_mode_names_file_and_line()
    {
        var text = FtraceHeader +
            "           migwl-401     [000] .....    25.000001: mm_page_free: page=ffd9298781fe4b80 pfn=0x7f92e order=0\n" +
            "this is not a trace line\n" +
            "           migwl-401     [000] .....    25.000002: mm_page_free: page=ffd9298781fe4b80 pfn=0x7f92e order=0\n";
        using (var r = OpenText(text))
        {
            Assert.Equal(2, ReadAll(r).Count);
            Assert.Equal(1, r.Stats.UnparsedLines);
        }
        using var strict = OpenText(text, strict: true, name: "x/trace.txt");
        strict.Read();
        var e = Assert.Throws<TraceInputException>(() => strict.Read());
        Assert.Equal(6, e.Line);
        Assert.StartsWith("x/trace.txt:6: expected ", e.Message);
        Assert.Contains("'this is not a trace line'", e.Message);
        Assert.DoesNotContain("\n", e.Message);
    }

    [Fact]
    public void Truncated_last_line_is_a_clean_end()
    {
        using var r = OpenText(FtraceHeader +
            "           migwl-401     [000] .....    25.000001: mm_page_free: page=ffd9298781fe4b80 pfn=0x7f92e order=0\n" +
            "           migwl-401     [00", strict: true);
        Assert.Single(ReadAll(r));
        Assert.Equal(1, r.Stats.Counters["truncated_last_line"].Value);
        Assert.Null(r.Read());
    }

    [Fact]
    public void Known_event_printed_differently_is_kept_generically_and_counted()
    {
        using var r = OpenText(FtraceHeader + "           migwl-401     [000] .....    25.000001: mm_page_free: page=ffd9298781fe4b80 order=0 extra=1\n");
        var e = r.Read()!;
        Assert.Equal("kmem:mm_page_free", e.Name);
        Assert.Equal(0UL, e.U64("order"));
        Assert.Equal(1, r.Stats.Counters["template_mismatch"].Value);
    }

    [Fact]
    public void Compressed_inputs_are_detected_by_content()
    {
        var text = FtraceHeader + "           migwl-401     [000] .....    25.000001: mm_page_free: page=ffd9298781fe4b80 pfn=0x7f92e order=0\n";
        var plain = Encoding.UTF8.GetBytes(text);
        var gz = new MemoryStream();
        using (var g = new GZipStream(gz, CompressionLevel.Fastest, true)) g.Write(plain);
        var zst = new ZstdSharp.Compressor().Wrap(plain).ToArray();
        var xz = Convert.FromBase64String(XzOfSample);
        foreach (var bytes in new[] { gz.ToArray(), zst, xz })
        {
            using var r = TraceOpener.Open(new MemoryStream(bytes), new TraceOpenOptions { Strict = true });
            var evs = ReadAll(r);
            Assert.Equal(TraceFormat.FtraceText, r.Format);
            Assert.Equal(0x7f92eUL, Assert.Single(evs).U64("pfn"));
        }
    }

    // xz of the text above (made with xz 5)
    const string XzOfSample = "/Td6WFoAAATm1rRGAgAhARYAAAB0L+Wj4ACsAItdABGICweBYTlySP4E339KXpoASYpFjprKRn8nUrIiHgvGjyWh6fEHVWeHSedd/fH7cYAkl/0UB3vVlxG1lmbkO3XeiYRJsB7QjpnvQSg7Uj/z8mh+uqQntKW/1YDc9S5+pmm5TM4deYzxKdZoUqQ9HLrh3GuteBR1MTOF84eo0raFd180AiaQKoviAAAAAHHjW/TK8lINAAGnAa0BAADUd+9EscRn+wIAAAAABFla";

    [Fact]
    public void Binary_magics_are_routed_to_the_factory_table()
    {
        var dat = new byte[] { 0x17, 0x08, 0x44, (byte)'t', (byte)'r', (byte)'a', (byte)'c', (byte)'i', (byte)'n', (byte)'g', (byte)'6', 0 };
        Assert.Equal(TraceFormat.TraceDat, FormatDetector.Detect(dat));
        Assert.Equal(TraceFormat.PerfData, FormatDetector.Detect("PERFILE2\0\0\0\0"u8));
        if (FormatDetector.FactoryFor(TraceFormat.PerfData) == null)
        {
            var e = Assert.Throws<TraceInputException>(() => TraceOpener.Open(new MemoryStream("PERFILE2\0\0\0\0\0\0\0\0"u8.ToArray()), new TraceOpenOptions { SourceName = "p.data" }));
            Assert.Contains("not supported yet", e.Message);
        }
        var unknown = Assert.Throws<TraceInputException>(() => TraceOpener.Open(new MemoryStream("hello world\n"u8.ToArray()), new TraceOpenOptions { SourceName = "h.txt" }));
        Assert.StartsWith("h.txt:1: expected a trace", unknown.Message);
    }

    [Fact]
    public void Time_sorter_merges_out_of_order_cpus_stably_and_counts_late_events()
    {
        var text = FtraceHeader +
            "  a-1 [000] .....    10.000003: mm_page_free: page=ffd9298781fe4b80 pfn=0x3 order=0\n" +
            "  a-1 [001] .....    10.000001: mm_page_free: page=ffd9298781fe4b80 pfn=0x1 order=0\n" +
            "  a-1 [000] .....    10.000004: mm_page_free: page=ffd9298781fe4b80 pfn=0x4 order=0\n" +
            "  a-1 [001] .....    10.000002: mm_page_free: page=ffd9298781fe4b80 pfn=0x2 order=0\n" +
            "  a-1 [001] .....    10.000002: mm_page_free: page=ffd9298781fe4b80 pfn=0x22 order=0\n";
        using (var s = new TimeSorter(OpenText(text)))
        {
            var evs = ReadAll(s);
            Assert.Equal([1UL, 2UL, 0x22UL, 3UL, 4UL], evs.Select(e => e.U64("pfn")!.Value));
            Assert.Equal(0, s.OutOfOrderEvents);
        }
        using (var small = new TimeSorter(OpenText(text), window: 2))
        {
            var evs = ReadAll(small);
            Assert.Equal(5, evs.Count);
            Assert.True(small.OutOfOrderEvents > 0);
            Assert.Equal(small.OutOfOrderEvents, small.Stats.Counters["out_of_order_events"].Value);
            Assert.Equal(StatSeverity.Error, small.Stats.Counters["out_of_order_events"].Severity);
        }
    }
}
