using Replayer.Core.Domain;

namespace Replayer.Replay.Tests;

/// <summary>
/// I2 covers anon migrations too (kernel-spec errata: 2.6.34 committed anon new pages late as well): every
/// committed migration whose new page is remapped counts as checked, not only file pages, whose remap
/// also shows an rmap add.
/// </summary>
public class CommitOrderCoverageTests
{
    [Theory]
    [InlineData("6.1-ext4-basic", "ftrace/trace.txt.zst")]
    [InlineData("6.12-ext4-basic", "ftrace/trace.txt.zst")]
    public void Every_remapped_committed_migration_is_checked_anon_ones_included(string capture, string trace)
    {
        var path = Captures.PathOf(capture, trace);
        var events = Captures.Decoded(path).Events;
        int remapped = 0, anon = 0;
        for (int i = 0; i < events.Count; i++)
        {
            if (events[i] is not MemcgMigrateEvent { New.HasPfn: true, Old.Memcg: not 0 } c) continue;
            for (int j = i + 1; j < events.Count && j < i + 400; j++)
                if (events[j] is MigrationPteEvent { Set: false } p && p.Pfn == c.New.Pfn && p.Pid == c.Pid)
                {
                    remapped++;
                    if (c.Old.IsAnon == true) anon++;
                    break;
                }
        }
        Assert.True(anon > 0, "the capture migrates mapped anon pages");
        var verdict = Captures.Audit(path, events).Verdicts.Single(v => v.InvariantId == "commit-before-remap");
        Assert.Equal(VerdictStatus.Pass, verdict.Status);
        Assert.Equal(remapped, verdict.Checked);
    }
}
