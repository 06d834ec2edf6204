using Replayer.TestKit;
using ZstdSharp;

namespace Replayer.Cli.Tests;

/// <summary>Bad input ends in one line naming the file and line (or offset), exit code 2 — for every
/// command that reads a trace — and never in a guess.</summary>
[Collection("console")]
public sealed class BadInputTests : IDisposable
{
    readonly string _tmp = Repo.TempDir("cli-bad");
    public void Dispose() => Directory.Delete(_tmp, true);

    static string[] RealLines(int count)
    {
        using var z = new DecompressionStream(File.OpenRead(Repo.Trace("6.1-ext4-fail", "ftrace", "trace.txt.zst")));
        using var r = new StreamReader(z);
        return Enumerable.Range(0, count).Select(_ => r.ReadLine()!).ToArray();
    }

    /// <summary>A real capture with one garbage line after <paramref name="at"/> real lines.</summary>
    string SpliceGarbage(int at, out int garbageLine)
    {
        var lines = RealLines(at + 400).ToList();
        lines.Insert(at, "this is not a trace line");
        garbageLine = at + 1;
        var path = Path.Combine(_tmp, "spliced.txt");
        File.WriteAllLines(path, lines);
        return path;
    }

    static void AssertOneLineError(string err, string file, int line)
    {
        var lines = err.Trim().Split('\n');
        Assert.Single(lines);
        Assert.Contains($"{file}:{line}:", lines[0]);
        Assert.Contains("expected", lines[0]);
        Assert.Contains("this is not a trace line", lines[0]);
    }

    [Theory]
    [InlineData(300)]
    [InlineData(1000)]
    public void Check_stops_at_a_garbage_line_with_file_and_line_unless_lenient(int at)
    {
        var path = SpliceGarbage(at, out var garbageLine);
        var (code, _, err) = InProcessCli.Run("check", path);
        Assert.Equal(2, code);
        AssertOneLineError(err, path, garbageLine);

        var (code2, text, err2) = InProcessCli.Run("check", path, "--lenient");
        Assert.True(code2 is 0 or 1, err2);
        Assert.Contains("events", text);
    }

    [Fact]
    public void Check_with_a_store_stores_nothing_from_a_file_with_a_garbage_line()
    {
        var path = SpliceGarbage(700, out var garbageLine);
        var store = Path.Combine(_tmp, "store");
        var (code, _, err) = InProcessCli.Run("check", path, "--store", store);
        Assert.Equal(2, code);
        AssertOneLineError(err, path, garbageLine);
        var (lsCode, listing, lsErr) = InProcessCli.Run("ls", "--store", store);
        Assert.True(lsCode == 0, lsErr);
        Assert.DoesNotContain("spliced", listing);
    }

    [Fact]
    public void Random_bytes_are_not_taken_for_any_trace_format()
    {
        var rng = new Random(20261125);
        for (int i = 0; i < 20; i++)
        {
            var bytes = new byte[4096 + rng.Next(4096)];
            rng.NextBytes(bytes);
            if (i % 2 == 0) bytes[0] = (byte)'{'; // what once passed for JSON lines
            var path = Path.Combine(_tmp, $"random{i}.bin");
            File.WriteAllBytes(path, bytes);
            foreach (var cmd in new[] { "stats", "check" })
            {
                var (code, _, err) = InProcessCli.Run(cmd, path);
                Assert.True(code == 2, $"{cmd} on random bytes #{i}: exit {code}, {err}");
                Assert.Single(err.Trim().Split('\n'));
                Assert.Contains(path, err);
            }
        }
    }
}
