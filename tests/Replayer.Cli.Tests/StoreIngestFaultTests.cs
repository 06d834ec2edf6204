using System.Diagnostics;
using Replayer.Formats;
using Replayer.Store;
using Replayer.Store.Embedded;
using Replayer.TestKit;

namespace Replayer.Cli.Tests;

/// <summary>
/// A capture is all or nothing: the built <c>replayer ingest</c> is SIGKILLed at random moments (fixed
/// seed) while it ingests a large real capture. After every kill the store opens (repairing the torn
/// tail), verifies clean, and holds either the whole capture or no trace of it; the final ingest
/// completes with the exact event count.
/// </summary>
public sealed class StoreIngestFaultTests(Xunit.Abstractions.ITestOutputHelper log) : IDisposable
{
    readonly string _root = Repo.TempDir("fault");

    public void Dispose()
    {
        if (Directory.Exists(_root)) Directory.Delete(_root, true);
    }

    /// <summary>The Cli project's build output (a project reference copies it beside the tests).</summary>
    static string ReplayerDll()
    {
        var here = Path.Combine(AppContext.BaseDirectory, "replayer.dll");
        if (File.Exists(here) && File.Exists(Path.Combine(AppContext.BaseDirectory, "replayer.runtimeconfig.json"))) return here;
        foreach (var cfg in new[] { "Debug", "Release" })
        {
            var p = Path.Combine(Repo.Root, "src", "Replayer.Cli", "bin", cfg, "net10.0", "replayer.dll");
            if (File.Exists(p)) return p;
        }
        throw new FileNotFoundException("replayer.dll not built: run `dotnet build src/Replayer.Cli`");
    }

    static Process Start(string store, string trace)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add(ReplayerDll());
        psi.ArgumentList.Add("ingest");
        psi.ArgumentList.Add(trace);
        psi.ArgumentList.Add("--store");
        psi.ArgumentList.Add(store);
        psi.Environment.Remove("REPLAYER_STORE");
        return Process.Start(psi)!;
    }

    static (int Exit, string Out, string Err) RunCli(Dictionary<string, string?> env, params string[] args)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add(ReplayerDll());
        foreach (var a in args) psi.ArgumentList.Add(a);
        foreach (var (k, v) in env) psi.Environment[k] = v;
        using var p = Process.Start(psi)!;
        var o = p.StandardOutput.ReadToEndAsync();
        var e = p.StandardError.ReadToEndAsync();
        Assert.True(p.WaitForExit(120_000));
        return (p.ExitCode, o.Result, e.Result);
    }

    [Fact]
    public void The_store_comes_from_REPLAYER_STORE_or_the_home_default_and_redirected_output_has_no_progress()
    {
        var trace = Repo.Trace("6.1-ext4-fail", "ftrace", "trace.txt.zst");
        var home = Path.Combine(_root, "home");
        Directory.CreateDirectory(home);
        var viaEnv = Path.Combine(_root, "env-store");
        var env = new Dictionary<string, string?> { ["HOME"] = home, ["XDG_DATA_HOME"] = null, ["REPLAYER_STORE"] = null };

        var ls0 = RunCli(env, "ls");
        Assert.Equal(0, ls0.Exit);
        Assert.Contains("no captures", ls0.Out);
        Assert.False(Directory.Exists(Path.Combine(home, ".local")));

        // A large input (progress would show on a terminal): nothing on stderr when it is redirected.
        var large = Repo.Trace("6.1-ext4-offline", "ftrace", "trace.txt.zst");
        Assert.True(new FileInfo(large).Length >= 4 << 20);
        var r = RunCli(env, "ingest", large);
        Assert.Equal(0, r.Exit);
        Assert.Equal("", r.Err);
        Assert.Contains(Path.Combine(home, ".local", "share", "replayer", "store"), r.Out);
        Assert.True(Directory.Exists(Path.Combine(home, ".local", "share", "replayer", "store", "segments")));

        env["REPLAYER_STORE"] = viaEnv;
        Assert.Equal(0, RunCli(env, "ingest", trace).Exit);
        Assert.True(Directory.Exists(Path.Combine(viaEnv, "segments")));
        var ls = RunCli(env, "ls");
        Assert.Contains("FtraceText", ls.Out);
        Assert.Equal(2, ls.Out.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length); // header + the one capture in this store
        var v = RunCli(env, "store", "verify");
        Assert.Equal(0, v.Exit);
        Assert.Contains(": ok: 1 stream(s)", v.Out);
        var missing = RunCli(env, "ls", "--store", Path.Combine(_root, "nope"));
        Assert.Equal(2, missing.Exit);
        Assert.Contains("no event store there", missing.Err);
    }

    /// <summary>
    /// "Disk full" in the middle of a frame: RLIMIT_FSIZE (ulimit -f) makes the kernel cut the segment write
    /// short and kill the writer with SIGXFSZ, leaving a torn frame. The next open truncates it, the capture
    /// is absent, and ingesting again (without the limit) completes with the exact count.
    /// </summary>
    [Fact]
    public async Task Ingest_cut_short_by_the_file_size_limit_leaves_nothing_and_then_completes()
    {
        var trace = Repo.Trace("6.1-ext4-basic", "ftrace", "trace.txt.zst");
        var (id, _, _) = Replayer.Cli.Commands.IngestCommand.Identify(trace);
        var stream = new StreamName("capture-" + id);
        long expected = TraceFiles.Count(trace);
        // The limits cut the segment early, midway and late: fractions of what the whole ingest writes.
        var full = Path.Combine(_root, "fsz-full");
        using (var p = Start(full, trace))
        {
            Assert.True(p.WaitForExit(120_000));
            Assert.True(p.ExitCode == 0, p.StandardError.ReadToEnd());
        }
        long fullBytes = new FileInfo(Path.Combine(full, "segments", SegmentFormat.SegmentFileName(0))).Length;
        var limits = new[] { 0.15, 0.5, 0.85 }.Select(f => (int)(fullBytes * f / 1024)).Distinct().ToArray();
        Assert.True(limits.Length == 3 && limits[0] > 0, $"the ingest writes {fullBytes} bytes: too few to cut at three places");
        foreach (var limitKb in limits)
        {
            var store = Path.Combine(_root, "fsz-" + limitKb);
            var psi = new ProcessStartInfo("bash") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
            psi.ArgumentList.Add("-c");
            psi.ArgumentList.Add($"ulimit -f {limitKb}; exec dotnet \"$0\" ingest \"$1\" --store \"$2\"");
            psi.ArgumentList.Add(ReplayerDll());
            psi.ArgumentList.Add(trace);
            psi.ArgumentList.Add(store);
            psi.Environment["DOTNET_EnableWriteXorExecute"] = "0"; // its double-mapped code file would hit the limit first
            using (var p = Process.Start(psi)!)
            {
                Assert.True(p.WaitForExit(120_000));
                Assert.NotEqual(0, p.ExitCode);
            }
            var seg = Path.Combine(store, "segments", SegmentFormat.SegmentFileName(0));
            Assert.Equal(limitKb * 1024L, new FileInfo(seg).Length); // the write was cut at the limit

            await using (var s = EmbeddedEventStore.Open(store))
            {
                Assert.Contains(s.RecoveryLog, l => l.Contains("recovered from an interrupted write"));
                Assert.Null(await s.GetStreamInfoAsync(stream));
                Assert.True((await s.VerifyAsync()).Ok);
            }
            using (var p = Start(store, trace))
            {
                Assert.True(p.WaitForExit(120_000));
                Assert.True(p.ExitCode == 0, p.StandardError.ReadToEnd());
            }
            await using (var s = EmbeddedEventStore.Open(store))
            {
                Assert.Equal((ulong)expected, (await s.GetStreamInfoAsync(stream))!.EventCount);
                var v = await s.VerifyAsync();
                Assert.True(v.Ok);
                Assert.Equal(expected, v.Events);
            }
        }
    }

    /// <summary>The password may come from the URL, PGPASSWORD or ~/.pgpass; without one the error is one line.</summary>
    [Fact]
    public async Task Postgres_password_comes_from_pgpass_or_PGPASSWORD_and_is_never_printed()
    {
        var pg = Environment.GetEnvironmentVariable("REPLAYER_TEST_PG")
            ?? throw new InvalidOperationException("REPLAYER_TEST_PG is not set: start a throw-away server with `export REPLAYER_TEST_PG=\"$(.ci/postgres.sh | tail -1)\"` and rerun");
        var real = Replayer.Store.Postgres.PostgresSpec.Parse(pg);
        var b = new Npgsql.NpgsqlConnectionStringBuilder(real.ConnectionString);
        var password = b.Password ?? throw new InvalidOperationException("REPLAYER_TEST_PG must carry a password for this test");
        var schema = "pw_" + Guid.NewGuid().ToString("N")[..10];
        var noPassword = $"postgres://{b.Username}@{b.Host}:{b.Port}/{b.Database}?schema={schema}";
        var home = Path.Combine(_root, "pw-home");
        Directory.CreateDirectory(home);
        var env = new Dictionary<string, string?> { ["HOME"] = home, ["PGPASSWORD"] = null, ["PGPASSFILE"] = null, ["REPLAYER_STORE"] = null };
        try
        {
            var none = RunCli(env, "ls", "--store", noPassword);
            Assert.Equal(2, none.Exit);
            Assert.Single(none.Err.Trim().Split('\n'));
            Assert.Contains("password", none.Err);

            env["PGPASSWORD"] = password;
            var viaEnv = RunCli(env, "ingest", Repo.Trace("6.1-ext4-fail", "ftrace", "trace.txt.zst"), "--store", noPassword);
            Assert.True(viaEnv.Exit == 0, viaEnv.Err);

            env["PGPASSWORD"] = null;
            var pgpass = Path.Combine(home, ".pgpass");
            await File.WriteAllTextAsync(pgpass, $"{b.Host}:{b.Port}:{b.Database}:{b.Username}:{password}\n");
            if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(pgpass, UnixFileMode.UserRead | UnixFileMode.UserWrite);
            var viaFile = RunCli(env, "ls", "--store", noPassword);
            Assert.True(viaFile.Exit == 0, viaFile.Err);
            Assert.Contains("FtraceText", viaFile.Out);

            var withUrl = RunCli(env, "store", "verify", "--store", pg + (pg.Contains('?') ? "&" : "?") + "schema=" + schema);
            Assert.Equal(0, withUrl.Exit);
            foreach (var text in new[] { none.Out, none.Err, viaEnv.Out, viaEnv.Err, viaFile.Out, viaFile.Err, withUrl.Out, withUrl.Err })
                Assert.DoesNotContain(password, text);
            Assert.Contains(":***@", withUrl.Out);
        }
        finally
        {
            await using var s = await Replayer.Store.Postgres.PostgresEventStore.OpenAsync(pg + (pg.Contains('?') ? "&" : "?") + "schema=" + schema);
            await s.DropSchemaAsync();
        }
    }

    /// <summary>The same on PostgreSQL (needs REPLAYER_TEST_PG): a killed ingest's transaction is rolled back by the server.</summary>
    [Fact]
    public async Task Ingest_into_postgres_killed_midway_leaves_nothing_and_then_completes()
    {
        var pg = Environment.GetEnvironmentVariable("REPLAYER_TEST_PG")
            ?? throw new InvalidOperationException("REPLAYER_TEST_PG is not set: start a throw-away server with `export REPLAYER_TEST_PG=\"$(.ci/postgres.sh | tail -1)\"` and rerun");
        var schema = "kill_" + Guid.NewGuid().ToString("N")[..10];
        var spec = pg + (pg.Contains("://") ? (pg.Contains('?') ? "&" : "?") + "schema=" + schema : ";schema=" + schema);
        var trace = Repo.Trace("6.1-ext4-basic", "ftrace", "trace.txt.zst");
        var (id, _, _) = Replayer.Cli.Commands.IngestCommand.Identify(trace);
        var stream = new StreamName("capture-" + id);
        long expected = TraceFiles.Count(trace);
        try
        {
            var sw = Stopwatch.StartNew();
            using (var p = Start(Path.Combine(_root, "reference"), trace))
                Assert.True(p.WaitForExit(300_000) && p.ExitCode == 0);
            var duration = sw.Elapsed;
            var rng = new Random(7);
            for (int kill = 0; kill < 5; kill++)
            {
                var delay = TimeSpan.FromMilliseconds(duration.TotalMilliseconds * (0.1 + 0.6 * rng.NextDouble()));
                using (var p = Start(spec, trace))
                {
                    if (!p.WaitForExit(delay)) p.Kill();
                    Assert.True(p.WaitForExit(60_000));
                }
                await using var s = await Replayer.Store.Postgres.PostgresEventStore.OpenAsync(spec);
                var info = await s.GetStreamInfoAsync(stream);
                if (info != null)
                {
                    Assert.Equal((ulong)expected, info.EventCount);
                    await s.DeleteStreamAsync(stream, ExpectedRevision.Any);
                }
                Assert.Empty(s.ReadAllAsync(GlobalPosition.Start).ToBlockingEnumerable());
                Assert.True((await s.VerifyAsync()).Ok);
            }
            using (var p = Start(spec, trace))
            {
                Assert.True(p.WaitForExit(300_000));
                Assert.True(p.ExitCode == 0, p.StandardError.ReadToEnd());
                Assert.Contains($"ingested {expected} events as {stream}", p.StandardOutput.ReadToEnd());
            }
            await using (var s = await Replayer.Store.Postgres.PostgresEventStore.OpenAsync(spec))
                Assert.Equal((ulong)expected, (await s.GetStreamInfoAsync(stream))!.EventCount);
        }
        finally
        {
            await using var s = await Replayer.Store.Postgres.PostgresEventStore.OpenAsync(spec);
            await s.DropSchemaAsync();
        }
    }

    [Fact]
    public async Task Ingest_killed_at_random_moments_leaves_the_whole_capture_or_nothing()
    {
        var trace = Repo.Trace("6.1-ext4-offline", "ftrace", "trace.txt.zst");
        var (id, _, _) = Replayer.Cli.Commands.IngestCommand.Identify(trace);
        var stream = new StreamName("capture-" + id);
        long expected = TraceFiles.Count(trace);

        // A reference run (its own store) gives the duration to aim the kills at.
        var sw = Stopwatch.StartNew();
        using (var p = Start(Path.Combine(_root, "reference"), trace))
        {
            Assert.True(p.WaitForExit(300_000), "reference ingest did not finish in 5 minutes");
            Assert.True(p.ExitCode == 0, p.StandardError.ReadToEnd());
        }
        var duration = sw.Elapsed;

        var store = Path.Combine(_root, "store");
        // Something committed before the capture, which every kill must leave intact.
        using (var s = EmbeddedEventStore.Open(store))
            await s.AppendAsync("before", ExpectedRevision.NoStream, EventBatch.Of([new EventRecord("Marker", new byte[] { 42 })]));

        var rng = new Random(20261125);
        int completedBeforeKill = 0, recovered = 0;
        for (int kill = 0; kill < 20; kill++)
        {
            var delay = TimeSpan.FromMilliseconds(duration.TotalMilliseconds * (0.02 + 0.78 * rng.NextDouble()));
            using (var p = Start(store, trace))
            {
                if (!p.WaitForExit(delay)) p.Kill(); // SIGKILL
                Assert.True(p.WaitForExit(60_000));
            }
            using var s = EmbeddedEventStore.Open(store);
            if (s.RecoveryLog.Count > 0) recovered++;
            log.WriteLine($"kill {kill} after {delay.TotalMilliseconds:F0} ms of ~{duration.TotalMilliseconds:F0}: {string.Join(" | ", s.RecoveryLog)}");
            var report = (await s.VerifyAsync());
            Assert.True(report.Ok, $"kill {kill} after {delay.TotalMilliseconds:F0} ms: " + string.Join("; ", report.Problems));
            Assert.Empty(report.Notes);
            Assert.Equal(1UL, (await s.GetStreamInfoAsync("before"))!.EventCount);
            var info = (await s.GetStreamInfoAsync(stream));
            if (info != null)
            {
                // Finished before the kill: whole, never partial. Delete it so the next run ingests again.
                Assert.Equal((ulong)expected, info.EventCount);
                Assert.NotNull((await s.GetStreamMetadataAsync(stream)));
                completedBeforeKill++;
                await s.DeleteStreamAsync(stream, ExpectedRevision.Any);
            }
            else
            {
                Assert.Empty(s.ReadStreamAsync(stream).ToBlockingEnumerable());
                Assert.Null((await s.GetStreamMetadataAsync(stream)));
                Assert.Single(s.ReadAllAsync(GlobalPosition.Start).ToBlockingEnumerable());
            }
        }
        log.WriteLine($"{recovered} kills interrupted a write, {completedBeforeKill} came after the ingest had committed");
        Assert.True(recovered >= 5, $"only {recovered} of 20 kills interrupted a write; the kills are not exercising recovery");

        using (var p = Start(store, trace))
        {
            Assert.True(p.WaitForExit(300_000));
            var stdout = p.StandardOutput.ReadToEnd();
            Assert.True(p.ExitCode == 0, p.StandardError.ReadToEnd());
            Assert.Contains($"ingested {expected} events as {stream}", stdout);
        }
        using (var s = EmbeddedEventStore.Open(store))
        {
            Assert.Equal((ulong)expected, (await s.GetStreamInfoAsync(stream))!.EventCount);
            var report = (await s.VerifyAsync());
            Assert.True(report.Ok, string.Join("; ", report.Problems));
            long n = 0;
            foreach (var slice in s.ReadStreamSlicesAsync(stream, StreamRevision.Start).ToBlockingEnumerable()) n += slice.Count;
            Assert.Equal(expected, n);
        }
        using (var p = Start(store, trace))
        {
            Assert.True(p.WaitForExit(120_000));
            Assert.Contains("already ingested", p.StandardOutput.ReadToEnd());
        }
    }
}
