using System.Diagnostics;
using Replayer.TestKit;

namespace Replayer.Cli.Tests;

/// <summary>
/// tools/vm-capture/vm-capture's command line: bad options are rejected with one line and exit code 2
/// before anything is downloaded, built or booted. (The real run, which boots qemu, is the opt-in
/// tools/vm-capture/selftest.sh.)
/// </summary>
public sealed class VmCaptureScriptTests
{
    static string Script => Path.Combine(Repo.Root, "tools", "vm-capture", "vm-capture");

    static (int Exit, string Out, string Err) Run(params string[] args)
    {
        var psi = new ProcessStartInfo("bash") { RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add(Script);
        foreach (var a in args) psi.ArgumentList.Add(a);
        // a cache that must stay untouched: validation happens before any download
        psi.Environment["REPLAYER_VM_CACHE"] = Path.Combine(Path.GetTempPath(), "vm-capture-test-cache-" + Guid.NewGuid().ToString("N"));
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        Assert.True(p.WaitForExit(30_000), "vm-capture did not finish in 30 s");
        Assert.False(Directory.Exists(psi.Environment["REPLAYER_VM_CACHE"]), "the cache was created before the options were validated");
        return (p.ExitCode, stdout.Result, stderr.Result);
    }

    [Theory]
    [InlineData("--accel", "xen", "--accel must be auto, kvm or tcg, not 'xen'")]
    [InlineData("--mem", "256", "--mem must be a number of MB >= 512, not '256'")]
    [InlineData("--mem", "2G", "--mem must be a number of MB >= 512, not '2G'")]
    [InlineData("--timeout", "soon", "--timeout must be a number of seconds, not 'soon'")]
    [InlineData("--buffer-kb", "-1", "--buffer-kb must be a number, not '-1'")]
    [InlineData("--workload", "-n 4; reboot", "--workload takes options and numbers only, not '-n 4; reboot'")]
    [InlineData("--kernel", "linux-image-6.1/../x", "--kernel must be a Debian linux-image package name, not 'linux-image-6.1/../x'")]
    public void Bad_option_value_is_a_one_line_error_with_exit_code_2_and_creates_nothing(string option, string value, string message)
    {
        var root = Repo.TempDir("vm-capture-usage");
        try
        {
            var outDir = Path.Combine(root, "bundle");
            var (exit, stdout, err) = Run("-o", outDir, option, value);
            Assert.Equal(2, exit);
            Assert.Equal("", stdout);
            Assert.Single(err.Trim().Split('\n'));
            Assert.Equal("vm-capture: " + message, err.Trim());
            Assert.False(Directory.Exists(outDir), "the output folder was created for a rejected command line");
        }
        finally { Directory.Delete(root, true); }
    }

    [Fact]
    public void Missing_output_folder_and_unknown_option_are_one_line_errors()
    {
        var (exit, _, err) = Run("--accel", "tcg");
        Assert.Equal(2, exit);
        Assert.Equal("vm-capture: -o DIR is required", err.Trim());

        (exit, _, err) = Run("-o", "x", "--bogus");
        Assert.Equal(2, exit);
        Assert.Single(err.Trim().Split('\n'));
        Assert.StartsWith("vm-capture: unknown option '--bogus'", err.Trim());
    }

    [Fact]
    public void Non_empty_output_folder_is_refused_so_an_old_bundle_cannot_pass_for_a_new_one()
    {
        var root = Repo.TempDir("vm-capture-nonempty");
        try
        {
            File.WriteAllText(Path.Combine(root, "trace.txt"), "old\n");
            var (exit, _, err) = Run("-o", root, "--accel", "tcg");
            Assert.Equal(2, exit);
            Assert.Equal($"vm-capture: {root} is not empty (give a new or empty folder)", err.Trim());
            Assert.Equal(["trace.txt"], Directory.GetFiles(root).Select(Path.GetFileName));
        }
        finally { Directory.Delete(root, true); }
    }
}
