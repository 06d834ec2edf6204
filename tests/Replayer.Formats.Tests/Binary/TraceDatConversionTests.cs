using System.Text.RegularExpressions;
using Replayer.Core;
using Replayer.Formats.Binary;
using Replayer.TestKit;

namespace Replayer.Formats.Tests.Binary;

/// <summary>
/// The shared captures converted by trace-cmd itself (<c>trace-cmd convert --file-version V
/// --compression C</c>) decode to exactly the same canonical events as the original (v7, zstd),
/// for every version/compression pair trace-cmd can write. (Debian's trace-cmd 3.1.6 has no zlib:
/// zlib is covered by the synthetic captures.) Fails when trace-cmd is not installed.
/// </summary>
public class TraceDatConversionTests
{
    public static TheoryData<string, int, string> Pairs()
    {
        var d = new TheoryData<string, int, string>();
        foreach (var c in new[] { "6.1-ext4-fail", "6.12-ext4-basic" })
        {
            d.Add(c, 6, "none");
            d.Add(c, 7, "none");
            d.Add(c, 7, "zstd");
        }
        return d;
    }

    [Theory]
    [MemberData(nameof(Pairs))]
    public void Converted_file_decodes_to_the_same_events(string capture, int version, string compression)
    {
        var tc = BinaryTestKit.RequireTool("trace-cmd", "trace-cmd");
        var dir = Repo.TempDir("tdat-conv");
        try
        {
            var original = BinaryTestKit.TraceDat(capture);
            var converted = Path.Combine(dir, $"v{version}-{compression}.dat");
            BinaryTestKit.Run(tc, $"convert -i {original} -o {converted} --file-version {version} --compression {compression}");
            using var a = new TraceDatReader(original);
            using var b = new TraceDatReader(converted);
            Assert.Equal("trace.dat v" + version, b.Header.FormatVersion);
            Assert.Equal(compression, b.Header.Properties.GetValueOrDefault("compression", "none"));
            Assert.Equal(a.Header.KernelRelease, b.Header.KernelRelease);
            Assert.Equal(a.Header.CpuCount, b.Header.CpuCount);
            long n = 0;
            while (true)
            {
                var x = a.Read();
                var y = b.Read();
                if (x == null || y == null)
                {
                    Assert.True(x == null && y == null, $"event {n}: one file ended first ({x?.ToString() ?? "end"} / {y?.ToString() ?? "end"})");
                    break;
                }
                if (!x.Equals(y)) Assert.Fail($"event {n} differs:\n original:  {x}\n converted: {y}");
                n++;
            }
            Assert.True(n > 1000);
            Assert.Equal(a.Stats.Events, b.Stats.Events);
        }
        finally { Directory.Delete(dir, true); }
    }

    /// <summary>
    /// A v6 file with a second ring-buffer instance, as trace-cmd itself writes one (trace-cmd 2.x records
    /// only v6; <c>record -B NAME</c> adds a BUFFER option pointing at the instance's own flyrecord CPU
    /// table): made here by <c>trace-cmd convert --file-version 6</c> from a synthetic v7 with an instance.
    /// Both files decode to the same events, the instance's included, merged by time.
    /// </summary>
    [Theory]
    [InlineData("none")]
    [InlineData("zstd")]
    public void V6_instance_buffers_decode_like_the_v7_they_were_converted_from(string compression)
    {
        var tc = BinaryTestKit.RequireTool("trace-cmd", "trace-cmd");
        var dir = Repo.TempDir("tdat-v6inst");
        try
        {
            var inst = new List<SynthEvent>
            {
                new(0, 1_000_000_600, 100, SyntheticCaptures.MigrateStart, 0, 3),
                new(0, 1_950_000_050, 200, SyntheticCaptures.MigrateStart, 1, 0),
            };
            var v7 = Path.Combine(dir, "v7.dat");
            var v6 = Path.Combine(dir, "v6.dat");
            File.WriteAllBytes(v7, SyntheticCaptures.TraceDat(7, compression, false, SyntheticCaptures.DefaultEvents(), inst));
            BinaryTestKit.Run(tc, $"convert -i {v7} -o {v6} --file-version 6 --compression none");
            using var a = new TraceDatReader(v7);
            using var b = new TraceDatReader(v6);
            Assert.Equal("trace.dat v6", b.Header.FormatVersion);
            Assert.Equal("top,inst", a.Header.Properties["instances"]);
            Assert.Equal("top,inst", b.Header.Properties["instances"]);
            var x = new List<TraceEvent>();
            var y = new List<TraceEvent>();
            while (a.Read() is { } e) x.Add(e);
            while (b.Read() is { } e) y.Add(e);
            // Source is the byte offset, which differs between the two files.
            static string Key(TraceEvent e) => e.ToString() + " " + e.Flags;
            Assert.Equal(x.Select(Key), y.Select(Key));
            Assert.Equal(2, y.Count(e => e.Name == "migrate:mm_migrate_pages_start" && e.Cpu == 0));
            Assert.DoesNotContain(b.Stats.Counters.Keys, k => k.Contains("instance", StringComparison.Ordinal));
        }
        finally { Directory.Delete(dir, true); }
    }

    /// <summary>
    /// The irq-info column computed from common_flags/common_preempt_count looks like the kernel's own:
    /// for every event type, the most frequent column is the one the raw ftrace text of the same capture
    /// folder (another run of the same workload and kernel) shows most often.
    /// </summary>
    [Theory]
    [MemberData(nameof(TraceDatReportDifferentialTests.Captures), MemberType = typeof(TraceDatReportDifferentialTests))]
    public void Irq_info_column_matches_the_kernels_rendering(string capture)
    {
        var kernel = new Dictionary<string, Dictionary<string, int>>();
        var line = new Regex(@"^\s*\S.*?-\d+\s+\[\d+\]\s+(\S{4,5})\s+[\d.]+:\s+(\w+):");
        foreach (var l in BinaryTestKit.ZstdLines(Repo.Trace(capture, "ftrace", "trace.txt.zst")))
        {
            var m = line.Match(l);
            if (!m.Success) continue;
            var d = kernel.TryGetValue(m.Groups[2].Value, out var x) ? x : kernel[m.Groups[2].Value] = new();
            d[m.Groups[1].Value] = d.GetValueOrDefault(m.Groups[1].Value) + 1;
        }
        var mine = new Dictionary<string, Dictionary<string, int>>();
        using (var r = new TraceDatReader(BinaryTestKit.TraceDat(capture)))
            while (r.Read() is { } e)
            {
                string name = e.Name == "ftrace:print" ? "tracing_mark_write" : e.ShortName.ToString();
                var d = mine.TryGetValue(name, out var x) ? x : mine[name] = new();
                d[e.Flags!] = d.GetValueOrDefault(e.Flags!) + 1;
            }
        int compared = 0;
        foreach (var (name, counts) in mine)
        {
            if (!kernel.TryGetValue(name, out var k) || k.Values.Sum() < 20 || counts.Values.Sum() < 20) continue;
            Assert.Equal(k.MaxBy(kv => kv.Value).Key, counts.MaxBy(kv => kv.Value).Key);
            compared++;
        }
        Assert.True(compared >= 5, $"only {compared} event types to compare");
    }

    /// <summary>The heap merge (used above a few CPUs) orders events exactly as the linear merge does.</summary>
    [Fact]
    public void Heap_and_linear_merges_agree()
    {
        var path = BinaryTestKit.TraceDat("6.1-ext4-basic");
        using var a = new TraceDatReader(path);
        using var b = new TraceDatReader(path, new BinaryReaderOptions { LinearMergeLimit = 0 });
        long n = 0;
        while (true)
        {
            var x = a.Read();
            var y = b.Read();
            Assert.Equal(x, y);
            Assert.Equal(x?.Source, y?.Source);
            if (x == null) break;
            n++;
        }
        Assert.True(n > 10_000);
    }

    /// <summary>
    /// Kprobe locations resolved through the capture's kallsyms (<c>func+0xoff/0xsize</c>) are the ones
    /// the kernel itself printed in the raw ftrace text of the same capture folder (another run of
    /// the same kernel: same functions, sizes and probe offsets).
    /// </summary>
    [Theory]
    [MemberData(nameof(TraceDatReportDifferentialTests.Captures), MemberType = typeof(TraceDatReportDifferentialTests))]
    public void Probe_locations_match_the_kernels_own_rendering(string capture)
    {
        var kernel = new HashSet<string>(StringComparer.Ordinal);
        var probe = new Regex(@": (\w+): \(([^)]*)\)");
        foreach (var line in BinaryTestKit.ZstdLines(Repo.Trace(capture, "ftrace", "trace.txt.zst")))
        {
            var m = probe.Match(line);
            if (m.Success) kernel.Add(m.Groups[1].Value + " " + m.Groups[2].Value);
        }
        var mine = new HashSet<string>(StringComparer.Ordinal);
        using (var r = new TraceDatReader(BinaryTestKit.TraceDat(capture)))
            while (r.Read() is { } e)
                if (e.Probe != null) mine.Add(e.ShortName.ToString() + " " + e.Probe);
        Assert.NotEmpty(mine);
        Assert.All(mine, p => Assert.DoesNotMatch(@"^\S+ [0-9a-f]+$", p)); // all resolved
        // Every location the binary reader produced for an event name the kernel also printed must be one the kernel printed.
        var kernelEvents = kernel.Select(k => k.Split(' ')[0]).ToHashSet();
        var comparable = mine.Where(m => kernelEvents.Contains(m.Split(' ')[0])).ToList();
        Assert.NotEmpty(comparable);
        Assert.All(comparable, p => Assert.Contains(p, kernel));
    }
}
