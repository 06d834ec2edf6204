using MessagePack;
using Replayer.Core;
using Replayer.Formats;
using Replayer.Replay;
using Replayer.TestKit;

namespace Replayer.Replay.Tests;

/// <summary>Decoding on a second thread (what check does) changes nothing but the speed: same result, same
/// errors, and a replay that stops early stops the decoder too.</summary>
public class DecodeAheadTests
{
    static string Basic => Repo.Trace("6.1-ext4-basic", "tracecmd", "trace.dat");

    [Fact]
    public void Result_and_order_of_applied_events_are_the_same_on_one_thread_and_two()
    {
        AuditResult Run(bool ahead, List<(long, string)> seen)
        {
            using var r = TraceOpener.Open(Basic);
            return Replay.Audit.Run(r.Views(), new AuditOptions { TracePath = Basic, DecodeAhead = ahead, Applied = (e, _) => seen.Add((e.Source, e.Name)) }, out _);
        }
        List<(long, string)> one = [], two = [];
        var a = Run(false, one);
        var b = Run(true, two);
        Assert.True(one.Count > 10_000);
        Assert.Equal(one, two);
        Assert.Equal(MessagePackSerializer.SerializeToJson(a), MessagePackSerializer.SerializeToJson(b));
    }

    [Fact]
    public void A_reader_error_reaches_the_caller_as_it_was_thrown()
    {
        var dir = Repo.TempDir("decode-ahead");
        try
        {
            // a raw ftrace text whose 3000th event line is garbage
            var lines = Captures.Read(Repo.Trace("6.1-ext4-basic", "ftrace", "trace.txt.zst")).Take(5000).Select(e => e.ToString()).ToList();
            var path = Path.Combine(dir, "trace.txt");
            File.WriteAllText(path, "# tracer: nop\n" + string.Join("\n", lines.Take(2999)) + "\nthis is not a trace line\n" + string.Join("\n", lines.Skip(2999)) + "\n");
            string Message(bool ahead)
            {
                using var r = TraceOpener.Open(path, new TraceOpenOptions { Strict = true });
                var e = Assert.Throws<TraceInputException>(() => Replay.Audit.Run(r.Views(), new AuditOptions { TracePath = path, DecodeAhead = ahead }, out _));
                return e.Message;
            }
            var one = Message(false);
            Assert.Contains(":3001", one);
            Assert.Equal(one, Message(true));
        }
        finally { Directory.Delete(dir, true); }
    }

    sealed class Stop : Exception;

    [Fact]
    public void A_replay_that_throws_stops_the_decoding_thread_before_returning()
    {
        using var r = TraceOpener.Open(Basic);
        int applied = 0;
        var views = r.Views();
        Assert.Throws<Stop>(() => Replay.Audit.Run(views, new AuditOptions { TracePath = Basic, DecodeAhead = true, Applied = (_, _) => { if (++applied == 5000) throw new Stop(); } }, out _));
        // the decoder has let go of the reader: this thread can read on from it
        Assert.NotNull(r.Read());
    }
}
