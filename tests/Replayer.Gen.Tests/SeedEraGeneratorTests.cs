using Replayer.Gen;
using Replayer.Gen.Sim;

namespace Replayer.Gen.Tests;

public class SeedEraGeneratorTests
{
    public static TheoryData<string> ScenarioNames()
    {
        var d = new TheoryData<string>();
        foreach (var s in Scenarios.All) d.Add(s.Name);
        return d;
    }

    [Theory]
    [MemberData(nameof(ScenarioNames))]
    public void Same_seed_gives_identical_output_and_other_seeds_differ(string scenario)
    {
        var a = Scenarios.Generate(scenario, 42);
        var b = Scenarios.Generate(scenario, 42);
        Assert.Equal(Output.FtraceText(a.Events), Output.FtraceText(b.Events));
        Assert.Equal(Output.ExpectedJson(a), Output.ExpectedJson(b));
        var texts = Enumerable.Range(1, 8).Select(i => Output.FtraceText(Scenarios.Generate(scenario, (ulong)i).Events)).Distinct().Count();
        Assert.True(texts >= 7, $"{scenario}: only {texts} distinct traces from 8 seeds");
    }

    [Theory]
    [MemberData(nameof(ScenarioNames))]
    public void Timestamps_increase_and_every_event_is_in_the_pinned_vocabulary(string scenario)
    {
        var known = Output.KprobeEvents.Split('\n', StringSplitOptions.RemoveEmptyEntries).Where(l => l[0] != '#')
            .Select(l => "rt:" + l.Split(' ')[0].Split('/')[1]).ToHashSet();
        known.UnionWith(["kmem:mm_page_alloc", "kmem:mm_page_free_direct", "kmem:mm_pagevec_free", "ftrace:print"]);
        for (ulong seed = 1; seed <= 20; seed++)
        {
            var g = Scenarios.Generate(scenario, seed);
            for (int i = 1; i < g.Events.Count; i++) Assert.True(g.Events[i].Timestamp > g.Events[i - 1].Timestamp);
            foreach (var e in g.Events) Assert.Contains(e.Name, known);
        }
    }

    [Fact]
    public void Postfix_scenarios_never_produce_expected_findings_and_prefix_ones_do()
    {
        foreach (var spec in Scenarios.All)
        {
            int withFindings = 0;
            for (ulong seed = 1; seed <= 60; seed++)
                if (Scenarios.Generate(spec, seed).Findings.Count > 0) withFindings++;
            if (spec.Model == KernelModel.V2635) Assert.Equal(0, withFindings);
            else Assert.True(withFindings > 10, $"{spec.Name}: only {withFindings}/60 seeds hit a violation");
        }
    }

    [Fact]
    public void Prefix_runs_hit_every_race_the_brief_names()
    {
        // The oracle's kinds over many seeds: interleavings A/B (lost FILE_MAPPED), remap before commit,
        // anon uncharge mid-migration, seed 003's NULL-mapping unmap and anon_vma walk after free.
        var kinds = new HashSet<string>();
        foreach (var spec in Scenarios.All.Where(s => s.Model != KernelModel.V2635))
            for (ulong seed = 1; seed <= 150; seed++)
                foreach (var f in Scenarios.Generate(spec, seed).Findings) kinds.Add(f.Invariant + " " + f.Kind);
        Assert.Contains("I1 lost-increment", kinds);
        Assert.Contains("I1 unmatched-decrement", kinds);
        Assert.Contains("I2 remap-before-commit", kinds);
        Assert.Contains("I3 uncharged-during-migration", kinds);
        Assert.Contains("I4 unmap-null-mapping", kinds);
        Assert.Contains("I5 walk-freed-anon-vma", kinds);
        Assert.Contains("I5 remap-unpinned-swapcache", kinds);
    }

    [Fact]
    public void Interleaving_B_a_fault_on_the_unlocked_uncommitted_new_page_occurs_and_loses_the_increment()
    {
        // Find a 2.6.34 run where another task (not the migrator) maps the new page before its commit.
        int found = 0;
        for (ulong seed = 1; seed <= 300 && found == 0; seed++)
        {
            var g = Scenarios.Generate("file-prefix", seed);
            foreach (var f in g.Findings.Where(f => f.Invariant == "I2"))
            {
                var add = g.Events.First(e => e.Timestamp == f.TimeNs);
                if (add.Comm == "migwl" && add.Name == "rt:page_add_file_rmap"
                    && g.Findings.Any(l => l.Invariant == "I1" && l.Kind == "lost-increment" && l.Pfns[0] == f.Pfns[0])) found++;
            }
        }
        Assert.True(found > 0, "no interleaving-B run in 300 seeds");
    }

    [Fact]
    public void Cli_writes_the_capture_folder_and_rejects_bad_arguments()
    {
        var dir = Replayer.TestKit.Repo.TempDir("gen-cli");
        try
        {
            Assert.Equal(0, GenMain.Run(["anon-prefix", "--seed", "7", "-o", dir]));
            foreach (var f in new[] { Output.TraceFile, Output.KprobeFile, Output.ExpectedFile, Output.UnameFile })
                Assert.True(File.Exists(Path.Combine(dir, f)), f);
            Assert.Equal(Output.FtraceText(Scenarios.Generate("anon-prefix", 7).Events), File.ReadAllText(Path.Combine(dir, Output.TraceFile)));
            Assert.Equal(2, GenMain.Run(["no-such-scenario", "-o", dir]));
            Assert.Equal(2, GenMain.Run(["anon-prefix", "--seed", "x", "-o", dir]));
            Assert.Equal(2, GenMain.Run(["anon-prefix"]));
            Assert.Equal(2, GenMain.Run(["anon-prefix", "--scale", "0", "-o", dir]));
            Assert.Equal(2, GenMain.Run(["anon-prefix", "-o", Path.Combine(dir, Output.TraceFile, "sub")])); // a file where a folder must go
            Assert.Equal(0, GenMain.Run(["anon-prefix", "--seed", "7", "--scale", "3", "-o", dir]));
            Assert.Equal(Output.FtraceText(Scenarios.Generate("anon-prefix", 7, 3).Events), File.ReadAllText(Path.Combine(dir, Output.TraceFile)));
        }
        finally { Directory.Delete(dir, true); }
    }
}
