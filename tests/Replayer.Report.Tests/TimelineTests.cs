using CsCheck;

namespace Replayer.Report.Tests;

public class TimelineTests
{
    [Fact]
    public void Downsampled_series_stays_bounded_and_keeps_every_extreme_and_the_last_value()
    {
        Gen.Select(Gen.Int[-3, 3].Array[1, 5000], Gen.Int[1, 5_000_000], Gen.Int[4, 64]).Sample((steps, dt, max) =>
        {
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
        }, seed: "0N0XIzNsQ0O2", iter: 200, threads: 1);
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
