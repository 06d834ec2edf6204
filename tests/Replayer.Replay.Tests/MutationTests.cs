using Replayer.Core.Domain;
using Replayer.Replay;

namespace Replayer.Replay.Tests;

/// <summary>
/// Mutations of real captures (fixed seed, many points): each must produce findings of exactly the
/// invariant it breaks, and of no other.
/// </summary>
public class MutationTests
{
    const int Points = 12;

    public static IEnumerable<object[]> Small() => Captures.TextTraces(includeOffline: false);

    static HashSet<string> FindingIds(string path, List<DomainEvent> events) =>
        Captures.Audit(path, events).Findings.Select(f => f.InvariantId).ToHashSet();

    static List<int> Pick(IReadOnlyList<int> candidates, int seed)
    {
        var rng = new Random(seed);
        return candidates.OrderBy(_ => rng.Next()).Take(Points).ToList();
    }

    [Theory]
    [MemberData(nameof(Small))]
    public void Deleting_a_file_mapped_update_breaks_only_conservation(string capture, string trace)
    {
        var path = Captures.PathOf(capture, trace);
        var events = Captures.Decoded(path).Events;
        var cands = Enumerable.Range(0, events.Count).Where(i => events[i] is LruvecStatEvent { Item: 18, Page.Memcg: not 0 }).ToList();
        Assert.NotEmpty(cands);
        foreach (var i in Pick(cands, 11))
        {
            var m = new List<DomainEvent>(events);
            m.RemoveAt(i);
            var ids = FindingIds(path, m);
            Assert.True(ids.SetEquals(["file-mapped-conservation"]), $"deleting line {events[i].Source}: findings {string.Join(",", ids)}");
        }
    }

    /// <summary>(index of the mem_cgroup_migrate commit, index of the first remove_migration_pte that maps its new page).</summary>
    static List<(int Commit, int Remap)> CommitRemapPairs(List<DomainEvent> events)
    {
        var pairs = new List<(int, int)>();
        for (int i = 0; i < events.Count; i++)
        {
            if (events[i] is not MemcgMigrateEvent { New.HasPfn: true, Old.Memcg: not 0 } c) continue;
            for (int j = i + 1; j < events.Count && j < i + 400; j++)
                if (events[j] is MigrationPteEvent { Set: false } p && p.Pfn == c.New.Pfn && p.Pid == c.Pid) { pairs.Add((i, j)); break; }
        }
        return pairs;
    }

    [Theory]
    [MemberData(nameof(Small))]
    public void Moving_a_remap_before_the_commit_breaks_only_commit_before_remap(string capture, string trace)
    {
        var path = Captures.PathOf(capture, trace);
        var events = Captures.Decoded(path).Events;
        var pairs = CommitRemapPairs(events);
        Assert.NotEmpty(pairs);
        var rng = new Random(22);
        foreach (var (commit, remap) in pairs.OrderBy(_ => rng.Next()).Take(Points))
        {
            var m = new List<DomainEvent>(events);
            var ev = m[remap];
            m.RemoveAt(remap);
            m.Insert(commit, ev with { Timestamp = events[commit].Timestamp });
            var ids = FindingIds(path, m);
            Assert.True(ids.SetEquals(["commit-before-remap"]), $"moving line {ev.Source} before line {events[commit].Source}: findings {string.Join(",", ids)}");
        }
    }

    [Theory]
    [MemberData(nameof(Small))]
    public void Deleting_a_remap_breaks_only_entry_balance(string capture, string trace)
    {
        var path = Captures.PathOf(capture, trace);
        var events = Captures.Decoded(path).Events;
        var cands = Enumerable.Range(0, events.Count).Where(i => events[i] is MigrationPteEvent { Set: false }).ToList();
        Assert.NotEmpty(cands);
        foreach (var i in Pick(cands, 33))
        {
            var m = new List<DomainEvent>(events);
            m.RemoveAt(i);
            var ids = FindingIds(path, m);
            Assert.True(ids.SetEquals(["migration-entry-balance"]), $"deleting line {events[i].Source}: findings {string.Join(",", ids)}");
        }
    }

    [Theory]
    [MemberData(nameof(Small))]
    public void Unmutated_capture_is_clean(string capture, string trace)
    {
        var path = Captures.PathOf(capture, trace);
        Assert.Empty(FindingIds(path, Captures.Decoded(path).Events));
    }
}
