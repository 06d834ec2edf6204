using System.Diagnostics;
using Replayer.TestKit;

namespace Replayer.Cli.Tests;

/// <summary>
/// tools/capture/replayer-capture, run in --dry-run mode against a fake tracefs and /proc built from the
/// system information recorded by the real 6.1 and 6.12 captures (their available_filter_functions,
/// kallsyms symbols, /proc/vmstat and event formats). Its plan must define the same kprobes the real
/// captures were made with (their kprobe_events.txt).
/// </summary>
public sealed class CaptureScriptTests
{
    static string Script => Path.Combine(Repo.Root, "tools", "capture", "replayer-capture");

    static (string TraceFs, string Proc) FakeMachine(string capture)
    {
        var cap = Repo.Trace(capture);
        var root = Repo.TempDir("capture-" + capture);
        var t = Directory.CreateDirectory(Path.Combine(root, "tracing")).FullName;
        var p = Directory.CreateDirectory(Path.Combine(root, "proc", "sys", "kernel")).FullName;
        p = Path.Combine(root, "proc");
        File.Copy(Path.Combine(cap, "sysinfo", "candidate_filter_functions.txt"), Path.Combine(t, "available_filter_functions"));
        var kallsyms = File.ReadLines(Path.Combine(cap, "sysinfo", "kallsyms_related_text_symbols.txt"))
            .Concat(File.ReadLines(Path.Combine(cap, "sysinfo", "candidate_symbols.txt")))
            .Select(l => "ffffffff81000000 " + l);
        File.WriteAllLines(Path.Combine(p, "kallsyms"), kallsyms);
        File.Copy(Path.Combine(cap, "sysinfo", "vmstat_boot.txt"), Path.Combine(p, "vmstat"));
        var release = File.ReadAllText(Path.Combine(cap, "sysinfo", "uname.txt")).Split(' ')[2];
        File.WriteAllText(Path.Combine(p, "sys", "kernel", "osrelease"), release + "\n");
        // Tracepoints the kernel had (their format files); kprobe events are created by the script itself.
        foreach (var dir in Directory.GetDirectories(Path.Combine(cap, "ftrace", "formats")))
        {
            if (Path.GetFileName(dir) == "rt") continue;
            foreach (var ev in Directory.GetDirectories(dir))
            {
                var dst = Directory.CreateDirectory(Path.Combine(t, "events", Path.GetFileName(dir), Path.GetFileName(ev))).FullName;
                File.Copy(Path.Combine(ev, "format"), Path.Combine(dst, "format"));
            }
        }
        return (t, p);
    }

    static (int Exit, string Out, string Err) RunScript(string traceFs, string proc, params string[] args)
    {
        var psi = new ProcessStartInfo("bash") { RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add(Script);
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.Environment["REPLAYER_TRACEFS"] = traceFs;
        psi.Environment["REPLAYER_PROC"] = proc;
        psi.Environment["REPLAYER_KPROBE_BLACKLIST"] = "/nonexistent";
        using var proc2 = Process.Start(psi)!;
        var stdout = proc2.StandardOutput.ReadToEndAsync();
        var stderr = proc2.StandardError.ReadToEndAsync();
        Assert.True(proc2.WaitForExit(30_000), "replayer-capture did not finish in 30 s");
        return (proc2.ExitCode, stdout.Result, stderr.Result);
    }

    static string Normalize(string def)
    {
        var parts = def.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        // "r10:rt/x" (maxactive) and "r:rt/x" define the same return probe.
        if (parts[0].StartsWith('r')) parts[0] = "r:" + parts[0][(parts[0].IndexOf(':') + 1)..];
        return string.Join(' ', parts);
    }

    [Theory]
    [InlineData("6.1-ext4-basic")]
    [InlineData("6.12-ext4-basic")]
    public void Dry_run_plan_defines_the_kprobes_the_real_capture_used(string capture)
    {
        var (t, p) = FakeMachine(capture);
        try
        {
            var (exit, output, err) = RunScript(t, p, "--dry-run");
            Assert.True(exit == 0, err);
            var planned = output.Split('\n').Where(l => l.StartsWith("kprobe ")).Select(l => Normalize(l["kprobe ".Length..])).ToHashSet();
            var real = File.ReadLines(Repo.Trace(capture, "ftrace", "kprobe_events.txt"))
                .Where(l => l.Length > 0).Select(Normalize).ToList();
            Assert.NotEmpty(real);
            foreach (var def in real)
                Assert.Contains(def, planned);
            Assert.Equal(real.Count, planned.Count);
            Assert.Contains("filter rt:lruvec_stat idx == 18", output);
            var release = File.ReadAllText(Repo.Trace(capture, "sysinfo", "uname.txt")).Split(' ')[2];
            Assert.Contains("kernel " + release, output);
            // Every tracepoint of the capture vocabulary that the kernel had is enabled.
            foreach (var ev in Directory.GetDirectories(Path.Combine(t, "events")).SelectMany(Directory.GetDirectories))
                Assert.Contains($"event {Path.GetFileName(Path.GetDirectoryName(ev))}:{Path.GetFileName(ev)}", output);
        }
        finally { Directory.Delete(Path.GetDirectoryName(t)!, true); }
    }

    [Fact]
    public void Unknown_option_is_a_one_line_error_with_exit_code_2()
    {
        var (t, p) = FakeMachine("6.1-ext4-basic");
        try
        {
            var (exit, _, err) = RunScript(t, p, "--bogus");
            Assert.Equal(2, exit);
            Assert.Single(err.Trim().Split('\n'));
            Assert.Contains("unknown option '--bogus'", err);
        }
        finally { Directory.Delete(Path.GetDirectoryName(t)!, true); }
    }
}
