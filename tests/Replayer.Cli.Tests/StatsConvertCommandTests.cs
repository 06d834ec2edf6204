using System.Text;
using System.Text.Json;
using Replayer.Cli;
using Replayer.Core;
using Replayer.Formats;
using Replayer.TestKit;

namespace Replayer.Cli.Tests;

[CollectionDefinition("console", DisableParallelization = true)]
public class ConsoleCollection;

/// <summary>Runs <see cref="Program.Main"/> in-process with the console captured.</summary>
[Collection("console")]
public class StatsConvertCommandTests : IDisposable
{
    readonly string _tmp = Repo.TempDir("cli-text");
    public void Dispose() => Directory.Delete(_tmp, true);

    static (int Code, string Out, string Err) Run(params string[] args) => InProcessCli.Run(args);

    static List<TraceEvent> Read(string path) => TraceFiles.ReadAll(path);

    [Fact]
    public void Stats_json_counts_equal_the_captures_counts_file()
    {
        var trace = Repo.Trace("6.1-ext4-fail", "ftrace", "trace.txt.zst");
        var (code, stdout, err) = Run("stats", trace, "--json");
        Assert.True(code == 0, err);
        using var doc = JsonDocument.Parse(stdout);
        var root = doc.RootElement;
        var counts = File.ReadAllLines(Repo.Trace("6.1-ext4-fail", "ftrace", "counts.txt")).Skip(1)
            .Select(l => l.Trim().Split(' ', 2, StringSplitOptions.TrimEntries)).ToDictionary(p => p[1], p => long.Parse(p[0]));
        var perName = root.GetProperty("events_per_name").EnumerateObject()
            .ToDictionary(p => p.Name == "ftrace:print" ? "tracing_mark_write" : p.Name[(p.Name.IndexOf(':') + 1)..], p => p.Value.GetInt64());
        Assert.Equal(counts.OrderBy(k => k.Key), perName.OrderBy(k => k.Key));
        Assert.Equal(counts.Values.Sum(), root.GetProperty("events").GetInt64());
        Assert.Equal("FtraceText", root.GetProperty("format").GetString());
        Assert.Equal(0, root.GetProperty("unparsed_lines").GetInt64());
        Assert.Equal(2, root.GetProperty("cpu_count").GetInt32());
        Assert.Equal([0, 1], root.GetProperty("cpus").EnumerateArray().Select(x => x.GetInt32()));
        Assert.True(root.GetProperty("last_ts_ns").GetInt64() > root.GetProperty("first_ts_ns").GetInt64());
    }

    [Fact]
    public void Stats_table_reports_unparsed_lines_and_lost_events()
    {
        var f = Path.Combine(_tmp, "t.txt");
        File.WriteAllText(f, "# tracer: nop\n  a-1 [000] ..... 1.000001: mm_page_free: page=ffd9298781fe4b80 pfn=0x1 order=0\nCPU:1 [LOST 7 EVENTS]\ngarbage\n");
        var (code, stdout, _) = Run("stats", f);
        Assert.Equal(0, code);
        Assert.Contains("unparsed lines  1", stdout);
        Assert.Contains("lost events     7 (1 marker(s))", stdout);
        Assert.Contains("kmem:mm_page_free", stdout);
        Assert.Contains("replayer:data_loss", stdout);
    }

    [Theory]
    [InlineData("jsonl")]
    [InlineData("ftrace")]
    public void Convert_round_trip_gives_identical_events(string to)
    {
        var trace = Repo.Trace("6.12-ext4-basic", "ftrace", "trace.txt.zst");
        var outFile = Path.Combine(_tmp, "out." + to);
        var (code, _, err) = Run("convert", trace, "--to", to, "-o", outFile);
        Assert.True(code == 0, err);
        Assert.Single(err.Trim().Split('\n'));
        var original = Read(trace);
        var back = Read(outFile);
        Assert.Equal(original.Count, back.Count);
        for (int i = 0; i < original.Count; i++)
            if (!original[i].Equals(back[i])) Assert.Fail($"event {i}: {original[i]} vs {back[i]}");
        // and the converted file converts again to the same events
        var again = Path.Combine(_tmp, "again.jsonl");
        Assert.Equal(0, Run("convert", outFile, "--to", "jsonl", "-o", again).Code);
        Assert.Equal(original, Read(again));
    }

    [Fact]
    public void Garbage_in_the_middle_exits_2_with_one_line_naming_file_and_line_and_leaves_no_output()
    {
        var f = Path.Combine(_tmp, "bad.txt");
        File.WriteAllText(f, "# tracer: nop\n  a-1 [000] ..... 1.000001: mm_page_free: page=ffd9298781fe4b80 pfn=0x1 order=0\n\u0001\u0002 binary junk\n");
        var outFile = Path.Combine(_tmp, "bad.jsonl");
        var (code, stdout, err) = Run("convert", f, "--to", "jsonl", "-o", outFile);
        Assert.Equal(ExitCodes.InputError, code);
        var line = Assert.Single(err.TrimEnd('\n').Split('\n'));
        Assert.StartsWith("replayer: " + f + ":3: expected ", line);
        Assert.False(File.Exists(outFile));
        Assert.Equal("", stdout);
    }

    [Fact]
    public void Garbage_file_exits_2_for_stats_with_file_and_line()
    {
        var f = Path.Combine(_tmp, "junk.bin");
        File.WriteAllBytes(f, Encoding.UTF8.GetBytes("not a trace at all\nreally not\n"));
        var (code, _, err) = Run("stats", f, "--json");
        Assert.Equal(ExitCodes.InputError, code);
        var line = Assert.Single(err.TrimEnd('\n').Split('\n'));
        Assert.StartsWith("replayer: " + f + ":1: expected a trace", line);
    }

    [Fact]
    public void Convert_sort_merges_out_of_order_cpus()
    {
        var f = Path.Combine(_tmp, "ooo.txt");
        File.WriteAllText(f, "# tracer: nop\n" +
            "  a-1 [000] ..... 1.000003: mm_page_free: page=ffd9298781fe4b80 pfn=0x3 order=0\n" +
            "  a-1 [001] ..... 1.000001: mm_page_free: page=ffd9298781fe4b80 pfn=0x1 order=0\n" +
            "  a-1 [001] ..... 1.000002: mm_page_free: page=ffd9298781fe4b80 pfn=0x2 order=0\n");
        var outFile = Path.Combine(_tmp, "sorted.jsonl");
        Assert.Equal(0, Run("convert", f, "--to", "jsonl", "-o", outFile, "--sort").Code);
        Assert.Equal([1UL, 2UL, 3UL], Read(outFile).Select(e => e.U64("pfn")!.Value));
        var unsorted = Path.Combine(_tmp, "unsorted.jsonl");
        Assert.Equal(0, Run("convert", f, "--to", "jsonl", "-o", unsorted).Code);
        Assert.Equal([3UL, 1UL, 2UL], Read(unsorted).Select(e => e.U64("pfn")!.Value));
    }

    [Fact]
    public void Convert_with_an_unknown_target_format_exits_2()
    {
        var (code, _, err) = Run("convert", Repo.Trace("6.1-ext4-fail", "ftrace", "trace.txt.zst"), "--to", "xml", "-o", Path.Combine(_tmp, "x"));
        Assert.Equal(ExitCodes.InputError, code);
        Assert.Contains("--to xml", err);
    }
}
