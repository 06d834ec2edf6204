using System.Diagnostics;
using System.Text;
using Replayer.TestKit;

namespace Replayer.Formats.Tests.Binary;

/// <summary>Shared helpers of the binary reader tests: reference tools, decompression, captures.</summary>
public static class BinaryTestKit
{
    /// <summary>The captures whose trace.dat / perf.data the differential tests read (large/offline are for benchmarks).</summary>
    public static readonly string[] TestCaptures = ["6.1-ext4-basic", "6.1-ext4-fail", "6.12-ext4-basic"];

    public static string TraceDat(string capture) => Repo.Trace(capture, "tracecmd", "trace.dat");

    public static IEnumerable<string> ZstdLines(string path)
    {
        using var fs = File.OpenRead(path);
        using var z = new ZstdSharp.DecompressionStream(fs);
        using var r = new StreamReader(z, Encoding.UTF8);
        while (r.ReadLine() is { } line) yield return line;
    }

    public static byte[] ZstdBytes(string path)
    {
        using var fs = File.OpenRead(path);
        using var z = new ZstdSharp.DecompressionStream(fs);
        using var ms = new MemoryStream();
        z.CopyTo(ms);
        return ms.ToArray();
    }

    /// <summary>Path of a tool on PATH, or null.</summary>
    public static string? Tool(string name)
    {
        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':'))
        {
            var p = Path.Combine(dir, name);
            if (File.Exists(p)) return p;
        }
        return null;
    }

    /// <summary>The tool, or a failing assertion telling how to install it.</summary>
    public static string RequireTool(string name, string package)
    {
        var t = Tool(name);
        Assert.True(t != null, $"'{name}' is required by the differential tests of the binary readers and is not installed: apt-get install -y {package}");
        return t!;
    }

    /// <summary>Runs a tool, returns stdout; fails the test on a non-zero exit.</summary>
    public static string Run(string exe, string args, int timeoutMs = 120_000)
    {
        var psi = new ProcessStartInfo(exe, args) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        using var p = Process.Start(psi)!;
        var stderr = p.StandardError.ReadToEndAsync();
        var stdout = p.StandardOutput.ReadToEndAsync();
        Assert.True(p.WaitForExit(timeoutMs), $"{exe} {args} did not finish in {timeoutMs} ms");
        p.WaitForExit();
        Assert.True(p.ExitCode == 0, $"{exe} {args} exited {p.ExitCode}: {stderr.Result}");
        return stdout.Result;
    }

    /// <summary>Collapses whitespace runs (report pads columns; values never depend on the run length).</summary>
    public static string Squash(string s) => string.Join(' ', s.Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries));
}
