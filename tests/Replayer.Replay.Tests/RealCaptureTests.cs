using Replayer.Core.Domain;
using Replayer.Replay;

namespace Replayer.Replay.Tests;

/// <summary>The real 6.1 / 6.12 captures are clean kernels: no findings, and FILE_MAPPED computed from
/// the events agrees with the workload's own memory.stat at every phase marker. One replay per trace.</summary>
public class RealCaptureTests
{
    [Theory]
    [MemberData(nameof(Captures.AllTraces), MemberType = typeof(Captures))]
    public void Check_finds_nothing_and_file_mapped_matches_the_ground_truth_at_every_phase(string capture, string trace)
    {
        var path = Captures.PathOf(capture, trace);
        var truth = GroundTruth.For(path);
        Assert.NotNull(truth);
        // cgroup B only maps pages charged to A: its file_mapped is 0 in the ground truth throughout
        Assert.All(truth!.AllB, b => Assert.Equal(0, b));

        var atMarkers = new List<(string Text, Dictionary<ulong, (long Counter, long Implied)> Memcgs)>();
        var fileFaultsByMemcg = new Dictionary<ulong, int>();
        void Applied(DomainEvent e, ReplayState s)
        {
            if (e is MarkerEvent m)
                atMarkers.Add((m.Text, s.Memcgs.Values.ToDictionary(x => x.Id, x => (x.CounterDelta, x.ImpliedDelta))));
            else if (e is RmapAddEvent { Comm: "migwl", Page: { Memcg: { } mc, Mapping: { } mp } } && mc != 0 && mp != 0 && (mp & 1) == 0)
                fileFaultsByMemcg[mc] = fileFaultsByMemcg.GetValueOrDefault(mc) + 1;
        }
        // the big offline capture streams; the small ones share the decoded cache with the mutation tests
        var r = capture.Contains("offline", StringComparison.Ordinal) || capture.Contains("large", StringComparison.Ordinal)
            ? Replay.Audit.Run(Captures.Read(path), new AuditOptions { TracePath = path, Applied = Applied })
            : Captures.Audit(path, Captures.Decoded(path).Events, Applied);

        // clean kernels: no findings; every checkable invariant checked something
        Assert.Equal(capture.StartsWith("6.12", StringComparison.Ordinal) ? Era.Linux612 : Era.Linux61, r.Era);
        Assert.Empty(r.Findings.Select(f => $"{f.InvariantId}: {f.Explanation}"));
        var byId = r.Verdicts.ToDictionary(v => v.InvariantId);
        foreach (var id in new[] { "file-mapped-conservation", "commit-before-remap", "migration-flag-lifetime", "unmap-null-mapping", "migration-entry-balance", "migrate-summary-consistency" })
        {
            Assert.Equal(VerdictStatus.Pass, byId[id].Status);
            Assert.True(byId[id].Checked > 0, id + " checked nothing");
        }
        Assert.Equal(VerdictStatus.NotCheckable, byId["anon-vma-lifetime"].Status);
        Assert.StartsWith("missing events", byId["anon-vma-lifetime"].Reason);
        Assert.All(r.Memcgs, m => Assert.Equal(m.CounterDelta, m.ImpliedDelta));

        // cgroup A's memcg: the one charged for the file pages the workload task maps
        Assert.NotEmpty(fileFaultsByMemcg);
        ulong a = fileFaultsByMemcg.MaxBy(kv => kv.Value).Key;
        var finalA = r.Memcgs.Single(m => m.Memcg == a);
        int matched = 0, from = 0;
        // perf script records no ftrace:print markers: only the end state is comparable there
        bool hasMarkers = atMarkers.Count > 0;
        foreach (var point in hasMarkers ? truth.AtMarkers : [])
        {
            int i = atMarkers.FindIndex(from, x => x.Text == point.Marker);
            Assert.True(i >= 0, $"marker '{point.Marker}' of workload.stdout not in the trace");
            from = i + 1;
            var got = atMarkers[i].Memcgs.GetValueOrDefault(a);
            Assert.True(point.APages == got.Counter, $"at '{point.Marker}': counter events give {got.Counter} pages, ground truth {point.APages}");
            Assert.True(point.APages == got.Implied, $"at '{point.Marker}': page states give {got.Implied} pages, ground truth {point.APages}");
            matched++;
        }
        Assert.True(!hasMarkers || matched >= 2, "too few markers matched");
        Assert.Equal(truth.FinalA, finalA.CounterDelta);
        Assert.Equal(truth.FinalA, finalA.ImpliedDelta);
    }
}
