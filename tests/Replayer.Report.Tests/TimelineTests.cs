namespace Replayer.Report.Tests;

public class TimelineTests
{
    [Fact]
    public void Downsampled_series_stays_bounded_and_keeps_every_extreme_and_the_last_value()
    {
        // deterministic cases: random walks with sparse and dense sampling, small and large bucket limits
        var rnd = new Random(20261125);
        for (int run = 0; run < 300; run++)
        {
            var steps = Enumerable.Range(0, rnd.Next(1, 5000)).Select(_ => rnd.Next(-3, 4)).ToArray();
            int dt = run % 3 == 0 ? rnd.Next(1, 2000) : rnd.Next(1, 50_000_000), max = rnd.Next(4, 65);
            var s = new StepSeries(max);
            long t = 1_000_000_000, v = 0, lo = long.MaxValue, hi = long.MinValue;
            foreach (var d in steps)
            {
                t += dt;
                v += d;
                lo = Math.Min(lo, v); hi = Math.Max(hi, v);
                s.Add(t, v, -v);
            }
            Assert.True(s.Buckets.Count <= max);
            var c = s.Points(false).ToList();
            var i = s.Points(true).ToList();
            Assert.Equal(lo, c.Min(p => p.Value));
            Assert.Equal(hi, c.Max(p => p.Value));
            Assert.Equal(-hi, i.Min(p => p.Value));
            Assert.Equal(v, c[^1].Value);
            Assert.Equal(t, c[^1].Time);
            Assert.True(c.Count <= 4 * max);
        }
    }

    [Fact]
    public void Ground_truth_phases_take_the_markers_around_them_and_memory_stat_pairs()
    {
        var g = GroundTruthData.FromFiles(new Dictionary<string, string>
        {
            ["workload.stdout"] = "w: cgA=/sys/fs/cgroup/x_A cgB=/sys/fs/cgroup/x_B\n[p0] memcgA memory.stat file_mapped 0\n### go\n[p1] memcgA memory.stat file_mapped 8192\n[p1] memcgB memory.stat file_mapped 4096\n### stop\n",
            ["memory.stat.x_A.before"] = "anon 0\nfile_mapped 4096\n",
            ["memory.stat.x_A.after"] = "file_mapped 12288\n",
        });
        Assert.Equal(["p0", "p1"], g.Phases.Select(p => p.Name));
        Assert.Null(g.Phases[0].After);
        Assert.Equal("go", g.Phases[0].Before);
        Assert.Equal("go", g.Phases[1].After);
        Assert.Equal("stop", g.Phases[1].Before);
        Assert.Equal(2, g.Phases[1].Pages["memcgA"]);
        Assert.Equal(1, g.Phases[1].Pages["memcgB"]);
        Assert.Equal((1L, 3L), (g.Stat["x_A"].Before!.Value, g.Stat["x_A"].After!.Value));
        Assert.Equal("/sys/fs/cgroup/x_B", g.Paths["memcgB"]);
    }
}
