using System.Text.Json;
using Replayer.Gen;
using Replayer.Replay;
using Replayer.TestKit;

namespace Replayer.Gen.Tests;

/// <summary>The committed <c>traces/synthetic/&lt;scenario&gt;/</c> captures: regenerating with their
/// seed gives byte-identical files, and auditing them gives exactly their <c>expected.json</c>.</summary>
public class SeedEraGoldenTests
{
    public static TheoryData<string> Committed()
    {
        var d = new TheoryData<string>();
        foreach (var dir in Directory.GetDirectories(Repo.Trace("synthetic")).OrderBy(x => x, StringComparer.Ordinal))
            d.Add(Path.GetFileName(dir));
        return d;
    }

    [Fact]
    public void Every_scenario_has_a_committed_capture()
    {
        var committed = Directory.GetDirectories(Repo.Trace("synthetic")).Select(Path.GetFileName).ToHashSet();
        foreach (var s in Scenarios.All) Assert.Contains(s.Name, committed);
    }

    static (string Scenario, ulong Seed) Meta(string name)
    {
        using var doc = JsonDocument.Parse(File.ReadAllBytes(Repo.Trace("synthetic", name, Output.ExpectedFile)));
        return (doc.RootElement.GetProperty("scenario").GetString()!, doc.RootElement.GetProperty("seed").GetUInt64());
    }

    [Theory]
    [MemberData(nameof(Committed))]
    public void Regenerating_with_the_same_seed_is_byte_identical(string name)
    {
        var (scenario, seed) = Meta(name);
        Assert.Equal(name, scenario);
        var dir = Repo.TempDir("golden-" + name);
        try
        {
            GenMain.Run([scenario, "--seed", seed.ToString(), "-o", dir]);
            foreach (var f in new[] { Output.TraceFile, Output.KprobeFile, Output.ExpectedFile, Output.UnameFile })
                Assert.True(File.ReadAllBytes(Repo.Trace("synthetic", name, f)).AsSpan().SequenceEqual(File.ReadAllBytes(Path.Combine(dir, f))),
                    $"{name}/{f} differs from a regeneration with seed {seed}");
        }
        finally { Directory.Delete(dir, true); }
    }

    [Theory]
    [MemberData(nameof(Committed))]
    public void Auditing_the_committed_trace_gives_exactly_its_expected_findings(string name)
    {
        var expected = Output.ReadExpected(Repo.Trace("synthetic", name, Output.ExpectedFile)).Select(SeedCheck.Key).OrderBy(k => k, StringComparer.Ordinal).ToList();
        // expected.json's "line" is the violating event's line in trace.txt
        var traceLines = File.ReadAllLines(Repo.Trace("synthetic", name, Output.TraceFile));
        using (var doc = System.Text.Json.JsonDocument.Parse(File.ReadAllBytes(Repo.Trace("synthetic", name, Output.ExpectedFile))))
            foreach (var f in doc.RootElement.GetProperty("findings").EnumerateArray())
                Assert.Contains(" " + f.GetProperty("time").GetString() + ":", traceLines[f.GetProperty("line").GetInt32() - 1]);
        var audit = SeedCheck.Audit(Repo.Trace("synthetic", name, Output.TraceFile));
        var actual = audit.Findings.Select(SeedCheck.Key).OrderBy(k => k, StringComparer.Ordinal).ToList();
        Assert.Equal(expected, actual);
        Assert.Equal(name.EndsWith("-prefix"), expected.Count > 0);
        // every finding carries its evidence: the violating event's line in trace.txt
        var lines = File.ReadAllLines(Repo.Trace("synthetic", name, Output.TraceFile));
        foreach (var f in audit.Findings)
        {
            Assert.NotEmpty(f.Evidence);
            var at = Assert.Single(f.Evidence, ev => ev.Timestamp == f.Timestamp);
            Assert.Contains(Replayer.Core.TraceEvent.FormatTimestamp(f.Timestamp) + ":", lines[at.Source - 1]);
        }
    }

    [Theory]
    [MemberData(nameof(Committed))]
    public void The_reader_sees_exactly_the_events_the_simulation_emitted(string name)
    {
        var (scenario, seed) = Meta(name);
        var emitted = Scenarios.Generate(scenario, seed).Events;
        var read = SeedCheck.Read(Repo.Trace("synthetic", name, Output.TraceFile));
        Assert.Equal(emitted.Count, read.Count);
        for (int i = 0; i < read.Count; i++)
        {
            var (a, b) = (emitted[i], read[i]);
            Assert.Equal((a.Timestamp, a.Cpu, a.Pid, a.Comm, a.Name), (b.Timestamp, b.Cpu, b.Pid, b.Comm, b.Name));
            if (a.Name == "ftrace:print") continue;
            Assert.Equal(a.Probe, b.Probe);
            Assert.Equal(a.Fields, b.Fields);
        }
    }
}
