using Replayer.Core.Domain;
using Replayer.Replay;

namespace Replayer.Replay.Tests;

/// <summary>Dropped events and captures that start mid-migration make state unknown: no false findings,
/// the dependent checks are skipped (and say so).</summary>
public class UnknownStateTests
{
    public static IEnumerable<object[]> Small() => Captures.TextTraces(includeOffline: false);

    static int MigrationMiddle(List<DomainEvent> ev, int nth)
    {
        int seen = 0;
        for (int i = 0; i < ev.Count; i++)
            if (ev[i] is MoveToNewFolioEvent && ++seen == nth) return i;
        throw new InvalidOperationException("no migration");
    }

    [Theory]
    [MemberData(nameof(Small))]
    public void Data_loss_inside_a_migration_gives_no_false_findings(string capture, string trace)
    {
        var path = Captures.PathOf(capture, trace);
        var events = Captures.Decoded(path).Events;
        var rng = new Random(5);
        for (int k = 0; k < 6; k++)
        {
            int at = MigrationMiddle(events, 1 + rng.Next(200));
            int lost = 1 + rng.Next(60);
            var m = new List<DomainEvent>(events);
            m.RemoveRange(at, lost);
            m.Insert(at, new DataLossEvent { Timestamp = events[at].Timestamp, Cpu = events[at].Cpu, Name = "replayer:data_loss", Lost = (ulong)lost });
            var r = Captures.Audit(path, m);
            Assert.True(r.Findings.Length == 0, $"{lost} events lost at line {events[at].Source}: " + string.Join("; ", r.Findings.Select(f => f.InvariantId + ": " + f.Explanation)));
            Assert.Equal(1, r.DataLossEvents);
            var balance = r.Verdicts.Single(v => v.InvariantId == "migration-entry-balance");
            Assert.True(balance.SkippedUnknown > 0, "the window with the loss must be skipped, not checked");
        }
    }

    [Theory]
    [MemberData(nameof(Small))]
    public void Capture_starting_mid_migration_gives_no_false_findings(string capture, string trace)
    {
        var path = Captures.PathOf(capture, trace);
        var events = Captures.Decoded(path).Events;
        var rng = new Random(9);
        for (int k = 0; k < 6; k++)
        {
            int start = MigrationMiddle(events, 1 + rng.Next(300)) + rng.Next(-5, 6);
            var r = Captures.Audit(path, events.Skip(start));
            Assert.True(r.Findings.Length == 0, $"starting at line {events[start].Source}: " + string.Join("; ", r.Findings.Select(f => f.InvariantId + ": " + f.Explanation)));
            var summary = r.Verdicts.Single(v => v.InvariantId == "migrate-summary-consistency");
            Assert.True(summary.SkippedUnknown > 0, "the window that started before the capture is not checkable");
        }
    }

    [Fact]
    public void Replay_survives_arbitrarily_damaged_event_streams()
    {
        var path = Captures.PathOf("6.12-ext4-basic", "ftrace/trace.txt.zst");
        var events = Captures.Decoded(path).Events;
        var rng = new Random(77);
        for (int round = 0; round < 25; round++)
        {
            int start = rng.Next(events.Count - 6000);
            var m = events.GetRange(start, 6000);
            for (int k = 0; k < 200; k++)
            {
                int i = rng.Next(m.Count - 1);
                switch (rng.Next(4))
                {
                    case 0: m.RemoveAt(i); break;
                    case 1: m.Insert(i, m[rng.Next(m.Count)]); break;
                    case 2: (m[i], m[i + 1]) = (m[i + 1], m[i]); break;
                    default: m.Insert(i, new DataLossEvent { Timestamp = m[i].Timestamp, Name = "replayer:data_loss" }); break;
                }
            }
            var r = Captures.Audit(path, m); // findings are expected; exceptions are not
            Assert.Equal(m.Count, r.Events);
        }
    }
}
