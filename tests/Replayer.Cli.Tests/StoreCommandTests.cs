using System.Text.Json;
using Replayer.Cli.Commands;
using Replayer.Core;
using Replayer.Formats;
using Replayer.Store;
using Replayer.Store.Embedded;
using Replayer.TestKit;

namespace Replayer.Cli.Tests;

/// <summary>replayer ingest / ls / store verify, in process, on real captures.</summary>
public sealed class StoreCommandTests : IDisposable
{
    readonly List<string> _dirs = [];

    string Temp(string p)
    {
        var d = Repo.TempDir(p);
        _dirs.Add(d);
        return d;
    }

    public void Dispose()
    {
        foreach (var d in _dirs) if (Directory.Exists(d)) Directory.Delete(d, true);
    }

    static (long Events, Dictionary<string, long> PerName) CountDirectly(string path)
    {
        using var r = TraceOpener.Open(path, new TraceOpenOptions { Strict = true });
        var per = new Dictionary<string, long>(StringComparer.Ordinal);
        long n = 0;
        while (r.Read() is { } e)
        {
            n++;
            per[e.Name] = per.GetValueOrDefault(e.Name) + 1;
        }
        return (n, per);
    }

    [Fact]
    public async Task Ingest_stores_the_capture_with_metadata_and_ground_truth_and_reingest_is_a_no_op()
    {
        var store = Path.Combine(Temp("cli-store"), "s");
        var trace = Repo.Trace("6.1-ext4-fail", "ftrace", "trace.txt.zst");
        var (expected, perName) = CountDirectly(trace);
        var (id, sha, size) = IngestCommand.Identify(trace);

        var out1 = new StringWriter();
        Assert.Equal(ExitCodes.Ok, IngestCommand.Run([trace], store, strict: true, out1));
        Assert.Contains($"ingested {expected} events as capture-{id}", out1.ToString());
        Assert.Contains("kernel 6.1.0-56-amd64", out1.ToString());

        var out2 = new StringWriter();
        Assert.Equal(ExitCodes.Ok, IngestCommand.Run([trace], store, strict: true, out2));
        Assert.Contains($"already ingested as capture-{id} ({expected} events); nothing to do", out2.ToString());

        using (var s = EmbeddedEventStore.Open(store, new EmbeddedStoreOptions { ReadOnly = true }))
        {
            var streams = s.ListStreamsAsync().ToBlockingEnumerable().ToList();
            Assert.Single(streams);
            Assert.Equal((ulong)expected, streams[0].EventCount);
            using var meta = JsonDocument.Parse(streams[0].Metadata!);
            var m = meta.RootElement;
            Assert.Equal(sha, m.GetProperty("sha256").GetString());
            Assert.Equal(size, m.GetProperty("size").GetInt64());
            Assert.Equal("trace.txt.zst", m.GetProperty("sourceFile").GetString());
            Assert.Equal("FtraceText", m.GetProperty("format").GetString());
            Assert.Equal("6.1.0-56-amd64", m.GetProperty("kernelRelease").GetString());
            Assert.Equal(expected, m.GetProperty("events").GetInt64());
            var per = m.GetProperty("eventsPerName").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetInt64());
            Assert.Equal(perName.OrderBy(k => k.Key), per.OrderBy(k => k.Key));
            var gt = m.GetProperty("groundTruth");
            var dir = Path.GetDirectoryName(trace)!;
            Assert.Equal(File.ReadAllText(Path.Combine(dir, "workload.stdout")), gt.GetProperty("workload.stdout").GetString());
            Assert.Equal(File.ReadAllText(Path.Combine(dir, "uname.txt")), gt.GetProperty("uname.txt").GetString());
            foreach (var f in Directory.GetFiles(dir, "memory.stat.*"))
                Assert.Equal(File.ReadAllText(f), gt.GetProperty(Path.GetFileName(f)).GetString());

            // The stored events are the reader's events, in order.
            using var r = TraceOpener.Open(trace, new TraceOpenOptions { Strict = true });
            long i = 0;
            foreach (var slice in s.ReadStreamSlicesAsync("capture-" + id, StreamRevision.Start).ToBlockingEnumerable())
                for (int k = 0; k < slice.Count; k++, i++)
                {
                    var want = r.Read()!;
                    var got = slice.TraceEvents![slice.Offset + k];
                    Assert.Equal(want, got);
                    Assert.Equal(want.Source, got.Source);
                }
            Assert.Null(r.Read());
            Assert.Equal(expected, i);
        }

        var ls = new StringWriter();
        Assert.Equal(ExitCodes.Ok, LsCommand.Run(store, json: false, ls));
        var lines = ls.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(["ID", "NAME", "FORMAT", "EVENTS", "KERNEL"], lines[0].Split(' ', StringSplitOptions.RemoveEmptyEntries));
        Assert.Equal([id, "trace.txt.zst", "FtraceText", expected.ToString(), "6.1.0-56-amd64"], lines[1].Split(' ', StringSplitOptions.RemoveEmptyEntries));

        var v = new StringWriter();
        Assert.Equal(ExitCodes.Ok, StoreCommand.Verify(store, v));
        Assert.Contains($": ok: 1 stream(s)", v.ToString());
        Assert.Contains($"{expected} event(s)", v.ToString());
    }

    [Fact]
    public async Task A_bad_line_midway_leaves_no_trace_and_the_good_file_then_ingests()
    {
        var store = Path.Combine(Temp("cli-bad"), "s");
        var good = Repo.Trace("6.1-ext4-basic", "ftrace", "trace.txt.zst");
        var dir = Temp("cli-bad-in");
        // The same capture as plain text with one garbled line about 80% of the way in.
        var lines = new List<string>();
        using (var r = new StreamReader(new ZstdSharp.DecompressionStream(File.OpenRead(good)))) { string? l; while ((l = r.ReadLine()) != null) lines.Add(l); }
        int bad = lines.Count * 4 / 5;
        lines[bad] = "           migwl-401     [000] .....    25.273050: this line is garbled ###";
        var badFile = Path.Combine(dir, "trace.txt");
        File.WriteAllLines(badFile, lines);

        var ex = Assert.Throws<TraceInputException>(() => IngestCommand.Run([badFile], store, strict: true, new StringWriter()));
        Assert.Equal(bad + 1, ex.Line);
        using (var s = EmbeddedEventStore.Open(store))
        {
            Assert.Empty(s.ListStreamsAsync().ToBlockingEnumerable());
            Assert.Empty(s.ReadAllAsync(GlobalPosition.Start).ToBlockingEnumerable());
            Assert.True((await s.VerifyAsync()).Ok);
        }
        // A truncated compressed file fails the same way.
        var trunc = Path.Combine(dir, "trunc.txt.zst");
        var bytes = File.ReadAllBytes(good);
        File.WriteAllBytes(trunc, bytes[..(bytes.Length * 2 / 3)]);
        Assert.ThrowsAny<Exception>(() => IngestCommand.Run([trunc], store, strict: true, new StringWriter()));
        var (expected, _) = CountDirectly(good);
        var o = new StringWriter();
        IngestCommand.Run([good], store, strict: true, o);
        Assert.Contains($"ingested {expected} events", o.ToString());
        using var s2 = EmbeddedEventStore.Open(store);
        Assert.Equal([(ulong)expected], s2.ListStreamsAsync().ToBlockingEnumerable().Select(x => x.EventCount));
        Assert.Equal(expected, (await s2.VerifyAsync()).Events);
    }

    [Fact]
    public async Task Store_verify_names_file_and_offset_of_damage_and_exits_1()
    {
        var store = Path.Combine(Temp("cli-verify"), "s");
        IngestCommand.Run([Repo.Trace("6.1-ext4-fail", "ftrace", "trace.txt.zst")], store, true, new StringWriter());
        var seg = Path.Combine(store, "segments", SegmentFormat.SegmentFileName(0));
        var b = File.ReadAllBytes(seg);
        b[b.Length / 2] ^= 0x10;
        File.WriteAllBytes(seg, b);
        var o = new StringWriter();
        Assert.Equal(ExitCodes.Findings, StoreCommand.Verify(store, o));
        Assert.Matches($@"damage: {System.Text.RegularExpressions.Regex.Escape(seg)} at byte \d+: body checksum mismatch", o.ToString());
    }

    [Fact]
    public async Task A_second_writer_is_told_which_pid_holds_the_store()
    {
        var store = Path.Combine(Temp("cli-lock"), "s");
        using var holder = EmbeddedEventStore.Open(store);
        var ex = Assert.Throws<StoreLockedException>(() => IngestCommand.Run([Repo.Trace("6.1-ext4-fail", "ftrace", "trace.txt.zst")], store, true, new StringWriter()));
        Assert.Contains($"is locked by pid {Environment.ProcessId}", ex.Message);
        // Readers are not blocked.
        Assert.Equal(ExitCodes.Ok, LsCommand.Run(store, false, new StringWriter()));
    }

    [Fact]
    public async Task Ingest_and_ls_work_on_postgres_without_echoing_the_password()
    {
        var pg = Environment.GetEnvironmentVariable("REPLAYER_TEST_PG")
            ?? throw new InvalidOperationException("REPLAYER_TEST_PG is not set: start a throw-away server with `export REPLAYER_TEST_PG=\"$(.ci/postgres.sh | tail -1)\"` and rerun");
        var schema = "cli_" + Guid.NewGuid().ToString("N")[..10];
        var spec = pg + (pg.Contains("://") ? (pg.Contains('?') ? "&" : "?") + "schema=" + schema : ";schema=" + schema);
        var password = Replayer.Store.Postgres.PostgresSpec.Parse(pg).Password;
        try
        {
            var trace = Repo.Trace("6.1-ext4-fail", "ftrace", "trace.txt.zst");
            var o = new StringWriter();
            IngestCommand.Run([trace], spec, true, o);
            IngestCommand.Run([trace], spec, true, o);
            LsCommand.Run(spec, false, o);
            StoreCommand.Verify(spec, o);
            var text = o.ToString();
            Assert.Contains("ingested", text);
            Assert.Contains("already ingested", text);
            Assert.Contains("FtraceText", text);
            Assert.Contains(": ok: 1 stream(s)", text);
            if (password != null) Assert.DoesNotContain(password, text);
        }
        finally
        {
            using var s = Replayer.Store.Postgres.PostgresEventStore.Open(spec);
            await s.DropSchemaAsync();
        }
    }
}
