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

    [Fact]
    public async Task Ingest_killed_at_random_moments_leaves_the_whole_capture_or_nothing()
    {
        var trace = Repo.Trace("6.1-ext4-offline", "ftrace", "trace.txt.zst");
        var (id, _, _) = Replayer.Cli.Commands.IngestCommand.Identify(trace);
        var stream = new StreamName("capture-" + id);
        long expected = 0;
        using (var r = TraceOpener.Open(trace, new TraceOpenOptions { Strict = true }))
            while (r.Read() != null) expected++;

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
