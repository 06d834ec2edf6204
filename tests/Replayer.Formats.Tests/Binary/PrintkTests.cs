using System.Text;
using Replayer.Core;
using Replayer.Formats.Binary;
using Replayer.Formats.Schema;
using Replayer.TestKit;

namespace Replayer.Formats.Tests.Binary;

/// <summary>
/// trace_printk in trace.dat: the printk formats section, <c>ftrace:bprint</c> (vbin_printf arguments) and
/// <c>ftrace:bputs</c>, against messages worked out by hand from the kernel's rules, against
/// <c>trace-cmd report</c> of the same file, against the text reader of that report, and Read() against ReadBlock.
/// </summary>
public class PrintkTests
{
    static List<TraceEvent> ReadAll(byte[] data, out ReadStats stats)
    {
        using var r = new TraceDatReader(new MemoryStream(data), "printk.dat");
        var list = new List<TraceEvent>();
        while (r.Read() is { } e) list.Add(e);
        stats = r.Stats;
        return list;
    }

    [Fact]
    public void Printk_formats_parse_with_kernel_escapes_and_count_garbage()
    {
        var text = "0xffffffff82000000 : \"a\\tb \\\"q\\\" c\\\\d\\n\"\nffffffff82000010 : \"no 0x\"\ngarbage\n0xzz : \"x\"\n0x10 : unquoted\n\n";
        var map = PrintkFormats.Parse(Encoding.UTF8.GetBytes(text), out int bad);
        Assert.Equal(3, bad);
        Assert.Equal(2, map.Count);
        Assert.Equal("a\tb \"q\" c\\d\n", map[0xffffffff82000000]);
        Assert.Equal("no 0x", map[0xffffffff82000010]);
    }

    /// <summary>perf's tracing data has the same layout: its printk formats are read too (the decoders are shared).</summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Perf_tracing_data_printk_formats_are_read(bool big)
    {
        var formats = new List<(string, string)> { ("ftrace", SyntheticPrintk.BprintFormat) };
        var td = TracingData.Parse(TraceDatLayout.Preamble("0.6", big).Concat(
            TraceDatLayout.V6Metadata(big, formats, SyntheticCaptures.Kallsyms, SyntheticCaptures.Cmdlines, SyntheticPrintk.PrintkText())).ToArray(), 0, "perf");
        Assert.Equal(SyntheticPrintk.Formats.Length, td.PrintkFormats!.Count);
        Assert.Equal(1, td.PrintkBadLines);
        Assert.Equal("pct 100%% done %d\n", td.PrintkFormats[0xffffffff82000700]);
        Assert.Equal(2, td.Cmdlines.Count);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Bprint_and_bputs_messages_are_rendered_by_the_kernel_rules(bool big)
    {
        var events = ReadAll(SyntheticPrintk.TraceDat(big), out var stats);
        var cases = SyntheticPrintk.Cases(big);
        var printk = events.Where(e => e.Name is "ftrace:bprint" or "ftrace:bputs").ToList();
        Assert.Equal(cases.Count, printk.Count);
        for (int i = 0; i < cases.Count; i++)
        {
            var c = cases[i];
            var e = printk[i];
            Assert.Equal(c.Puts ? "ftrace:bputs" : "ftrace:bprint", e.Name);
            Assert.Equal("page_add_file_rmap", e.Str("ip"));
            string field = c.Puts ? "str" : "buf";
            if (c.Message == null) Assert.True(e.Fields.Length == 1, $"{c.Label}: message left out, got {e}");
            else Assert.True(c.Message == e.Str(field), $"{c.Label}: want [{c.Message}] got [{e.Str(field)}]");
        }
        // the missing addresses and the truncated buf are counted, nothing thrown; the garbage line too
        Assert.Equal(2, stats.Counters["binary.unevaluated_field.ftrace:bprint.buf"].Value);
        Assert.Equal(1, stats.Counters.First(kv => kv.Key == "binary.unevaluated_field.ftrace:bputs.str").Value.Value);
        Assert.Equal(1, stats.Counters.First(kv => kv.Key == "tracedat.printk_bad_lines").Value.Value);
        Assert.Equal(0, stats.UnparsedLines);
    }

    [Fact]
    public void Without_printk_formats_the_messages_are_left_out_and_counted()
    {
        using (var r = new TraceDatReader(new MemoryStream(SyntheticPrintk.TraceDat(false)), "p.dat"))
            Assert.Equal(SyntheticPrintk.Formats.Length.ToString(), r.Header.Properties["printk_formats.count"]);
        var events = ReadAll(SyntheticPrintk.TraceDat(false, withPrintk: false), out var stats);
        var cases = SyntheticPrintk.Cases(false);
        var printk = events.Where(e => e.Name is "ftrace:bprint" or "ftrace:bputs").ToList();
        Assert.Equal(cases.Count, printk.Count);
        Assert.All(printk, e => Assert.Equal(["ip"], e.Fields.Select(f => f.Name)));
        Assert.Equal(cases.Count(c => !c.Puts), stats.Counters["binary.unevaluated_field.ftrace:bprint.buf"].Value);
        Assert.Equal(cases.Count(c => c.Puts), stats.Counters["binary.unevaluated_field.ftrace:bputs.str"].Value);
    }

    /// <summary>trace-cmd's v7 conversion (printk formats in section 20, zstd-compressed) reads as the v6 original.</summary>
    [Fact]
    public void V7_conversion_reads_as_the_v6_original()
    {
        var tc = BinaryTestKit.RequireTool("trace-cmd", "trace-cmd");
        var dir = Repo.TempDir("printk-v7");
        try
        {
            var v6 = Path.Combine(dir, "v6.dat");
            var v7 = Path.Combine(dir, "v7.dat");
            File.WriteAllBytes(v6, SyntheticPrintk.TraceDat(false));
            BinaryTestKit.Run(tc, $"convert -i {v6} -o {v7} --file-version 7 --compression zstd");
            var a = ReadAll(File.ReadAllBytes(v6), out _);
            var b = ReadAll(File.ReadAllBytes(v7), out var stats7);
            using (var r = new TraceDatReader(v7)) Assert.Equal("trace.dat v7", r.Header.FormatVersion);
            Assert.Equal(a.Count, b.Count);
            for (int i = 0; i < a.Count; i++)
            {
                Assert.Equal(a[i].Name, b[i].Name);
                Assert.True(a[i].Fields.SequenceEqual(b[i].Fields), $"event {i}: v6 {a[i]} v7 {b[i]}");
            }
            Assert.Contains(b, e => e.Name == "ftrace:bprint" && e.Str("buf") == "pct 100% done 9");
            Assert.Equal(0, stats7.UnparsedLines);
        }
        finally { Directory.Delete(dir, true); }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void ReadBlock_gives_the_events_and_stats_of_Read(bool big)
    {
        var data = SyntheticPrintk.TraceDat(big);
        foreach (var schedule in ReadBlockDifferentialTests.Schedules)
            ReadBlockDifferentialTests.Compare(() => new TraceDatReader(new MemoryStream(data), "printk.dat"), schedule, "printk " + big);
    }

    /// <summary>trace-cmd report of the synthetic file, line for line, for the cases libtraceevent renders as the kernel
    /// does; the others (h/hh/c sizes, '-' flag, %px, missing or short data) are checked against the kernel rules above.</summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Messages_match_trace_cmd_report(bool big)
    {
        var tc = BinaryTestKit.RequireTool("trace-cmd", "trace-cmd");
        var dir = Repo.TempDir("printk");
        try
        {
            var path = Path.Combine(dir, "printk.dat");
            File.WriteAllBytes(path, SyntheticPrintk.TraceDat(big));
            var report = BinaryTestKit.Run(tc, $"report -i {path}").Split('\n', StringSplitOptions.RemoveEmptyEntries)
                .Where(l => !l.StartsWith("cpus=", StringComparison.Ordinal)).ToList();
            var mine = TraceDatReportDifferentialTests.RenderAll(path, out _);
            Assert.Equal(report.Count, mine.Count);
            var cases = SyntheticPrintk.Cases(big);
            int k = 0, compared = 0;
            for (int i = 0; i < report.Count; i++)
            {
                bool isPrintk = mine[i].Contains(" bprint: ", StringComparison.Ordinal) || mine[i].Contains(" bputs: ", StringComparison.Ordinal);
                if (!isPrintk) continue; // the other events are compared with report elsewhere
                if (!cases[k++].TraceCmdAgrees) continue;
                Assert.Equal(BinaryTestKit.Squash(report[i]).TrimEnd(), BinaryTestKit.Squash(mine[i]).TrimEnd());
                if (isPrintk) compared++;
            }
            Assert.Equal(cases.Count, k);
            Assert.Equal(cases.Count(c => c.TraceCmdAgrees), compared);

            // The text reader on that report: the same canonical ip/message fields as the binary reader.
            var reportPath = Path.Combine(dir, "report.txt");
            File.WriteAllText(reportPath, string.Join('\n', report) + "\n");
            using var text = TraceOpener.Open(reportPath);
            var fromText = new List<TraceEvent>();
            while (text.Read() is { } e) fromText.Add(e);
            var fromBinary = ReadAll(File.ReadAllBytes(path), out _);
            Assert.Equal(fromBinary.Count, fromText.Count);
            k = 0;
            for (int i = 0; i < fromBinary.Count; i++)
            {
                if (fromBinary[i].Name is not ("ftrace:bprint" or "ftrace:bputs")) continue;
                var c = cases[k++];
                Assert.Equal(fromBinary[i].Name, fromText[i].Name);
                if (!c.FieldsAgree) continue; // trace-cmd printed something else
                Assert.True(fromBinary[i].Fields.SequenceEqual(fromText[i].Fields), $"{c.Label}: binary {fromBinary[i]} text {fromText[i]}");
            }
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void A_printk_section_larger_than_the_file_is_one_TraceInputException()
    {
        var data = SyntheticPrintk.TraceDat(false);
        var text = Encoding.UTF8.GetBytes(SyntheticPrintk.PrintkText());
        int at = data.AsSpan().IndexOf(text);
        Assert.True(at > 4);
        BitConverter.GetBytes(0x7ffffff0u).CopyTo(data, at - 4);
        var e = Assert.Throws<TraceInputException>(() => new TraceDatReader(new MemoryStream(data), "p.dat"));
        Assert.Contains("printk formats size", e.Message);
        Assert.Equal(at - 4, e.Offset);
    }

    /// <summary>Hostile formats and arguments: huge or negative '*' widths and precisions are capped, a conversion the
    /// kernel rejects or an unterminated string leaves the message out; nothing throws.</summary>
    [Fact]
    public void Hostile_formats_and_arguments_are_bounded()
    {
        ulong f1 = 0xffffffff83000000, f2 = f1 + 0x10, f3 = f1 + 0x20, f4 = f1 + 0x30, f5 = f1 + 0x40;
        var formats = new List<(ulong, string)> { (f1, "[%*d]"), (f2, "[%.*s]"), (f3, "[%99999999d]"), (f4, "bad %y %d"), (f5, "unterminated %s") };
        SyntheticPrintk.Args A() => new(false);
        var cases = new List<SyntheticPrintk.Case>
        {
            new("huge-star", f1, A().Int(4, int.MaxValue).Int(4, 1).Bytes(), null),
            new("negative-star", f1, A().Int(4, -3).Int(4, 1).Bytes(), "[1  ]"),
            new("negative-prec", f2, A().Int(4, -1).Str("abc").Bytes(), "[abc]"),
            new("huge-width", f3, A().Int(4, 1).Bytes(), null),
            new("bad-conv", f4, A().Int(4, 1).Bytes(), null),
            new("unterminated", f5, Encoding.ASCII.GetBytes("abcd"), null),
        };
        var events = ReadAll(SyntheticPrintk.TraceDat(false, formatsOverride: formats, casesOverride: cases), out var stats)
            .Where(e => e.Name == "ftrace:bprint").ToList();
        Assert.Equal(cases.Count, events.Count);
        Assert.Equal(4096 + 2, events[0].Str("buf")!.Length); // width capped
        Assert.Equal("[1  ]", events[1].Str("buf"));
        Assert.Equal("[abc]", events[2].Str("buf"));
        Assert.Equal(4096 + 2, events[3].Str("buf")!.Length);
        Assert.Single(events[4].Fields);
        Assert.Single(events[5].Fields);
        Assert.Equal(2, stats.Counters["binary.unevaluated_field.ftrace:bprint.buf"].Value);
    }

    /// <summary>Replayer's own ftrace text (self-described formats) reads back to the binary reader's printk events.</summary>
    [Fact]
    public void Printk_events_round_trip_through_the_ftrace_text_writer()
    {
        var events = ReadAll(SyntheticPrintk.TraceDat(false), out _).Where(e => e.Name is "ftrace:bprint" or "ftrace:bputs").ToList();
        var ms = new MemoryStream();
        using (var w = new FtraceTextWriter(ms, leaveOpen: true)) foreach (var e in events) w.Write(e);
        ms.Position = 0;
        using var r = TraceOpener.Open(ms, new TraceOpenOptions { Strict = true });
        var back = new List<TraceEvent>();
        while (r.Read() is { } e) back.Add(e);
        Assert.Equal(events.Count, back.Count);
        for (int i = 0; i < events.Count; i++)
        {
            Assert.Equal(events[i].Name, back[i].Name);
            // a message holding a tab or newline is the writer's documented lossy case
            if (events[i].Fields.Any(f => f.Type == FieldType.Str && f.Text!.IndexOfAny(['\t', '\n']) >= 0)) continue;
            Assert.True(events[i].Fields.SequenceEqual(back[i].Fields), $"{events[i]} -> {back[i]}");
        }
    }

    [Fact]
    public void Text_reader_reads_report_printk_lines()
    {
        var lines = """
            migwl-100   [000]  2.000000: bprint:               page_add_file_rmap: hello 5 world
            migwl-100   [000]  2.000001: bputs:                page_add_file_rmap: just a string
            migwl-100   [000]  2.000002: bprint:               page_add_file_rmap: (NO FORMAT FOUND at ffffffff8200dead)
            migwl-100   [000]  2.000003: bprint:               page_add_file_rmap: 
            """;
        var path = Path.Combine(Repo.TempDir("printk-text"), "r.txt");
        File.WriteAllText(path, lines + "\n");
        using var r = TraceOpener.Open(path);
        var ev = new List<TraceEvent>();
        while (r.Read() is { } e) ev.Add(e);
        Assert.Equal(4, ev.Count);
        Assert.Equal(["ftrace:bprint", "ftrace:bputs", "ftrace:bprint", "ftrace:bprint"], ev.Select(e => e.Name));
        Assert.Equal("page_add_file_rmap", ev[0].Str("ip"));
        Assert.Equal("hello 5 world", ev[0].Str("buf"));
        Assert.Equal("just a string", ev[1].Str("str"));
        Assert.Single(ev[2].Fields);
        Assert.Equal(1, r.Stats.Counters.First(kv => kv.Key == "printk_format_missing").Value.Value);
        Assert.Equal("page_add_file_rmap", ev[3].Str("ip"));
    }
}
