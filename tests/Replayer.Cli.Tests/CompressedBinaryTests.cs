using Replayer.Cli;
using Replayer.Core;
using Replayer.Formats;
using Replayer.Formats.Binary;
using Replayer.TestKit;
using ZstdSharp;

namespace Replayer.Cli.Tests;

/// <summary>Compressed binary captures (perf.data.zst, trace.dat.gz/.xz): the reader gets a seekable temp copy,
/// deleted with it; <c>check</c> on them equals <c>check</c> on the decompressed file in the same folder.</summary>
[Collection("console")]
public class CompressedBinaryTests : IDisposable
{
    readonly string _tmp = Repo.TempDir("cli-compressed");
    public void Dispose() => Directory.Delete(_tmp, true);

    static (int Code, string Out, string Err) Run(params string[] args) => InProcessCli.Run(args);

    public static IEnumerable<object[]> PerfDataZst() =>
        Repo.RealCaptures().Where(d => File.Exists(Path.Combine(d, "perf", "perf.data.zst"))).Select(d => new object[] { Path.GetFileName(d) });

    /// <summary>`check --json` without the file name line.</summary>
    static string WithoutFile(string json) => string.Join('\n', json.Split('\n').Where(l => !l.TrimStart().StartsWith("\"file\"", StringComparison.Ordinal)));

    /// <summary>The capture's perf/ folder (context files) copied, with the trace decompressed beside them.</summary>
    string Decompressed(string capture)
    {
        var src = Repo.Trace(capture, "perf");
        var dst = Path.Combine(_tmp, capture, "perf");
        Directory.CreateDirectory(dst);
        foreach (var f in Directory.GetFiles(Repo.Trace(capture))) File.Copy(f, Path.Combine(_tmp, capture, Path.GetFileName(f)));
        foreach (var f in Directory.GetFiles(src, "*", SearchOption.AllDirectories))
        {
            if (f.EndsWith(".zst", StringComparison.Ordinal)) continue;
            var to = Path.Combine(dst, Path.GetRelativePath(src, f));
            Directory.CreateDirectory(Path.GetDirectoryName(to)!);
            File.Copy(f, to);
        }
        var data = Path.Combine(dst, "perf.data");
        using (var z = new DecompressionStream(File.OpenRead(Path.Combine(src, "perf.data.zst"))))
        using (var o = File.Create(data)) z.CopyTo(o);
        return data;
    }

    [Theory]
    [MemberData(nameof(PerfDataZst))]
    public void Check_on_perf_data_zst_equals_check_on_the_decompressed_file(string capture)
    {
        var (c1, zst, e1) = Run("check", Repo.Trace(capture, "perf", "perf.data.zst"), "--json");
        var (c2, plain, e2) = Run("check", Decompressed(capture), "--json");
        Assert.True(c1 == 0, e1);
        Assert.True(c2 == 0, e2);
        Assert.Equal(WithoutFile(plain), WithoutFile(zst));
        Assert.Contains("\"events\"", zst);
    }

    [Fact]
    public void A_gzip_or_xz_trace_dat_reads_like_the_plain_file_and_the_spool_is_deleted_with_the_reader()
    {
        var dat = Repo.Trace("6.1-ext4-fail", "tracecmd", "trace.dat");
        var gz = Path.Combine(_tmp, "trace.dat.gz");
        using (var o = File.Create(gz))
        using (var g = new System.IO.Compression.GZipStream(o, System.IO.Compression.CompressionLevel.Fastest))
        using (var i = File.OpenRead(dat)) i.CopyTo(g);
        static List<string> Names(string p)
        {
            using var r = TraceOpener.Open(p, new TraceOpenOptions { DiscoverCapture = false });
            var l = new List<string>();
            while (r.Read() is { } e) l.Add(e.Timestamp + " " + e.Name + " " + e.Cpu);
            return l;
        }
        var spools = () => Directory.GetFiles(Path.GetTempPath(), "replayer-spool-*").ToHashSet();
        var before = spools();
        var reader = TraceOpener.Open(gz, new TraceOpenOptions { DiscoverCapture = false });
        var mine = spools().Except(before).ToList();
        Assert.NotEmpty(mine);
        Assert.Equal(TraceFormat.TraceDat, reader.Format);
        reader.Dispose();
        Assert.All(mine, f => Assert.False(File.Exists(f), f + " left behind"));
        Assert.Equal(Names(dat), Names(gz));
    }

    [Fact]
    public void A_spool_that_cannot_be_written_is_one_clear_input_error()
    {
        var notADir = Path.Combine(_tmp, "file");
        File.WriteAllText(notADir, "x");
        var rest = new MemoryStream(new byte[1000]);
        var ex = Assert.Throws<TraceInputException>(() => SpoolFile.Create([1, 2, 3], rest, "in.dat.zst", Path.Combine(notADir, "sub")));
        Assert.Contains("in.dat.zst", ex.Message);
        Assert.Contains("temp file", ex.Message);
        Assert.DoesNotContain("\n", ex.Message);
        Assert.False(rest.CanRead); // the input is closed either way
    }
}
