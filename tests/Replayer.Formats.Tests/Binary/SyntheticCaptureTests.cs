using Replayer.Core;
using Replayer.Formats.Binary;

namespace Replayer.Formats.Tests.Binary;

/// <summary>
/// Every container variant (trace.dat v6, v7 with none/zstd/zlib sections, perf.data) in both byte
/// orders decodes to the events the synthetic capture was written from: names, pids, comms (saved
/// cmdlines / COMM records), CPUs, timestamps across TIME_EXTEND, long records, loss markers,
/// probe locations through kallsyms, irq flags and the print output.
/// </summary>
public class SyntheticCaptureTests
{
    public static TheoryData<int, string, bool> TraceDatVariants()
    {
        var d = new TheoryData<int, string, bool>();
        foreach (bool big in new[] { false, true })
        {
            d.Add(6, "none", big);
            d.Add(7, "none", big);
            d.Add(7, "zstd", big);
            d.Add(7, "zlib", big);
        }
        return d;
    }

    [Theory]
    [MemberData(nameof(TraceDatVariants))]
    public void TraceDat_variant_decodes_to_the_written_events(int version, string compression, bool big)
    {
        var events = SyntheticCaptures.DefaultEvents();
        var bytes = SyntheticCaptures.TraceDat(version, compression, big, events);
        using var r = new TraceDatReader(BinarySource.FromBytes(bytes, "synthetic"), new BinaryReaderOptions { RenderText = true });
        Assert.Equal("6.1.0-synth", r.Header.KernelRelease);
        Assert.Equal(2, r.Header.CpuCount);
        var got = new List<(TraceEvent E, string? R)>();
        while (r.Read() is { } e) got.Add((e, r.LastRendered));
        Check(events, got, lossTimeOffset: 0);
    }

    [Theory]
    [InlineData(false, 0)]
    [InlineData(true, 0)]
    [InlineData(false, 81)]
    [InlineData(true, 83)]
    public void PerfData_in_either_byte_order_decodes_to_the_written_events(bool big, int compressedType)
    {
        var events = SyntheticCaptures.DefaultEvents();
        var bytes = SyntheticCaptures.PerfData(big, events, compressedType);
        using var r = new PerfDataReader(new MemoryStream(bytes), "synthetic.perf", new BinaryReaderOptions { RenderText = true });
        Assert.Equal(big, r.BigEndian);
        Assert.Equal("6.1.0-synth", r.Header.KernelRelease);
        Assert.Equal(2, r.Header.CpuCount);
        var got = new List<(TraceEvent E, string? R)>();
        while (r.Read() is { } e) got.Add((e, r.NextRendered()));
        Check(events, got, lossTimeOffset: -1);
        if (compressedType != 0) Assert.True(r.Stats.Counters["perf.compressed_records"].Value > 5);
    }

    [Fact]
    public void Known_vmemmap_base_value_gives_the_page_pointer_the_kernel_prints()
    {
        var opt = new BinaryReaderOptions();
        opt.SymbolValues["vmemmap_base"] = 0xffd4000000000000UL;
        using var r = new TraceDatReader(BinarySource.FromBytes(SyntheticCaptures.TraceDat(7, "zstd", false), "synthetic"), opt);
        var e = r.Read()!;
        Assert.Equal("kmem:mm_page_alloc", e.Name);
        ulong pfn = e.U64("pfn")!.Value;
        Assert.Equal(0xffd4000000000000UL + pfn * 64, e.U64("page"));
        Assert.Equal(FieldStyle.Pointer, e.Fields[e.IndexOf("page")].Style);
    }

    [Theory]
    [InlineData("none")]
    [InlineData("zstd")]
    public void Buffer_instances_are_merged_by_time_and_TSC2NSEC_converts_timestamps(string compression)
    {
        var top = SyntheticCaptures.DefaultEvents();
        var inst = new List<SynthEvent>
        {
            new(0, 1_000_000_600, 100, SyntheticCaptures.MigrateStart, 0, 3),
            new(0, 1_950_000_050, 200, SyntheticCaptures.MigrateStart, 1, 0),
        };
        // raw clock counts; ns = raw * 3 >> 1 + 1000
        var t2n = (Mult: 3u, Shift: 1u, Offset: 1000UL);
        var bytes = SyntheticCaptures.TraceDat(7, compression, false, top, inst, t2n);
        using var r = new TraceDatReader(BinarySource.FromBytes(bytes, "synthetic"));
        Assert.Equal("top,inst", r.Header.Properties["instances"]);
        var got = new List<TraceEvent>();
        while (r.Read() is { } e) got.Add(e);
        var all = top.Concat(inst).ToList();
        Assert.Equal(all.Count + top.Count(e => e.Lost >= 0), got.Count);
        var times = got.Where(e => e.Name != SyntheticEvents.DataLoss).Select(e => e.Timestamp).ToList();
        var expected = all.Select(e => (long)((ulong)e.Time * 3 >> 1) + 1000).OrderBy(t => t).ToList();
        Assert.Equal(expected, times);
        Assert.Equal(2, got.Count(e => e.Name == "migrate:mm_migrate_pages_start" && e.Str("mode") is "MIGRATE_ASYNC" or "MIGRATE_SYNC_LIGHT" && e.Cpu == 0));
    }

    static void Check(List<SynthEvent> written, List<(TraceEvent E, string? R)> got, long lossTimeOffset)
    {
        var expected = new List<(string Name, long Time, int Cpu, long Lost, SynthEvent? Src)>();
        foreach (var w in written.OrderBy(w => w.Time).ThenBy(w => w.Cpu))
        {
            if (w.Lost >= 0) expected.Add((SyntheticEvents.DataLoss, w.Time + lossTimeOffset, w.Cpu, w.Lost, null));
            expected.Add((SyntheticCaptures.EventName(w.Type), w.Time, w.Cpu, -1, w));
        }
        Assert.Equal(expected.Count, got.Count);
        for (int i = 0; i < expected.Count; i++)
        {
            var (name, time, cpu, lost, src) = expected[i];
            var (e, rendered) = got[i];
            Assert.Equal(name, e.Name);
            Assert.Equal(time, e.Timestamp);
            Assert.Equal(cpu, e.Cpu);
            if (src == null)
            {
                Assert.Equal((ulong)lost, e.U64("lost"));
                continue;
            }
            Assert.Equal(src.Pid, e.Pid);
            Assert.Equal(src.Pid == 100 ? "migwl" : "sh", e.Comm);
            Assert.Equal("d..2.", e.Flags);
            Assert.Equal(SyntheticCaptures.Expected(src), rendered);
            switch (src.Type)
            {
                case SyntheticCaptures.Probe:
                    Assert.Equal($"page_add_file_rmap+0x{src.A - SyntheticCaptures.ProbeFunc:x}/0x2f0", e.Probe);
                    Assert.Equal(src.B, e.U64("page"));
                    Assert.Equal(-1, e.S64("mapcount"));
                    break;
                case SyntheticCaptures.PageAlloc:
                    Assert.Equal(["pfn", "order", "migratetype", "gfp_flags"], e.Fields.Select(f => f.Name));
                    Assert.Equal(src.A, e.U64("pfn"));
                    break;
                case SyntheticCaptures.Exec:
                    Assert.Equal(src.S, e.Str("filename"));
                    break;
                case SyntheticCaptures.MigrateStart:
                    Assert.Equal(rendered, $"mode={e.Str("mode")} reason={e.Str("reason")}");
                    break;
            }
        }
    }
}
