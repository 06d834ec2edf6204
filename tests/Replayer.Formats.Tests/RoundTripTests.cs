using System.Text;
using Replayer.Core;
using Replayer.Formats;
using Replayer.Formats.Schema;
using Replayer.TestKit;

namespace Replayer.Formats.Tests;

public class RoundTripTests
{
    public static TheoryData<string> Captures() => new(TestUtil.Fixtures.Select(f => f.Replace("/", "|")));

    static List<TraceEvent> ReadCapture(string rel, out CaptureHeader header)
    {
        using var r = TraceOpener.Open(Repo.Trace(rel.Split('|')), new TraceOpenOptions { Strict = true });
        var list = TestUtil.ReadAll(r);
        header = r.Header;
        return list;
    }

    static List<TraceEvent> ViaJsonl(List<TraceEvent> events, CaptureHeader header)
    {
        var ms = new MemoryStream();
        using (var w = new JsonlWriter(ms, leaveOpen: true))
        {
            w.WriteHeader(TraceFormat.FtraceText, header);
            foreach (var e in events) w.Write(e);
        }
        ms.Position = 0;
        using var r = TraceOpener.Open(ms, new TraceOpenOptions { Strict = true });
        Assert.Equal(TraceFormat.Jsonl, r.Format);
        var back = TestUtil.ReadAll(r);
        Assert.Equal(header.CpuCount, r.Header.CpuCount);
        return back;
    }

    static List<TraceEvent> ViaText(List<TraceEvent> events, CaptureHeader header, out long lossy)
    {
        var ms = new MemoryStream();
        using (var w = new FtraceTextWriter(ms, leaveOpen: true))
        {
            w.WriteHeader(header);
            foreach (var e in events) w.Write(e);
            lossy = w.LossyEvents;
        }
        ms.Position = 0;
        using var r = TraceOpener.Open(ms, new TraceOpenOptions { Strict = true });
        var back = TestUtil.ReadAll(r);
        Assert.Equal(0, r.Stats.UnparsedLines);
        return back;
    }

    static void AssertSameEvents(List<TraceEvent> a, List<TraceEvent> b)
    {
        Assert.Equal(a.Count, b.Count);
        for (int i = 0; i < a.Count; i++)
            if (!a[i].Equals(b[i]))
                Assert.Fail($"event {i} differs:\n  {a[i]}\n  {b[i]}");
    }

    [Theory]
    [MemberData(nameof(Captures))]
    public void Capture_to_jsonl_and_back_gives_equal_events_with_styles_and_sources(string rel)
    {
        var events = ReadCapture(rel, out var header);
        var back = ViaJsonl(events, header);
        AssertSameEvents(events, back);
        for (int i = 0; i < events.Count; i++)
        {
            Assert.Equal(events[i].Source, back[i].Source);
            for (int k = 0; k < events[i].Fields.Length; k++)
                Assert.Equal(events[i].Fields[k].Kind, back[i].Fields[k].Kind);
        }
    }

    [Theory]
    [MemberData(nameof(Captures))]
    public void Capture_to_ftrace_text_and_back_gives_equal_events(string rel)
    {
        var events = ReadCapture(rel, out var header);
        var back = ViaText(events, header, out long lossy);
        Assert.Equal(0, lossy);
        AssertSameEvents(events, back);
    }

    [Fact]
    public void Ftrace_to_jsonl_to_ftrace_text_to_events_is_identity()
    {
        var events = ReadCapture("6.1-ext4-fail|ftrace|trace.txt.zst", out var header);
        var back = ViaText(ViaJsonl(events, header), header, out _);
        AssertSameEvents(events, back);
    }
}
