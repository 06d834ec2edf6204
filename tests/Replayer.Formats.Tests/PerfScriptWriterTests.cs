using System.Text;
using CsCheck;
using Replayer.Core;
using Replayer.Formats.Writers;
using Replayer.TestKit;

namespace Replayer.Formats.Tests;

/// <summary>perf script writer: every event reads back equal through the text reader (perf-script mode).</summary>
public class PerfScriptWriterTests
{
    public static TheoryData<string> Inputs() => new(TestUtil.Fixtures.Concat(
        Directory.GetDirectories(Repo.Trace("synthetic")).Order(StringComparer.Ordinal).Select(d => "synthetic/" + Path.GetFileName(d) + "/trace.txt"))
        .Select(f => f.Replace("/", "|")));

    static byte[] Write(IEnumerable<TraceEvent> events, CaptureHeader header, out long lossy, out long written)
    {
        var ms = new MemoryStream();
        using (var w = new PerfScriptWriter(ms, leaveOpen: true))
        {
            w.WriteHeader(header);
            foreach (var e in events) w.Write(e);
            lossy = w.LossyEvents;
            written = w.Events;
        }
        return ms.ToArray();
    }

    static string Ftrace(IEnumerable<TraceEvent> events, CaptureHeader header)
    {
        var ms = new MemoryStream();
        using (var w = new FtraceTextWriter(ms, leaveOpen: true))
        {
            w.WriteHeader(header);
            foreach (var e in events) w.Write(e);
        }
        return Encoding.UTF8.GetString(ms.ToArray());
    }

    static List<TraceEvent> Read(byte[] text, out ITraceReader reader)
    {
        reader = TraceOpener.Open(new MemoryStream(text), new TraceOpenOptions { Strict = true, SourceName = "perf-script" });
        return TestUtil.ReadAll(reader);
    }

    [Theory]
    [MemberData(nameof(Inputs))]
    public void Capture_to_perf_script_and_back_gives_equal_events_and_the_text_is_stable(string rel)
    {
        List<TraceEvent> events;
        CaptureHeader header;
        using (var r = TraceOpener.Open(Repo.Trace(rel.Split('|')), new TraceOpenOptions { Strict = true }))
        {
            events = TestUtil.ReadAll(r);
            header = r.Header;
        }
        Assert.NotEmpty(events);
        var text = Write(events, header, out long lossy, out long written);
        Assert.Equal(0, lossy);
        Assert.Equal(events.Count, written);
        var back = Read(text, out var reader);
        using (reader)
        {
            Assert.Equal(TraceFormat.PerfScript, reader.Format);
            Assert.Equal(0, reader.Stats.UnparsedLines);
            Assert.Equal(header.CpuCount, reader.Header.CpuCount);
            Assert.Equal(header.KernelRelease?.Trim(), reader.Header.KernelRelease);
        }
        Assert.Equal(events.Count, back.Count);
        for (int i = 0; i < events.Count; i++)
            if (!events[i].Equals(back[i])) Assert.Fail($"event {i} differs:\n  {events[i]}\n  {back[i]}");
        // text → perf script → text: writing what was read back gives the same bytes, in either text format
        var again = Write(back, header, out _, out _);
        Assert.Equal(Encoding.UTF8.GetString(text), Encoding.UTF8.GetString(again));
        Assert.Equal(Ftrace(events, header), Ftrace(back, header));
    }

    [Fact]
    public async Task Perf_script_writer_round_trip_is_exact_for_any_events_it_does_not_count_as_lossy()
    {
        await Task.Run(() => PropertyTests.Event.Array[1, 30].Sample(events =>
        {
            var text = Write(events, new CaptureHeader(), out long lossy, out _);
            var back = Read(text, out var reader);
            reader.Dispose();
            Assert.Equal(events.Length, back.Count);
            int differ = 0;
            for (int i = 0; i < events.Length; i++) if (!events[i].Equals(back[i])) differ++;
            Assert.True(differ <= lossy, $"{differ} events differ, {lossy} counted lossy:\n{Encoding.UTF8.GetString(text)}");
            // only a comm holding " [" (perf's cpu column opener) may be lossy with these generators
            if (events.All(e => !e.Comm.Contains(" [", StringComparison.Ordinal))) Assert.Equal(0, differ);
        }, seed: TestUtil.Seed(700), iter: 150, threads: 1)).WaitAsync(TimeSpan.FromSeconds(60));
    }

    [Fact]
    public void Perf_script_text_looks_like_perf_script()
    {
        const string perfLine = "            perf   564 [001]    62.125995:                        kmem:mm_page_alloc: page=0x5fb5a pfn=0x5fb5a order=0 migratetype=0 gfp_flags=GFP_HIGHUSER|__GFP_ACCOUNT\n";
        var e = Assert.Single(TestUtil.ReadText(perfLine));
        var text = Encoding.UTF8.GetString(Write([e], new CaptureHeader { CpuCount = 2 }, out _, out _));
        var line = text.Split('\n').Single(l => l.Length > 0 && !l.StartsWith('#'));
        Assert.Matches(@"^ +perf +564 \[001\] +62\.125995: +kmem:mm_page_alloc: page=0*5fb5a pfn=0x5fb5a order=0 migratetype=0 gfp_flags=GFP_HIGHUSER\|__GFP_ACCOUNT$", line);
        Assert.Contains("# nrcpus avail : 2\n", text);
    }
}
