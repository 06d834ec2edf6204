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
    [InlineData(false)]
    [InlineData(true)]
    public void PerfData_in_either_byte_order_decodes_to_the_written_events(bool big)
    {
        var events = SyntheticCaptures.DefaultEvents();
        var bytes = SyntheticCaptures.PerfData(big, events);
        using var r = new PerfDataReader(new MemoryStream(bytes), "synthetic.perf", new BinaryReaderOptions { RenderText = true });
        Assert.Equal(big, r.BigEndian);
        Assert.Equal("6.1.0-synth", r.Header.KernelRelease);
        Assert.Equal(2, r.Header.CpuCount);
        var got = new List<(TraceEvent E, string? R)>();
        while (r.Read() is { } e) got.Add((e, r.NextRendered()));
        Check(events, got, lossTimeOffset: -1);
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
