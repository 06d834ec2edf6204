using System.Text.RegularExpressions;
using Replayer.Core.Domain;
using Replayer.Replay;
using Replayer.TestKit;

namespace Replayer.Replay.Tests;

/// <summary>
/// Bundles from <c>tools/vm-capture</c> (traces/vmcap-*: <c>trace.txt.zst</c>, <c>capture.json</c>,
/// <c>memory.stat.&lt;cgroup&gt;.{before,after}</c>, <c>workload.stdout</c>) on real 6.1 / 6.12 kernels with
/// failing migrations (pinned pages, -EAGAIN retries). A cgroup's memcg is read from the trace: the
/// file-rmap adds of the <c>replayer-capture: memcg-probe cgroup=PATH pid=N</c> process after its marker.
/// </summary>
public partial class VmCaptureTests
{
    public static IEnumerable<object[]> Bundles() =>
        Directory.GetDirectories(Repo.Traces)
            .Where(d => File.Exists(Path.Combine(d, "capture.json")) && File.Exists(Path.Combine(d, "trace.txt.zst")))
            .Order(StringComparer.Ordinal).Select(d => new object[] { Path.GetFileName(d) });

    [GeneratedRegex(@"replayer-capture: memcg-probe cgroup=(?<cg>\S+) pid=(?<pid>\d+)")]
    private static partial Regex ProbeMarker();

    [Fact]
    public void Both_kernels_are_bundled() =>
        Assert.Equal(["vmcap-6.1-ext4-fail", "vmcap-6.12-ext4-fail"], Bundles().Select(b => (string)b[0]));

    static long? FileMappedPages(string file)
    {
        foreach (var line in File.ReadLines(file))
        {
            var p = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (p.Length == 2 && p[0] is "file_mapped" or "mapped_file") return long.Parse(p[1]) / 4096;
        }
        return null;
    }

    [Theory]
    [MemberData(nameof(Bundles))]
    public void No_findings_and_each_cgroups_file_mapped_matches_memory_stat_and_the_phases(string bundle)
    {
        var dir = Repo.Trace(bundle);
        var path = Path.Combine(dir, "trace.txt.zst");
        var probePid = new Dictionary<int, string>();                        // pid → cgroup name
        var votes = new Dictionary<string, Dictionary<ulong, int>>();
        var markers = new List<(string Text, Dictionary<ulong, (long Counter, long Implied)> Memcgs)>();
        void Applied(DomainEvent e, ReplayState s)
        {
            if (e is MarkerEvent m)
            {
                if (ProbeMarker().Match(m.Text) is { Success: true } pm) probePid[int.Parse(pm.Groups["pid"].Value)] = Path.GetFileName(pm.Groups["cg"].Value);
                markers.Add((m.Text, s.Memcgs.Values.ToDictionary(x => x.Id, x => (x.CounterDelta, x.ImpliedDelta))));
            }
            else if (e is RmapAddEvent { Page.Memcg: { } mc } r && mc != 0 && !r.AnonFunction && probePid.TryGetValue(r.Pid, out var cg))
            {
                var v = votes.TryGetValue(cg, out var x) ? x : votes[cg] = [];
                v[mc] = v.GetValueOrDefault(mc) + 1;
            }
        }
        var r = Replay.Audit.Run(Captures.Read(path), new AuditOptions { TracePath = path, Applied = Applied });

        Assert.Equal(bundle.Contains("6.12", StringComparison.Ordinal) ? Era.Linux612 : Era.Linux61, r.Era);
        Assert.Empty(r.Findings.Select(f => $"{f.InvariantId}: {f.Explanation}"));
        var byId = r.Verdicts.ToDictionary(v => v.InvariantId);
        foreach (var id in new[] { "file-mapped-conservation", "commit-before-remap", "migration-flag-lifetime", "migration-entry-balance", "migrate-summary-consistency" })
        {
            Assert.Equal(VerdictStatus.Pass, byId[id].Status);
            Assert.True(byId[id].Checked > 0, id + " checked nothing");
        }
        // the failing move is in the trace: a migrate_pages call reported failures
        Assert.Contains(markers, m => m.Text.Contains("failing-move", StringComparison.Ordinal));

        // each cgroup's memory.stat delta equals its memcg's FILE_MAPPED delta (counter events and page states)
        var cgroups = Directory.GetFiles(dir, "memory.stat.*.before").Select(f => Path.GetFileName(f)["memory.stat.".Length..^".before".Length]).Order(StringComparer.Ordinal).ToList();
        Assert.Equal(2, cgroups.Count);
        var memcgOf = new Dictionary<string, ulong>();
        foreach (var cg in cgroups)
        {
            long before = FileMappedPages(Path.Combine(dir, $"memory.stat.{cg}.before"))!.Value;
            long after = FileMappedPages(Path.Combine(dir, $"memory.stat.{cg}.after"))!.Value;
            Assert.True(votes.ContainsKey(cg), $"{cg}: no memcg-probe rmap events");
            ulong memcg = memcgOf[cg] = votes[cg].MaxBy(kv => kv.Value).Key;
            var m = r.Memcgs.SingleOrDefault(x => x.Memcg == memcg);
            long counter = m?.CounterDelta ?? 0, implied = m?.ImpliedDelta ?? 0;
            Assert.True(after - before == counter && after - before == implied,
                $"{cg} (memcg 0x{memcg:x}): memory.stat delta {after - before}, counter events {counter}, page states {implied}");
        }
        Assert.Equal(memcgOf.Count, memcgOf.Values.Distinct().Count());
        Assert.All(r.Memcgs, m => Assert.Equal(m.CounterDelta, m.ImpliedDelta));

        // workload.stdout: file_mapped of A and B at each phase; at each "### …" marker the last phase printed before it
        var truth = GroundTruth.For(path)!;
        Assert.NotNull(truth);
        ulong a = memcgOf[cgroups.Single(c => c.EndsWith("_A", StringComparison.Ordinal))];
        ulong b = memcgOf[cgroups.Single(c => c.EndsWith("_B", StringComparison.Ordinal))];
        int from = 0, compared = 0;
        foreach (var point in truth.AtMarkers)
        {
            int i = markers.FindIndex(from, x => x.Text == "### " + point.Marker || x.Text == point.Marker);
            Assert.True(i >= 0, $"marker '{point.Marker}' of workload.stdout not in the trace");
            from = i + 1;
            // a phase is printed (after a pause) once its step's "end" marker is written: it holds at the next marker
            if (point.APages is not { } ap || point.BPages is not { } bp || !point.FirstAfterPhase) continue;
            var gotA = markers[i].Memcgs.GetValueOrDefault(a);
            var gotB = markers[i].Memcgs.GetValueOrDefault(b);
            Assert.True(ap == gotA.Counter && ap == gotA.Implied, $"at '{point.Marker}': A counter {gotA.Counter}, page states {gotA.Implied}, workload.stdout {ap}");
            Assert.True(bp == gotB.Counter && bp == gotB.Implied, $"at '{point.Marker}': B counter {gotB.Counter}, page states {gotB.Implied}, workload.stdout {bp}");
            compared++;
        }
        Assert.True(compared >= 5, $"only {compared} phases compared");
        Assert.Equal(truth.FinalA, r.Memcgs.Single(m => m.Memcg == a).CounterDelta);
    }
    /// <summary>Mutation: the one mm_page_free of a dst that failed -EAGAIN moves kept using is dropped; I7 must
    /// report exactly that dst as leaked, once (not once per retry), and nothing else changes verdict.</summary>
    [Fact]
    public void Dropping_the_free_of_a_retried_dst_is_one_I7_leak_on_612()
    {
        var path = Repo.Trace("vmcap-6.12-ext4-fail", "trace.txt.zst");
        var events = Captures.Decoded(path).Events;
        // dsts of failed moves inside a migrate_pages window, with how many failed moves used each
        var failedUses = new Dictionary<ulong, int>();
        bool inWindow = false;
        ulong? pendingDst = null;
        int victim = -1;
        for (int i = 0; i < events.Count && victim < 0; i++)
        {
            switch (events[i])
            {
                case MigratePagesStartEvent: inWindow = true; failedUses.Clear(); break;
                case MigratePagesEndEvent: inWindow = false; break;
                case MoveToNewFolioEvent mv when inWindow && mv.Dst.HasPfn: pendingDst = mv.Dst.Pfn; break;
                case FunctionReturnEvent { Function: "move_to_new_folio" } ret when pendingDst is { } d:
                    if (ret.Ret != 0) failedUses[d] = failedUses.GetValueOrDefault(d) + 1;
                    pendingDst = null;
                    break;
                case PageFreeEvent fr when inWindow && fr.IsActualFree && failedUses.GetValueOrDefault(fr.Page.Pfn) >= 2: victim = i; break;
            }
        }
        Assert.True(victim >= 0, "no dst reused by failed retries in the 6.12 capture");
        ulong pfn = ((PageFreeEvent)events[victim]).Page.Pfn;
        var mutated = events.Where((_, i) => i != victim);
        var r = Captures.Audit(path, mutated);
        var f = Assert.Single(r.Findings);
        Assert.Equal("migrate-summary-consistency", f.InvariantId);
        Assert.Contains($"dst pfn 0x{pfn:x} ", f.Explanation);
        Assert.Contains("never freed", f.Explanation);
        Assert.Empty(Captures.Audit(path, events).Findings);
    }
}
