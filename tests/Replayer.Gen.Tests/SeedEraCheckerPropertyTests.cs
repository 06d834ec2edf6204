using Replayer.Gen;
using Replayer.Gen.Sim;
using Replayer.Replay;

namespace Replayer.Gen.Tests;

/// <summary>
/// The checker against the simulation's oracle over many seeds: each run is generated as raw text,
/// read back with the real <c>TraceOpener</c> and audited with the seed-era adapter and invariants.
/// Pre-fix runs must be flagged exactly where the simulation says it broke an invariant (invariant,
/// kind, pfns, time); post-fix runs must never be flagged.
/// </summary>
public class SeedEraCheckerPropertyTests
{
    static readonly string[] Families = ["file", "anon", "swapcache", "mixed", "unplug"];

    static (int Runs, int Raced, Dictionary<string, int> Kinds) Sweep(string suffix, ulong first, int count)
    {
        var dir = Replayer.TestKit.Repo.TempDir("seed-prop");
        var kinds = new Dictionary<string, int>();
        int raced = 0;
        try
        {
            for (ulong seed = first; seed < first + (ulong)count; seed++)
            {
                string scenario = Families[(int)(seed % (ulong)Families.Length)] + suffix;
                var (g, audit) = SeedCheck.GenerateAndAudit(scenario, seed, dir);
                var expected = g.Findings.Select(SeedCheck.Key).OrderBy(k => k, StringComparer.Ordinal).ToList();
                var actual = audit.Findings.Select(SeedCheck.Key).OrderBy(k => k, StringComparer.Ordinal).ToList();
                Assert.True(expected.SequenceEqual(actual),
                    $"{scenario} --seed {seed} ({audit.Era}):\n expected {string.Join("\n          ", expected)}\n actual   {string.Join("\n          ", actual)}");
                if (g.Findings.Count > 0) raced++;
                foreach (var f in g.Findings) kinds[f.Invariant + " " + f.Kind] = kinds.GetValueOrDefault(f.Invariant + " " + f.Kind) + 1;
            }
        }
        finally { Directory.Delete(dir, true); }
        return (count, raced, kinds);
    }

    [Fact]
    public void Every_prefix_race_is_flagged_with_its_invariant_and_pfn_over_1000_seeds()
    {
        var (runs, raced, kinds) = Sweep("-prefix", 1, 1000);
        Assert.Equal(1000, runs);
        Assert.True(raced > 500, $"only {raced} of {runs} pre-fix runs hit a race");
        foreach (var k in new[] { "I1 lost-increment", "I1 unmatched-decrement", "I2 remap-before-commit", "I3 uncharged-during-migration", "I4 unmap-null-mapping", "I5 walk-freed-anon-vma", "I5 remap-unpinned-swapcache" })
            Assert.True(kinds.GetValueOrDefault(k) > 0, "no pre-fix run produced " + k);
    }

    [Fact]
    public void No_postfix_run_is_ever_flagged_over_1000_seeds()
    {
        var (_, raced, _) = Sweep("-postfix", 1, 1000);
        Assert.Equal(0, raced);
    }

    [Fact]
    public void Scaled_up_runs_agree_with_the_oracle_too()
    {
        // hundreds of pages per run: long-lived state, many retries, exits in the middle of long migrations
        var dir = Replayer.TestKit.Repo.TempDir("seed-scale");
        try
        {
            int findings = 0;
            foreach (var spec in Scenarios.All)
                for (ulong seed = 1; seed <= 2; seed++)
                {
                    var g = Scenarios.Generate(spec, seed, scale: 25);
                    Output.WriteFolder(g, dir);
                    var audit = SeedCheck.Audit(Path.Combine(dir, Output.TraceFile));
                    Assert.Equal(g.Findings.Select(SeedCheck.Key).Order(StringComparer.Ordinal), audit.Findings.Select(SeedCheck.Key).Order(StringComparer.Ordinal));
                    Assert.True(g.Events.Count > 500, $"{spec.Name} scale 25: only {g.Events.Count} events");
                    findings += g.Findings.Count;
                }
            Assert.True(findings > 0);
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void Seed_era_traces_are_detected_as_their_era_and_I6_I7_are_not_checkable()
    {
        var dir = Replayer.TestKit.Repo.TempDir("seed-era");
        try
        {
            var (_, pre) = SeedCheck.GenerateAndAudit("file-prefix", 3, Path.Combine(dir, "a"));
            var (_, post) = SeedCheck.GenerateAndAudit("file-postfix", 3, Path.Combine(dir, "b"));
            Assert.Equal(Era.Seed2634, pre.Era);
            Assert.Equal(Era.Seed2635, post.Era);
            foreach (var r in new[] { pre, post })
            {
                foreach (var id in new[] { "migration-entry-balance", "migrate-summary-consistency" })
                {
                    var v = Assert.Single(r.Verdicts, v => v.InvariantId == id);
                    Assert.Equal(VerdictStatus.NotCheckable, v.Status);
                    Assert.Contains("missing events", v.Reason);
                }
                foreach (var id in new[] { "file-mapped-conservation", "commit-before-remap", "migration-flag-lifetime", "unmap-null-mapping", "anon-vma-lifetime" })
                    Assert.Contains(r.Verdicts, v => v.InvariantId == id && v.Status is VerdictStatus.Pass or VerdictStatus.Fail);
            }
            Assert.All(post.Verdicts.Where(v => v.Status != VerdictStatus.NotCheckable), v => Assert.Equal(VerdictStatus.Pass, v.Status));
        }
        finally { Directory.Delete(dir, true); }
    }
}
