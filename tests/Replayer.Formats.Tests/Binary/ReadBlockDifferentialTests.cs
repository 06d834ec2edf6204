using Replayer.Core;
using Replayer.Formats.Binary;
using Replayer.TestKit;

namespace Replayer.Formats.Tests.Binary;

/// <summary>
/// The binary readers' <c>ReadBlock</c> (rows decoded straight into an <see cref="EventBlock"/>) against their
/// <c>Read()</c> (one <see cref="TraceEvent"/> per event), reader against reader over the same input: the same
/// events in the same order with every member equal (timestamp, CPU, pid, comm, name, probe, irq flags,
/// source offset, and every field's name, kind, bits and text), then the same <see cref="ReadStats"/> and
/// header. Block sizes 1, 7 and 4096, and a mixed schedule that changes the size per call, keeps rows across
/// calls and interleaves <c>Read()</c> on the block reader. Inputs: every real trace.dat and perf.data under
/// traces/ and the perf fixtures, trace-cmd's conversions of a real capture, and synthetic captures of every
/// container variant in both byte orders.
/// </summary>
public class ReadBlockDifferentialTests
{
    public static readonly string[] Schedules = ["1", "7", "4096", "mixed"];

    /// <summary>Every trace.dat and perf.data of the real captures, and the perf fixtures.</summary>
    public static IEnumerable<string> RealFiles()
    {
        foreach (var dir in Repo.RealCaptures())
        {
            var dat = Path.Combine(dir, "tracecmd", "trace.dat");
            if (File.Exists(dat)) yield return Path.GetRelativePath(Repo.Traces, dat);
            var perf = Path.Combine(dir, "perf", "perf.data.zst");
            if (File.Exists(perf)) yield return Path.GetRelativePath(Repo.Traces, perf);
        }
        foreach (var f in new[] { "perf-pipe-host.data", "perf-zstd-host.data" })
            yield return Path.Combine("..", "tests", "Replayer.Formats.Tests", "Binary", "data", f);
    }

    public static TheoryData<string, string> RealFileSchedules()
    {
        var d = new TheoryData<string, string>();
        foreach (var f in RealFiles())
            foreach (var s in Schedules)
                d.Add(f, s);
        return d;
    }

    [Fact]
    public void The_real_inputs_are_all_there()
    {
        var files = RealFiles().ToList();
        Assert.True(files.Count(f => f.EndsWith("trace.dat", StringComparison.Ordinal)) >= 5, string.Join(", ", files));
        Assert.True(files.Count(f => f.Contains("perf.data", StringComparison.Ordinal)) >= 3, string.Join(", ", files));
        Assert.All(files, f => Assert.True(File.Exists(Path.Combine(Repo.Traces, f)), f));
    }

    [Theory]
    [MemberData(nameof(RealFileSchedules))]
    public void Real_capture_ReadBlock_gives_the_events_and_stats_of_Read(string file, string schedule)
    {
        // Through TraceOpener, as the CLI opens them: the capture's kprobe definitions beside the file make the
        // readers learn vmemmap_base, so kmem page= is evaluated too.
        string path = Path.Combine(Repo.Traces, file);
        long n = Compare(() => TraceOpener.Open(path), schedule, file);
        Assert.True(n > 100, $"{file}: only {n} events");
    }

    [Theory]
    [InlineData("6.1-ext4-fail", "mixed")]
    [InlineData("6.12-ext4-basic", "7")]
    public void Heap_merge_and_hex_probes_give_the_same_events_both_ways(string capture, string schedule)
    {
        // More CPUs than the linear-merge limit: the heap merge; probes without kallsyms.
        var opt = () => new BinaryReaderOptions { LinearMergeLimit = 0, SymbolicProbes = false };
        Compare(() => new TraceDatReader(BinaryTestKit.TraceDat(capture), opt()), schedule, capture);
    }

    public static TheoryData<int, string> Conversions() => new() { { 6, "none" }, { 7, "none" }, { 7, "zstd" } };

    [Theory]
    [MemberData(nameof(Conversions))]
    public void Trace_cmd_conversions_give_the_same_events_both_ways(int version, string compression)
    {
        var tc = BinaryTestKit.RequireTool("trace-cmd", "trace-cmd");
        var dir = Repo.TempDir("rb-conv");
        try
        {
            var converted = Path.Combine(dir, $"v{version}-{compression}.dat");
            BinaryTestKit.Run(tc, $"convert -i {BinaryTestKit.TraceDat("6.1-ext4-fail")} -o {converted} --file-version {version} --compression {compression}");
            foreach (var s in Schedules)
                Assert.True(Compare(() => new TraceDatReader(converted), s, converted) > 1000);
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    public static TheoryData<int, string, bool> TraceDatVariants() => SyntheticCaptureTests.TraceDatVariants();

    [Theory]
    [MemberData(nameof(TraceDatVariants))]
    public void Synthetic_trace_dat_variant_gives_the_same_events_both_ways(int version, string compression, bool big)
    {
        foreach (var events in new[] { SyntheticCaptures.DefaultEvents(), ManyEvents(3000, version * 10 + (big ? 1 : 0)) })
        {
            var bytes = SyntheticCaptures.TraceDat(version, compression, big, events);
            foreach (var s in Schedules)
            {
                Assert.True(Compare(() => new TraceDatReader(BinarySource.FromBytes(bytes, "synthetic")), s, $"v{version} {compression} big={big}") >= events.Count);
                // A known vmemmap_base: kmem page= evaluated (pointer arithmetic through a kernel variable).
                Compare(() => new TraceDatReader(BinarySource.FromBytes(bytes, "synthetic"), WithVmemmap()), s, "vmemmap");
            }
        }
    }

    [Theory]
    [InlineData("none")]
    [InlineData("zstd")]
    public void Synthetic_instances_with_tsc2nsec_give_the_same_events_both_ways(string compression)
    {
        var inst = ManyEvents(500, 7).Select(e => e with { Lost = -1 }).ToList();
        var bytes = SyntheticCaptures.TraceDat(7, compression, false, ManyEvents(1000, 8), inst, (3u, 1u, 1000UL));
        foreach (var s in Schedules)
            Compare(() => new TraceDatReader(BinarySource.FromBytes(bytes, "synthetic")), s, "instances " + compression);
    }

    [Theory]
    [InlineData(false, 0)]
    [InlineData(true, 0)]
    [InlineData(false, 81)]
    [InlineData(true, 83)]
    public void Synthetic_perf_data_gives_the_same_events_both_ways(bool big, int compressedType)
    {
        foreach (var events in new[] { SyntheticCaptures.DefaultEvents(), ManyEvents(3000, compressedType + (big ? 1 : 0)) })
        {
            var bytes = SyntheticCaptures.PerfData(big, events, compressedType);
            foreach (var s in Schedules)
                Assert.True(Compare(() => new PerfDataReader(new MemoryStream(bytes), "synthetic.perf"), s, $"perf big={big} {compressedType}") >= events.Count);
        }
    }

    [Fact]
    public void ReadBlock_appends_after_the_rows_already_in_the_block_and_renders_nothing()
    {
        var bytes = SyntheticCaptures.TraceDat(7, "zstd", false);
        using var a = new TraceDatReader(BinarySource.FromBytes(bytes, "a"));
        using var b = new TraceDatReader(BinarySource.FromBytes(bytes, "b"), new BinaryReaderOptions { RenderText = true });
        var block = new EventBlock(2);
        var first = a.Read()!;
        block.Add(first);
        Assert.Equal(3, b.ReadBlock(block, 3));
        Assert.Null(b.LastRendered);
        Assert.Equal(4, block.Count);
        AssertSame(first, block, 0, "kept row");
        AssertSame(first, block, 1, "first appended row");
        for (int i = 2; i < 4; i++) AssertSame(a.Read()!, block, i, "row " + i);
        Assert.Equal(0, b.ReadBlock(block, 0));
        Assert.NotNull(b.Read());
        Assert.NotNull(b.LastRendered);
    }

    /// <summary>Reads the input with <c>Read()</c> on one reader and with the schedule's <c>ReadBlock</c> calls on
    /// another; asserts every event equal and the stats and header equal at the end. Returns the event count.</summary>
    internal static long Compare(Func<ITraceReader> open, string schedule, string what)
    {
        using var byRead = open();
        using var byBlock = open();
        Assert.Equal(byRead.GetType(), byBlock.GetType());
        var block = new EventBlock(schedule == "mixed" ? 3 : 64);
        var rng = new Random(7);
        long n = 0;
        int call = 0;
        while (true)
        {
            call++;
            if (schedule == "mixed" && call % 5 == 0)
            {
                // Read() on the block reader between block calls: each event is returned once.
                var x = byRead.Read();
                var y = byBlock.Read();
                if (x == null || y == null)
                {
                    Assert.True(x == null && y == null, $"{what}: event {n}: one reader ended first");
                    break;
                }
                block.Clear();
                block.Add(y);
                AssertSame(x, block, 0, $"{what} event {n} (Read on both)");
                n++;
                continue;
            }
            int max = schedule switch
            {
                "mixed" => new[] { 1, 7, 4096, 2, 100 }[rng.Next(5)],
                _ => int.Parse(schedule, System.Globalization.CultureInfo.InvariantCulture),
            };
            // The mixed schedule keeps earlier rows in the block now and then: new rows are appended after them.
            if (schedule != "mixed" || rng.Next(3) != 0) block.Clear();
            int start = block.Count;
            int got = ReadBlock(byBlock, block, max);
            Assert.Equal(start + got, block.Count);
            Assert.True(got <= max, $"{what}: {got} rows for max {max}");
            for (int i = start; i < block.Count; i++)
            {
                var x = byRead.Read();
                Assert.True(x != null, $"{what}: event {n}: ReadBlock gave a row ({block[i]}) after Read() ended");
                AssertSame(x!, block, i, $"{what} event {n} (block of {max})");
                n++;
            }
            if (got == 0)
            {
                var rest = byRead.Read();
                Assert.True(rest == null, $"{what}: event {n}: ReadBlock ended first, Read() gives {rest}");
                Assert.Equal(0, ReadBlock(byBlock, block, max));
                break;
            }
        }
        AssertSameStats(byRead.Stats, byBlock.Stats, what);
        Assert.Equal(byRead.Header.Properties.OrderBy(p => p.Key, StringComparer.Ordinal), byBlock.Header.Properties.OrderBy(p => p.Key, StringComparer.Ordinal));
        Assert.Equal(n, byBlock.Stats.Events);
        return n;
    }

    /// <summary>The reader's own <c>ReadBlock</c> (bound to its class, so a reader that did not override it
    /// would not compile here rather than pass through the interface's default).</summary>
    internal static int ReadBlock(ITraceReader r, EventBlock b, int max) => r switch
    {
        TraceDatReader t => t.ReadBlock(b, max),
        PerfDataReader p => p.ReadBlock(b, max),
        TextTraceReader x => x.ReadBlock(b, max),
        _ => throw new InvalidOperationException("not a reader with its own ReadBlock: " + r.GetType().Name),
    };

    internal static void AssertSame(TraceEvent e, EventBlock b, int i, string what)
    {
        var v = b[i];
        bool same = e.Timestamp == v.Timestamp && e.Cpu == v.Cpu && e.Pid == v.Pid && e.Comm == v.Comm && e.Name == v.Name
            && e.Probe == v.Probe && e.Flags == v.Flags && e.Source == v.Source && e.Fields.Length == v.Fields.Length;
        if (same)
            for (int k = 0; k < e.Fields.Length; k++)
            {
                var f = e.Fields[k];
                var g = v.Fields[k];
                if (f.Name != g.Name || f.Kind != g.Kind || f.Bits != g.Bits || f.Text != g.Text) same = false;
            }
        if (!same)
            Assert.Fail($"{what} differs:\n Read():    {Describe(e)}\n ReadBlock: {Describe(v.ToTraceEvent())}");
    }

    static string Describe(TraceEvent e) =>
        $"{e} @{e.Source} flags={e.Flags} [{string.Join(",", e.Fields.Select(f => f.Name + ":" + f.Kind + ":" + f.Bits + ":" + f.Text))}]";

    internal static void AssertSameStats(ReadStats a, ReadStats b, string what)
    {
        Assert.True((a.Lines, a.Events, a.UnparsedLines, a.LostEvents, a.DataLossMarkers) == (b.Lines, b.Events, b.UnparsedLines, b.LostEvents, b.DataLossMarkers),
            $"{what}: stats differ: Read() {(a.Lines, a.Events, a.UnparsedLines, a.LostEvents, a.DataLossMarkers)}, ReadBlock {(b.Lines, b.Events, b.UnparsedLines, b.LostEvents, b.DataLossMarkers)}");
        static string Counters(ReadStats s) => string.Join("; ", s.Counters.OrderBy(c => c.Key, StringComparer.Ordinal).Select(c => $"{c.Key}={c.Value.Severity}:{c.Value.Value}"));
        Assert.Equal(Counters(a), Counters(b));
    }

    static BinaryReaderOptions WithVmemmap()
    {
        var o = new BinaryReaderOptions();
        o.SymbolValues["vmemmap_base"] = 0xffd4000000000000UL;
        return o;
    }

    /// <summary>Deterministic random events of every synthetic format over both CPUs: varying values, long
    /// records, gaps that need TIME_EXTEND, and some loss markers.</summary>
    internal static List<SynthEvent> ManyEvents(int count, int seed)
    {
        var rng = new Random(seed);
        var time = new long[] { 1_000_000_000, 1_000_000_300 };
        var list = new List<SynthEvent>(count);
        for (int i = 0; i < count; i++)
        {
            int cpu = rng.Next(2);
            time[cpu] += rng.Next(8) == 0 ? 200_000_000 + rng.Next(1000) : 1 + rng.Next(5000);
            int pid = rng.Next(3) switch { 0 => 100, 1 => 200, _ => 300 + rng.Next(5) };
            int type = new[] { SyntheticCaptures.PageAlloc, SyntheticCaptures.Exec, SyntheticCaptures.Probe, SyntheticCaptures.MigrateStart }[rng.Next(4)];
            var e = type switch
            {
                SyntheticCaptures.PageAlloc => new SynthEvent(cpu, time[cpu], pid, type, (ulong)rng.Next(1 << 20), new ulong[] { 0, 0x400, 0x800, 0xc00, 0x1400 }[rng.Next(5)]),
                SyntheticCaptures.Exec => new SynthEvent(cpu, time[cpu], pid, type, 0, (ulong)rng.Next(1000), "/bin/" + new string('x', rng.Next(1, 150))),
                SyntheticCaptures.Probe => new SynthEvent(cpu, time[cpu], pid, type, SyntheticCaptures.ProbeFunc + (ulong)(4 * rng.Next(3)), 0xffd4000000000000UL + (ulong)rng.Next() * 64),
                _ => new SynthEvent(cpu, time[cpu], pid, type, (ulong)rng.Next(4), (ulong)rng.Next(5)),
            };
            if (rng.Next(200) == 0) e = e with { Lost = rng.Next(3) == 0 ? 0 : rng.Next(1, 1000) };
            list.Add(e);
        }
        return list;
    }
}
