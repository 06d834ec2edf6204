using Replayer.Core;
using Replayer.Formats.Binary;
using Replayer.TestKit;

namespace Replayer.Formats.Tests.Binary;

/// <summary>
/// The contract test: trace.dat / perf.data decoded by the binary readers give the same canonical
/// events as the text reader gives for <c>trace-cmd report</c> / <c>perf script</c> of the same
/// file — names with systems, pids, comms, CPUs, printed fields in order with equal values, probe
/// columns. Normalised only where the text has less: timestamps (text has microseconds), the
/// irq-info column (not printed by report/script), and kmem <c>page=</c>, which both tools print
/// wrongly and the binary reader leaves out (tests compare those events on <c>pfn</c>).
/// Binary probes are compared in hex (the text's form); symbolic probes are tested against the
/// kernel's own text elsewhere.
/// </summary>
public class BinaryVsTextReaderTests
{
    public static TheoryData<string> Captures => new(BinaryTestKit.TestCaptures);

    [Theory]
    [MemberData(nameof(Captures))]
    public void TraceDat_events_equal_the_text_readers_events_of_trace_cmd_report(string capture)
    {
        using var text = TraceOpener.Open(Repo.Trace(capture, "tracecmd", "report_host.txt.zst"));
        using var bin = TraceOpener.Open(BinaryTestKit.TraceDat(capture), new TraceOpenOptions());
        Assert.IsType<TraceDatReader>(bin);
        Compare(capture, text, new TraceDatReader(BinaryTestKit.TraceDat(capture), new BinaryReaderOptions { SymbolicProbes = false }), roundUs: true);
        Assert.Equal(TraceFormat.TraceDat, bin.Format);
    }

    [Theory]
    [MemberData(nameof(Captures))]
    public void PerfData_events_equal_the_text_readers_events_of_perf_script(string capture)
    {
        using var text = TraceOpener.Open(Repo.Trace(capture, "perf", "perf_script.txt.zst"));
        var data = BinaryTestKit.ZstdBytes(Repo.Trace(capture, "perf", "perf.data.zst"));
        // Through TraceOpener too: detection and the registered factory.
        using (var viaOpener = TraceOpener.Open(new MemoryStream(data)))
            Assert.IsType<PerfDataReader>(viaOpener);
        Compare(capture + " perf", text, new PerfDataReader(new MemoryStream(data), capture, new BinaryReaderOptions { SymbolicProbes = false }), roundUs: false);
    }

    /// <summary>A zstd-compressed trace.dat (not seekable once decompressed) opens through TraceOpener
    /// and gives the same events as the file itself.</summary>
    [Fact]
    public void Compressed_trace_dat_opens_through_TraceOpener()
    {
        var raw = File.ReadAllBytes(BinaryTestKit.TraceDat("6.1-ext4-fail"));
        byte[] z;
        using (var c = new ZstdSharp.Compressor(1)) z = c.Wrap(raw).ToArray();
        using var a = TraceOpener.Open(new MemoryStream(z), new TraceOpenOptions { SourceName = "trace.dat.zst" });
        using var b = new TraceDatReader(BinaryTestKit.TraceDat("6.1-ext4-fail"));
        Assert.IsType<TraceDatReader>(a);
        long n = 0;
        while (true)
        {
            var x = a.Read();
            var y = b.Read();
            Assert.Equal(y, x);
            if (x == null) break;
            n++;
        }
        Assert.Equal(b.Stats.Events, n);
    }

    static void Compare(string what, ITraceReader text, ITraceReader binary, bool roundUs)
    {
        using var _ = binary;
        long n = 0;
        while (true)
        {
            var t = text.Read();
            var b = binary.Read();
            while (b != null && b.Name == SyntheticEvents.DataLoss) b = binary.Read(); // report/script print no LOST line here
            if (t == null || b == null)
            {
                Assert.True(t == null && b == null, $"{what}: event {n}: one side ended first (text {t?.ToString() ?? "end"}, binary {b?.ToString() ?? "end"})");
                break;
            }
            long ts = roundUs ? (b.Timestamp + 500) / 1000 * 1000 : b.Timestamp / 1000 * 1000;
            var bn = new TraceEvent
            {
                Timestamp = ts, Cpu = b.Cpu, Pid = b.Pid, Comm = b.Comm, Name = b.Name, Probe = b.Probe, Flags = t.Flags,
                Fields = b.Fields,
            };
            var tn = t;
            if (t.Name is "kmem:mm_page_alloc" or "kmem:mm_page_free" or "kmem:mm_page_free_batched")
                tn = new TraceEvent
                {
                    Timestamp = t.Timestamp, Cpu = t.Cpu, Pid = t.Pid, Comm = t.Comm, Name = t.Name, Probe = t.Probe, Flags = t.Flags,
                    Fields = t.Fields.Where(f => f.Name != "page").ToArray(),
                };
            if (!tn.Equals(bn))
                Assert.Fail($"{what}: event {n} differs\n text:   {tn} [{string.Join(",", tn.Fields.Select(f => f.Type))}]\n binary: {bn} [{string.Join(",", bn.Fields.Select(f => f.Type))}]");
            n++;
        }
        Assert.True(n > 1000, $"{what}: only {n} events");
    }
}

/// <summary>
/// With the capture's kprobe definitions beside the file (<c>vm=@vmemmap_base</c>), the readers learn
/// the value of vmemmap_base from the first such kprobe event and print kmem <c>page=</c> as the
/// kernel does: <c>vmemmap_base + pfn * sizeof(struct page)</c>, not trace-cmd's or perf's wrong values.
/// </summary>
public class VmemmapPageTests
{
    [Theory]
    [InlineData("6.1-ext4-basic", "tracecmd/trace.dat")]
    [InlineData("6.12-ext4-basic", "tracecmd/trace.dat")]
    [InlineData("6.1-ext4-fail", "perf/perf.data.zst")]
    public void Kmem_page_is_the_kernels_pointer_when_the_capture_says_where_vmemmap_base_is(string capture, string file)
    {
        using var r = TraceOpener.Open(Repo.Trace([capture, .. file.Split('/')]));
        long kmem = 0;
        ulong? vm = null;
        while (r.Read() is { } e)
        {
            if (e.Name.StartsWith("rt:", StringComparison.Ordinal) && e.U64("vm") is ulong v)
            {
                Assert.True(vm == null || vm == v, "vmemmap_base does not change");
                vm = v;
            }
            if (e.Name is not ("kmem:mm_page_alloc" or "kmem:mm_page_free" or "kmem:mm_page_free_batched")) continue;
            kmem++;
            Assert.True(r.Header.Properties.ContainsKey("symbol.vmemmap_base"), "the value was learned before the first event");
            ulong pfn = e.U64("pfn")!.Value;
            Assert.Equal("page", e.Fields[0].Name);
            Assert.Equal(FieldStyle.Pointer, e.Fields[0].Style);
            if (pfn == ulong.MaxValue) continue;
            Assert.Equal(ulong.Parse(r.Header.Properties["symbol.vmemmap_base"].Split(' ')[0][2..], System.Globalization.NumberStyles.HexNumber) + pfn * 64, e.U64("page"));
        }
        Assert.True(kmem > 1000);
        Assert.NotNull(vm);
        Assert.StartsWith("0x" + vm!.Value.ToString("x"), r.Header.Properties["symbol.vmemmap_base"]);
    }
}
