using System.Text;
using Replayer.Core;
using Replayer.Formats.Tests.Binary;
using Replayer.TestKit;

namespace Replayer.Formats.Tests;

/// <summary>
/// The text reader's <c>ReadBlock</c> (lines parsed straight into an <see cref="EventBlock"/>) against its
/// <c>Read()</c>, reader against reader over the same input: every event equal member by member (timestamp, CPU,
/// pid, comm, name, probe, flags, source line, each field's name, kind, bits and text), then equal
/// <see cref="ReadStats"/> and header; block sizes 1, 7 and 4096 and the mixed schedule of
/// <see cref="ReadBlockDifferentialTests.Compare"/>. Inputs: every text capture under traces/ (raw ftrace,
/// trace-cmd report, perf script default and <c>-F</c> all, the vmcap traces, the synthetic ones) and inline
/// texts for the rarer paths (overwritten ring-buffer entries, LOST lines, perf lost records, the function
/// tracer, trace_printk, unknown events, damaged lines). Strict-mode errors: the same message after the same events.
/// </summary>
public class TextReadBlockDifferentialTests
{
    /// <summary>Every text trace under traces/, relative to it.</summary>
    public static IEnumerable<string> TextFiles()
    {
        var files = new List<string>();
        foreach (var f in Directory.EnumerateFiles(Repo.Traces, "*", SearchOption.AllDirectories))
        {
            var name = Path.GetFileName(f);
            if (name is "trace.txt" or "trace.txt.zst" or "report_host.txt.zst" or "perf_script.txt.zst" or "perf_script_F_all.txt.zst")
                files.Add(Path.GetRelativePath(Repo.Traces, f));
        }
        files.Sort(StringComparer.Ordinal);
        return files;
    }

    public static TheoryData<string, string> TextFileSchedules()
    {
        var d = new TheoryData<string, string>();
        foreach (var f in TextFiles())
            foreach (var s in ReadBlockDifferentialTests.Schedules)
                d.Add(f, s);
        return d;
    }

    [Fact]
    public void The_text_inputs_are_all_there()
    {
        var files = TextFiles().ToList();
        string all = string.Join(", ", files);
        Assert.True(files.Count(f => f.EndsWith("ftrace/trace.txt.zst", StringComparison.Ordinal)) >= 5, all);
        Assert.True(files.Count(f => f.EndsWith("report_host.txt.zst", StringComparison.Ordinal)) >= 3, all);
        Assert.True(files.Count(f => f.EndsWith("perf_script.txt.zst", StringComparison.Ordinal)) >= 3, all);
        Assert.True(files.Count(f => f.EndsWith("perf_script_F_all.txt.zst", StringComparison.Ordinal)) >= 3, all);
        Assert.Equal(2, files.Count(f => f.StartsWith("vmcap-", StringComparison.Ordinal)));
        Assert.True(files.Count(f => f.StartsWith("synthetic", StringComparison.Ordinal)) >= 10, all);
    }

    [Theory]
    [MemberData(nameof(TextFileSchedules))]
    public void Text_capture_ReadBlock_gives_the_events_and_stats_of_Read(string file, string schedule)
    {
        string path = Path.Combine(Repo.Traces, file);
        using (var probe = TraceOpener.Open(path)) Assert.IsType<TextTraceReader>(probe);
        long n = ReadBlockDifferentialTests.Compare(() => TraceOpener.Open(path), schedule, file);
        Assert.True(n > 10, $"{file}: only {n} events");
    }

    const string Header = "# tracer: nop\n#\n# entries-in-buffer/entries-written: 4/4   #P:4\n#\n";

    public static TheoryData<string, string> InlineTexts() => new()
    {
        { "overwritten", "# tracer: nop\n#\n# entries-in-buffer/entries-written: 2/1002   #P:2\n#\n" +
            "           migwl-401     [000] .....    25.000001: mm_page_free: page=ffd9298781fe4b80 pfn=0x1 order=0\n" +
            "           migwl-401     [000] .....    25.000002: mm_page_free: page=ffd9298781fe4b80 pfn=0x2 order=0\n" +
            "           migwl-401     [000] .....    25.000003: mm_page_free: page=ffd9298781fe4b80 pfn=0x3 order=0\n" },
        { "overwritten, then a LOST line first", "# tracer: nop\n#\n# entries-in-buffer/entries-written: 2/12   #P:2\n#\n" +
            "CPU:1 [LOST 5 EVENTS]\n" +
            "           migwl-401     [000] .....    25.000002: mm_page_free: page=ffd9298781fe4b80 pfn=0x2 order=0\n" },
        { "lost lines", Header +
            "           migwl-401     [000] .....    25.000001: mm_page_free: page=ffd9298781fe4b80 pfn=0x7f92e order=0\n" +
            "CPU:1 [LOST 4321 EVENTS]\n" +
            "           migwl-401     [001] .....    25.000002: mm_page_free: page=ffd9298781fe4b80 pfn=0x7f92f order=0\n" +
            "CPU:0 [LOST 9 EVENTS]\n" },
        { "trace-cmd dropped", "cpus=2\n           migwl-487   [000]    45.404999: mm_page_free: page=0xffffffff9aa189bc pfn=0x1 order=0\n" +
            "CPU:1 [120 EVENTS DROPPED]\nCPU:0 [EVENTS DROPPED]\n" },
        { "perf lost", "            perf   564 [001]    62.125995:  kmem:mm_page_free: page=0x5fb5a pfn=0x5fb5a order=0\n" +
            "            perf   564 [001]    62.125996: PERF_RECORD_LOST lost: 77\n" },
        { "function tracer", "# tracer: function\n" +
            "           migwl-401     [000] ...1.    25.000001: move_to_new_folio <-migrate_pages_batch\n" +
            "           migwl-401     [000] ...1.    25.000002: mm_page_free: page=ffd9298781fe4b80 pfn=0x7f92e order=0\n" },
        { "probes and print", "cpus=2\n           migwl-487   [000]    45.404999: migrate_mapping_ret:  (ffffffff9992f2a0 <- ffffffff99930e24) ret=0\n" +
            "           migwl-487   [000]    45.405000: print:                tracing_mark_write: migwl: iter 0 move_pages -> node1 end ret=0\n" +
            "           migwl-401     [000] .....    25.439854: move_to_new_folio_ret: (migrate_pages_batch+0x462/0xc70 <- move_to_new_folio) ret=-11\n" +
            "           migwl-401     [000] .....    25.439855: tracing_mark_write: hello there\n" },
        { "trace_printk", "cpus=2\n           migwl-487   [000]    45.404999: bprint:               do_thing: value 5 here\n" +
            "           migwl-487   [000]    45.405000: bputs:                do_other: (NO FORMAT FOUND at ffffffff81000000)\n" +
            "           migwl-487   [000]    45.405001: bputs:                no separator at all\n" +
            "           migwl-487   [000]    45.405002: bprint:               just_ip:\n" },
        { "unknown events and templates that do not fit", Header +
            "           migwl-401     [000] .....    25.000001: my_event: a=1 b=0x10 c=-5 d=word e=00\n" +
            "           migwl-401     [000] .....    25.000002: other:thing: free text  with  blanks\n" +
            "           migwl-401     [000] .....    25.000003: mm_page_free: something else entirely\n" +
            "           migwl-401     [000] .....    25.000004: empty_one:\n" },
        { "garbage and truncated last line, not strict", Header +
            "           migwl-401     [000] .....    25.000001: mm_page_free: page=ffd9298781fe4b80 pfn=0x1 order=0\n" +
            "this is not an event line\n" +
            "           migwl-401     [000] .....    25.000002: mm_page_free: page=ffd9298781fe4b80 pfn=0x2 order=0\n" +
            "           migwl-401     [000] .....    25.000003: mm_page_free: page=ffd9298781fe4b80 pfn=0x3 or" },
    };

    [Theory]
    [MemberData(nameof(InlineTexts))]
    public void Inline_text_ReadBlock_gives_the_events_and_stats_of_Read(string what, string text)
    {
        foreach (var s in ReadBlockDifferentialTests.Schedules)
        {
            long n = ReadBlockDifferentialTests.Compare(() => TestUtil.OpenText(text), s, what + " " + s);
            Assert.True(n >= 2, $"{what}: {n} events");
        }
    }

    [Fact]
    public void The_overwritten_entries_loss_comes_first_both_ways_even_one_row_at_a_time()
    {
        var text = "# tracer: nop\n#\n# entries-in-buffer/entries-written: 2/1002   #P:2\n#\n" +
            "           migwl-401     [000] .....    25.000001: mm_page_free: page=ffd9298781fe4b80 pfn=0x1 order=0\n" +
            "           migwl-401     [000] .....    25.000002: mm_page_free: page=ffd9298781fe4b80 pfn=0x2 order=0\n";
        using var r = (TextTraceReader)TestUtil.OpenText(text, strict: true);
        var block = new EventBlock(1);
        Assert.Equal(1, r.ReadBlock(block, 1));
        Assert.Equal(SyntheticEvents.DataLoss, block.NameOf(0));
        Assert.Equal(1000UL, block[0].U64("lost"));
        Assert.Equal(5, block.SourceOf(0));
        // the event the loss announces, then the next, through Read() on the same reader
        var first = r.Read()!;
        Assert.Equal(("kmem:mm_page_free", 1UL, 5L), (first.Name, first.U64("pfn")!.Value, first.Source));
        Assert.Equal(1, r.ReadBlock(block, 10));
        Assert.Equal(2UL, block[1].U64("pfn"));
        Assert.Equal(0, r.ReadBlock(block, 10));
        Assert.Equal((3L, 1000L, 1L), (r.Stats.Events, r.Stats.LostEvents, r.Stats.DataLossMarkers));
    }

    public static TheoryData<string, string> DamagedTexts() => new()
    {
        { "garbage line", Header +
            "           migwl-401     [000] .....    25.000001: mm_page_free: page=ffd9298781fe4b80 pfn=0x1 order=0\n" +
            "           migwl-401     [000] .....    25.000002: mm_page_free: page=ffd9298781fe4b80 pfn=0x2 order=0\n" +
            "garbage ]] here\n" +
            "           migwl-401     [000] .....    25.000003: mm_page_free: page=ffd9298781fe4b80 pfn=0x3 order=0\n" },
        { "bad pid", Header +
            "           migwl-401     [000] .....    25.000001: mm_page_free: page=ffd9298781fe4b80 pfn=0x1 order=0\n" +
            "           migwl-4x1     [000] .....    25.000002: mm_page_free: page=ffd9298781fe4b80 pfn=0x2 order=0\n" },
        { "no event name", Header +
            "           migwl-401     [000] .....    25.000001: mm_page_free: page=ffd9298781fe4b80 pfn=0x1 order=0\n" +
            "           migwl-401     [000] .....    25.000002:\n" },
        { "bad format comment", Header + "# replayer:format nonsense\n" +
            "           migwl-401     [000] .....    25.000001: mm_page_free: page=ffd9298781fe4b80 pfn=0x1 order=0\n" },
        { "garbage after overwritten entries", "# tracer: nop\n#\n# entries-in-buffer/entries-written: 2/1002   #P:2\n#\n" +
            "           migwl-401     [000] .....    25.000001: mm_page_free: page=ffd9298781fe4b80 pfn=0x1 order=0\n" +
            "garbage\n" },
    };

    [Theory]
    [MemberData(nameof(DamagedTexts))]
    public void Strict_errors_are_the_same_both_ways(string what, string text)
    {
        var (readEvents, readError) = Drain(text, r => r.Read() is { } e ? [e] : []);
        Assert.NotNull(readError);
        Assert.StartsWith("inline.txt", readError);
        foreach (int size in new[] { 1, 7, 4096 })
        {
            var block = new EventBlock(4);
            var (blockEvents, blockError) = Drain(text, r =>
            {
                block.Clear();
                ((TextTraceReader)r).ReadBlock(block, size);
                return block.ToTraceEvents();
            }, () => block.ToTraceEvents());
            Assert.True(readError == blockError, $"{what}, blocks of {size}: Read() threw '{readError}', ReadBlock '{blockError}'");
            Assert.Equal(readEvents.Count, blockEvents.Count);
            for (int i = 0; i < readEvents.Count; i++)
            {
                var b = new EventBlock(1);
                b.Add(blockEvents[i]);
                ReadBlockDifferentialTests.AssertSame(readEvents[i], b, 0, $"{what} event {i}");
            }
        }
        // and not strict: counted, the same both ways
        foreach (var s in ReadBlockDifferentialTests.Schedules)
            ReadBlockDifferentialTests.Compare(() => TestUtil.OpenText(text), s, what + " not strict " + s);
    }

    [Fact]
    public void A_truncated_last_line_in_strict_mode_ends_both_ways_alike()
    {
        var text = Header +
            "           migwl-401     [000] .....    25.000001: mm_page_free: page=ffd9298781fe4b80 pfn=0x1 order=0\n" +
            "           migwl-401     [000] .....    25.000002: mm_page_free: page=ffd9298781fe4b80 pfn=0x2 ord";
        foreach (var s in ReadBlockDifferentialTests.Schedules)
            Assert.Equal(1, ReadBlockDifferentialTests.Compare(() => TestUtil.OpenText(text, strict: true), s, "truncated " + s));
        using var r = TestUtil.OpenText(text, strict: true);
        var block = new EventBlock();
        Assert.Equal(1, ((TextTraceReader)r).ReadBlock(block, 100));
        Assert.Equal(1, r.Stats.Counters["truncated_last_line"].Value);
    }

    /// <summary>Events a strict reader gives (through <paramref name="step"/>) until the end or its error message.
    /// <paramref name="partial"/> gives the events a step appended before it threw.</summary>
    static (List<TraceEvent> Events, string? Error) Drain(string text, Func<ITraceReader, TraceEvent[]> step, Func<TraceEvent[]>? partial = null)
    {
        using var r = TestUtil.OpenText(text, strict: true);
        var list = new List<TraceEvent>();
        try
        {
            while (true)
            {
                var got = step(r);
                if (got.Length == 0) return (list, null);
                list.AddRange(got);
            }
        }
        catch (TraceInputException e)
        {
            if (partial != null) list.AddRange(partial());
            return (list, e.Message);
        }
    }
}
