using System.Text;
using Replayer.Core;
using Replayer.Store;

namespace Replayer.Store.Tests;

/// <summary>
/// The one conformance suite both stores must pass (EventStoreDB semantics). Each test gets a fresh,
/// empty store from <see cref="CreateStoreAsync"/>; <see cref="ReopenAsync"/> closes and reopens it.
/// </summary>
public abstract class EventStoreConformance : IAsyncLifetime
{
    protected IEventStore Store { get; private set; } = null!;
    static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

    protected abstract Task<IEventStore> CreateStoreAsync();
    protected abstract Task<IEventStore> ReopenStoreAsync();
    /// <summary>Another writer on the same store (PostgreSQL: another connection pool; embedded: the same
    /// instance, since a second writer process is locked out).</summary>
    protected abstract Task<IEventStore> SecondHandleAsync();
    /// <summary>An independent reader of the same store (embedded: a read-only instance).</summary>
    protected abstract Task<IEventStore> ReaderAsync();
    protected abstract Task CleanupAsync();

    public async Task InitializeAsync() => Store = await CreateStoreAsync();

    public async Task DisposeAsync()
    {
        if (Store != null) await Store.DisposeAsync();
        await CleanupAsync();
    }

    protected async Task ReopenAsync()
    {
        await Store.DisposeAsync();
        Store = await ReopenStoreAsync();
    }

    static CancellationToken Deadline() => new CancellationTokenSource(Timeout).Token;

    [Fact]
    public async Task Append_then_read_forward_round_trips_every_event()
    {
        var a = TestEvents.Make(1000, seed: 1);
        var b = TestEvents.Make(500, seed: 2, sourceBase: 1001);
        var r1 = await Store.AppendAsync("capture-a", ExpectedRevision.NoStream, EventBatch.Of(a));
        Assert.Equal(999UL, r1.LastRevision);
        Assert.Equal(999UL, r1.LastPosition);
        var r2 = await Store.AppendAsync("capture-a", ExpectedRevision.Exact(999), EventBatch.Of(b));
        Assert.Equal(1499UL, r2.LastRevision);

        var read = await Store.ReadStreamAsync("capture-a", ct: Deadline()).ToListAsync();
        Assert.Equal(1500, read.Count);
        var all = a.Concat(b).ToArray();
        for (int i = 0; i < read.Count; i++)
        {
            Assert.Equal((ulong)i, read[i].Revision.Value);
            Assert.Equal((ulong)i, read[i].Position.Value);
            Assert.Equal("capture-a", read[i].Stream.Value);
            Assert.Equal(ResolvedEvent.TraceEventType, read[i].EventType);
            TestEvents.AssertSame(all[i], read[i].Trace!);
        }

        await ReopenAsync();
        var again = await Store.ReadStreamAsync("capture-a", ct: Deadline()).ToListAsync();
        Assert.Equal(1500, again.Count);
        TestEvents.AssertSame(all[1234], again[1234].Trace!);
        var info = await Store.GetStreamInfoAsync("capture-a");
        Assert.NotNull(info);
        Assert.Equal(1500UL, info!.EventCount);
        Assert.Equal(1499UL, info.LastRevision.Value);
    }

    [Fact]
    public async Task Typed_records_round_trip_beside_trace_events()
    {
        var recs = Enumerable.Range(0, 50).Select(i => new EventRecord(i % 2 == 0 ? "AuditFinding" : "AuditSummary", Encoding.UTF8.GetBytes("{\"i\":" + i + "}"))).ToArray();
        await Store.AppendAsync("audit-1", ExpectedRevision.NoStream, EventBatch.Of(TestEvents.Make(3)));
        await Store.AppendAsync("audit-1", ExpectedRevision.Exact(2), EventBatch.Of(recs));
        await Store.AppendAsync("audit-1", ExpectedRevision.Exact(52), EventBatch.Of([new EventRecord("Empty", Array.Empty<byte>())]));
        var read = await Store.ReadStreamAsync("audit-1", ct: Deadline()).ToListAsync();
        Assert.Equal(54, read.Count);
        Assert.All(read.Take(3), e => Assert.NotNull(e.Trace));
        for (int i = 0; i < 50; i++)
        {
            Assert.Null(read[3 + i].Trace);
            Assert.Equal(recs[i].EventType, read[3 + i].EventType);
            Assert.Equal(recs[i].Payload.ToArray(), read[3 + i].Payload.ToArray());
        }
        Assert.Equal("Empty", read[53].EventType);
        Assert.Equal(0, read[53].Payload.Length);
        Assert.Throws<ArgumentException>(() => EventBatch.Of([new EventRecord(ResolvedEvent.TraceEventType, new byte[1])]));
    }

    [Fact]
    public async Task Wrong_expected_revision_throws_with_stream_expected_and_actual_and_writes_nothing()
    {
        await Store.AppendAsync("s", ExpectedRevision.NoStream, TestEvents.Batch(10));

        var e1 = await Assert.ThrowsAsync<WrongExpectedVersionException>(() => Store.AppendAsync("s", ExpectedRevision.NoStream, TestEvents.Batch(1)));
        Assert.Equal("s", e1.Stream.Value);
        Assert.True(e1.Expected.IsNoStream);
        Assert.Equal(9UL, e1.Actual);
        Assert.Contains("'s'", e1.Message);

        var e2 = await Assert.ThrowsAsync<WrongExpectedVersionException>(() => Store.AppendAsync("s", ExpectedRevision.Exact(3), TestEvents.Batch(1)));
        Assert.Equal(3UL, e2.Expected.ExactRevision);
        Assert.Equal(9UL, e2.Actual);

        var e3 = await Assert.ThrowsAsync<WrongExpectedVersionException>(() => Store.AppendAsync("missing", ExpectedRevision.StreamExists, TestEvents.Batch(1)));
        Assert.Null(e3.Actual);
        var e4 = await Assert.ThrowsAsync<WrongExpectedVersionException>(() => Store.AppendAsync("missing", ExpectedRevision.Exact(0), TestEvents.Batch(1)));
        Assert.Null(e4.Actual);
        await Assert.ThrowsAsync<WrongExpectedVersionException>(() => Store.BeginAppendAsync("s", ExpectedRevision.Exact(10)));

        Assert.Null(await Store.GetStreamInfoAsync("missing"));
        Assert.Equal(10UL, (await Store.GetStreamInfoAsync("s"))!.EventCount);

        // The right expectations succeed.
        var r = await Store.AppendAsync("s", ExpectedRevision.StreamExists, TestEvents.Batch(2));
        Assert.Equal(11UL, r.LastRevision);
        r = await Store.AppendAsync("s", ExpectedRevision.Any, TestEvents.Batch(2));
        Assert.Equal(13UL, r.LastRevision);
        r = await Store.AppendAsync("new", ExpectedRevision.Any, TestEvents.Batch(2));
        Assert.Equal(1UL, r.LastRevision);
        Assert.Equal(15UL, r.LastPosition);
        Assert.Equal(16, (await Store.ReadAllAsync(GlobalPosition.Start, Deadline()).ToListAsync()).Count);
    }

    [Fact]
    public async Task Concurrent_appenders_with_the_same_expectation_exactly_one_wins()
    {
        await Store.AppendAsync("race", ExpectedRevision.NoStream, TestEvents.Batch(5));
        const int N = 8;
        var handles = new List<IEventStore>();
        for (int i = 0; i < N; i++) handles.Add(await SecondHandleAsync());
        try
        {
            using var go = new ManualResetEventSlim(false);
            var tasks = Enumerable.Range(0, N).Select(i => Task.Run(async () =>
            {
                go.Wait();
                try
                {
                    await handles[i].AppendAsync("race", ExpectedRevision.Exact(4), TestEvents.Batch(100, seed: 100 + i));
                    return i;
                }
                catch (WrongExpectedVersionException e)
                {
                    Assert.Equal(104UL, e.Actual);
                    return -1;
                }
            })).ToArray();
            go.Set();
            var results = await Task.WhenAll(tasks).WaitAsync(Timeout);
            var winners = results.Where(r => r >= 0).ToList();
            Assert.Single(winners);
            var events = await Store.ReadStreamAsync("race", ct: Deadline()).ToListAsync();
            Assert.Equal(105, events.Count);
            var expected = TestEvents.Make(100, seed: 100 + winners[0]);
            for (int i = 0; i < 100; i++) TestEvents.AssertSame(expected[i], events[5 + i].Trace!);

            // Racing stream creation: exactly one NoStream append wins.
            go.Reset();
            var creators = Enumerable.Range(0, N).Select(i => Task.Run(async () =>
            {
                go.Wait();
                try { await handles[i].AppendAsync("fresh", ExpectedRevision.NoStream, TestEvents.Batch(3, seed: i)); return 1; }
                catch (WrongExpectedVersionException) { return 0; }
            })).ToArray();
            go.Set();
            Assert.Equal(1, (await Task.WhenAll(creators).WaitAsync(Timeout)).Sum());
            Assert.Equal(3UL, (await Store.GetStreamInfoAsync("fresh"))!.EventCount);
        }
        finally
        {
            foreach (var h in handles) await h.DisposeAsync();
        }
    }

    [Fact]
    public async Task Concurrent_appenders_to_different_streams_get_distinct_consecutive_positions()
    {
        var handles = new List<IEventStore>();
        for (int i = 0; i < 4; i++) handles.Add(await SecondHandleAsync());
        try
        {
            var tasks = Enumerable.Range(0, 4).Select(i => Task.Run(async () =>
            {
                var exp = ExpectedRevision.NoStream;
                for (int k = 0; k < 10; k++)
                    exp = (await handles[i].AppendAsync($"w{i}", exp, TestEvents.Batch(7, seed: i * 100 + k))).NextExpected;
            })).ToArray();
            await Task.WhenAll(tasks).WaitAsync(Timeout);
            var all = await Store.ReadAllAsync(GlobalPosition.Start, Deadline()).ToListAsync();
            Assert.Equal(280, all.Count);
            Assert.Equal(Enumerable.Range(0, 280).Select(i => (ulong)i), all.Select(e => e.Position.Value));
            foreach (var g in all.GroupBy(e => e.Stream.Value))
                Assert.Equal(Enumerable.Range(0, 70).Select(i => (ulong)i), g.Select(e => e.Revision.Value));
        }
        finally
        {
            foreach (var h in handles) await h.DisposeAsync();
        }
    }

    [Fact]
    public async Task Read_backward_and_from_the_middle_of_a_batch()
    {
        var ev = TestEvents.Make(300);
        await Store.AppendAsync("b", ExpectedRevision.NoStream, EventBatch.Of(ev[..100]));
        await Store.AppendAsync("other", ExpectedRevision.NoStream, TestEvents.Batch(10));
        await Store.AppendAsync("b", ExpectedRevision.Exact(99), EventBatch.Of(ev[100..250]));
        await Store.AppendAsync("b", ExpectedRevision.Exact(249), EventBatch.Of(ev[250..]));

        var back = await Store.ReadStreamAsync("b", Direction.Backward, ct: Deadline()).ToListAsync();
        Assert.Equal(Enumerable.Range(0, 300).Reverse().Select(i => (ulong)i), back.Select(e => e.Revision.Value));
        for (int i = 0; i < 300; i++) TestEvents.AssertSame(ev[299 - i], back[i].Trace!);

        var mid = await Store.ReadStreamAsync("b", Direction.Backward, from: 120, maxCount: 30, ct: Deadline()).ToListAsync();
        Assert.Equal(Enumerable.Range(91, 30).Reverse().Select(i => (ulong)i), mid.Select(e => e.Revision.Value));
        TestEvents.AssertSame(ev[91], mid[^1].Trace!);

        var fwd = await Store.ReadStreamAsync("b", Direction.Forward, from: 95, maxCount: 10, ct: Deadline()).ToListAsync();
        Assert.Equal(Enumerable.Range(95, 10).Select(i => (ulong)i), fwd.Select(e => e.Revision.Value));
        TestEvents.AssertSame(ev[104], fwd[^1].Trace!);
        // Positions: "other" took 100..109, so revision 100 of "b" is at position 110.
        Assert.Equal(105UL, fwd.Single(e => e.Revision.Value == 100).Position.Value - 5);
        Assert.Equal(110UL, fwd.Single(e => e.Revision.Value == 100).Position.Value);

        Assert.Empty(await Store.ReadStreamAsync("b", from: 300, ct: Deadline()).ToListAsync());
        Assert.Empty(await Store.ReadStreamAsync("nope", Direction.Backward, ct: Deadline()).ToListAsync());
        var slices = await Store.ReadStreamSlicesAsync("b", 150, Deadline()).ToListAsync();
        Assert.Equal(150, slices.Sum(s => s.Count));
        Assert.Equal(150UL, slices[0].FirstRevision.Value);
    }

    [Fact]
    public async Task Read_all_is_in_global_order_across_streams_from_any_position()
    {
        var expect = new List<(string, TraceEvent)>();
        for (int k = 0; k < 6; k++)
        {
            var name = "s" + (k % 3);
            var ev = TestEvents.Make(25 + k, seed: k);
            await Store.AppendAsync(name, k < 3 ? ExpectedRevision.NoStream : ExpectedRevision.StreamExists, EventBatch.Of(ev));
            expect.AddRange(ev.Select(e => (name, e)));
        }
        var all = await Store.ReadAllAsync(GlobalPosition.Start, Deadline()).ToListAsync();
        Assert.Equal(expect.Count, all.Count);
        for (int i = 0; i < all.Count; i++)
        {
            Assert.Equal((ulong)i, all[i].Position.Value);
            Assert.Equal(expect[i].Item1, all[i].Stream.Value);
            TestEvents.AssertSame(expect[i].Item2, all[i].Trace!);
        }
        var tail = await Store.ReadAllAsync(new GlobalPosition(40), Deadline()).ToListAsync();
        Assert.Equal(expect.Count - 40, tail.Count);
        Assert.Equal(40UL, tail[0].Position.Value);
        Assert.Empty(await Store.ReadAllAsync(new GlobalPosition((ulong)expect.Count), Deadline()).ToListAsync());
    }

    [Fact]
    public async Task Catch_up_subscription_sees_old_then_live_events_in_order()
    {
        var old = TestEvents.Make(120, seed: 7);
        await Store.AppendAsync("sub", ExpectedRevision.NoStream, EventBatch.Of(old[..60]));
        await Store.AppendAsync("sub2", ExpectedRevision.NoStream, EventBatch.Of(old[60..]));
        var live = TestEvents.Make(90, seed: 8);

        using var cts = new CancellationTokenSource(Timeout);
        var got = new List<ResolvedEvent>();
        var streamGot = new List<ResolvedEvent>();
        var caughtUp = new TaskCompletionSource();
        var sub = Task.Run(async () =>
        {
            await foreach (var e in Store.SubscribeToAllAsync(null, cts.Token))
            {
                got.Add(e);
                if (got.Count == 120) caughtUp.TrySetResult();
                if (got.Count == 210) break;
            }
        });
        var streamSub = Task.Run(async () =>
        {
            await foreach (var e in Store.SubscribeToStreamAsync("sub", new StreamRevision(29), cts.Token))
            {
                streamGot.Add(e);
                if (streamGot.Count == 30 + 90) break;
            }
        });
        await caughtUp.Task.WaitAsync(cts.Token);
        var writer = await SecondHandleAsync();
        try
        {
            var exp = ExpectedRevision.Exact(59);
            for (int k = 0; k < 3; k++)
                exp = (await writer.AppendAsync("sub", exp, EventBatch.Of(live[(k * 30)..((k + 1) * 30)]))).NextExpected;
        }
        finally
        {
            await writer.DisposeAsync();
        }
        await Task.WhenAll(sub, streamSub).WaitAsync(cts.Token);

        Assert.Equal(Enumerable.Range(0, 210).Select(i => (ulong)i), got.Select(e => e.Position.Value));
        var expected = old.Concat(live).ToArray();
        for (int i = 0; i < 210; i++) TestEvents.AssertSame(expected[i], got[i].Trace!);
        Assert.Equal(Enumerable.Range(30, 120).Select(i => (ulong)i), streamGot.Select(e => e.Revision.Value));
        TestEvents.AssertSame(live[89], streamGot[^1].Trace!);

        // From a checkpoint in the middle.
        using var cts2 = new CancellationTokenSource(Timeout);
        var fromCp = new List<ulong>();
        await foreach (var e in Store.SubscribeToAllAsync(new GlobalPosition(199), cts2.Token))
        {
            fromCp.Add(e.Position.Value);
            if (fromCp.Count == 10) break;
        }
        Assert.Equal(Enumerable.Range(200, 10).Select(i => (ulong)i), fromCp);
    }

    [Fact]
    public async Task Subscription_stops_when_cancelled()
    {
        await Store.AppendAsync("c", ExpectedRevision.NoStream, TestEvents.Batch(3));
        using var cts = new CancellationTokenSource();
        int n = 0;
        var t = Task.Run(async () =>
        {
            await foreach (var _ in Store.SubscribeToAllAsync(null, cts.Token)) if (++n == 3) cts.CancelAfter(100);
        });
        var ex = await Record.ExceptionAsync(() => t.WaitAsync(Timeout));
        Assert.IsAssignableFrom<OperationCanceledException>(ex);
        Assert.Equal(3, n);
    }

    [Fact]
    public async Task Delete_hides_the_stream_and_lets_it_start_again()
    {
        await Store.AppendAsync("keep", ExpectedRevision.NoStream, TestEvents.Batch(5, seed: 1));
        await Store.AppendAsync("gone", ExpectedRevision.NoStream, TestEvents.Batch(7, seed: 2));
        await Store.SetStreamMetadataAsync("gone", "{\"a\":1}");
        await Store.AppendAsync("keep", ExpectedRevision.Exact(4), TestEvents.Batch(5, seed: 3));

        await Assert.ThrowsAsync<WrongExpectedVersionException>(() => Store.DeleteStreamAsync("gone", ExpectedRevision.Exact(3)));
        await Store.DeleteStreamAsync("gone", ExpectedRevision.Exact(6));

        Assert.Null(await Store.GetStreamInfoAsync("gone"));
        Assert.Null(await Store.GetStreamMetadataAsync("gone"));
        Assert.Empty(await Store.ReadStreamAsync("gone", ct: Deadline()).ToListAsync());
        Assert.Empty(await Store.ReadStreamAsync("gone", Direction.Backward, ct: Deadline()).ToListAsync());
        var all = await Store.ReadAllAsync(GlobalPosition.Start, Deadline()).ToListAsync();
        Assert.Equal(10, all.Count);
        Assert.All(all, e => Assert.Equal("keep", e.Stream.Value));
        Assert.Equal(["keep"], (await Store.ListStreamsAsync().ToListAsync()).Select(s => s.Name.Value));

        var r = await Store.AppendAsync("gone", ExpectedRevision.NoStream, TestEvents.Batch(2, seed: 9));
        Assert.Equal(1UL, r.LastRevision);
        Assert.Equal(18UL, r.LastPosition); // positions are never reused
        await ReopenAsync();
        var again = await Store.ReadStreamAsync("gone", ct: Deadline()).ToListAsync();
        Assert.Equal([0UL, 1UL], again.Select(e => e.Revision.Value));
        TestEvents.AssertSame(TestEvents.Make(2, seed: 9)[1], again[1].Trace!);
        Assert.Equal(12, (await Store.ReadAllAsync(GlobalPosition.Start, Deadline()).ToListAsync()).Count);
        await Store.DeleteStreamAsync("missing", ExpectedRevision.Any);
        Assert.True((await Store.VerifyAsync()).Ok);
    }

    [Fact]
    public async Task Metadata_is_set_replaced_validated_and_survives_reopen()
    {
        Assert.Null(await Store.GetStreamMetadataAsync("m"));
        await Store.AppendAsync("m", ExpectedRevision.NoStream, TestEvents.Batch(4));
        await Store.SetStreamMetadataAsync("m", "{\"source\":\"trace.txt\",\"events\":4}");
        Assert.Equal("{\"source\":\"trace.txt\",\"events\":4}", await Store.GetStreamMetadataAsync("m"));
        await Store.SetStreamMetadataAsync("m", "{\"v\":2,\"name\":\"caf\u00e9\"}");
        Assert.Equal("{\"v\":2,\"name\":\"caf\u00e9\"}", await Store.GetStreamMetadataAsync("m"));
        Assert.Equal("{\"v\":2,\"name\":\"caf\u00e9\"}", (await Store.GetStreamInfoAsync("m"))!.Metadata);
        await Assert.ThrowsAsync<ArgumentException>(() => Store.SetStreamMetadataAsync("m", "{not json"));
        await ReopenAsync();
        Assert.Equal("{\"v\":2,\"name\":\"caf\u00e9\"}", await Store.GetStreamMetadataAsync("m"));
        Assert.Equal(4UL, (await Store.GetStreamInfoAsync("m"))!.EventCount);
    }

    [Fact]
    public async Task List_streams_reports_names_counts_and_last_positions()
    {
        await Store.AppendAsync("capture-b", ExpectedRevision.NoStream, TestEvents.Batch(3));
        await Store.AppendAsync("capture-a", ExpectedRevision.NoStream, TestEvents.Batch(4));
        await Store.AppendAsync("capture-b", ExpectedRevision.Exact(2), TestEvents.Batch(2));
        await Store.SetStreamMetadataAsync("only-meta", "{}");
        var list = await Store.ListStreamsAsync().ToListAsync();
        Assert.Equal(["capture-a", "capture-b"], list.Select(s => s.Name.Value));
        Assert.Equal([4UL, 5UL], list.Select(s => s.EventCount));
        Assert.Equal([6UL, 8UL], list.Select(s => s.LastPosition.Value));
    }

    [Fact]
    public async Task Large_batches_and_a_multi_batch_transaction_round_trip()
    {
        var big = TestEvents.Make(200_000, seed: 3);
        await Store.AppendAsync("big", ExpectedRevision.NoStream, EventBatch.Of(big));
        await using (var tx = await Store.BeginAppendAsync("capture-big", ExpectedRevision.NoStream))
        {
            for (int k = 0; k < 10; k++) await tx.AppendAsync(EventBatch.Of(big.AsSpan(k * 16384, 16384)));
            Assert.Equal(163840, tx.Count);
            tx.SetMetadata("{\"events\":163840}");
            var r = await tx.CommitAsync();
            Assert.Equal(163839UL, r.LastRevision);
            Assert.Equal(200_000UL + 163839, r.LastPosition);
        }
        long n = 0;
        await foreach (var s in Store.ReadStreamSlicesAsync("big", StreamRevision.Start, Deadline()))
        {
            for (int i = 0; i < s.Count; i++) TestEvents.AssertSame(big[n + i], s.TraceEvents![s.Offset + i]);
            n += s.Count;
        }
        Assert.Equal(200_000, n);
        n = 0;
        await foreach (var s in Store.ReadStreamBlocksAsync("big", new StreamRevision(123_456), Deadline()))
        {
            for (int i = 0; i < s.Count; i++) TestEvents.AssertSame(big[123_456 + n + i], s.Block.ToTraceEvent(i));
            n += s.Count;
        }
        Assert.Equal(200_000 - 123_456, n);
        var tail = await Store.ReadStreamAsync("capture-big", Direction.Backward, maxCount: 3, ct: Deadline()).ToListAsync();
        TestEvents.AssertSame(big[163839], tail[0].Trace!);
        Assert.Equal("{\"events\":163840}", await Store.GetStreamMetadataAsync("capture-big"));
        var v = await Store.VerifyAsync();
        Assert.True(v.Ok, string.Join("\n", v.Problems));
        Assert.Equal(363840, v.Events);
    }

    [Fact]
    public async Task Transaction_is_invisible_until_commit_and_leaves_no_trace_when_abandoned()
    {
        await Store.AppendAsync("before", ExpectedRevision.NoStream, TestEvents.Batch(10));
        await using (var tx = await Store.BeginAppendAsync("capture-x", ExpectedRevision.NoStream))
        {
            await tx.AppendAsync(TestEvents.Batch(1000, seed: 4));
            await tx.AppendAsync(TestEvents.Batch(1000, seed: 5));
            tx.SetMetadata("{\"partial\":true}");
            // Not committed: disposed here.
        }
        Assert.Null(await Store.GetStreamInfoAsync("capture-x"));
        Assert.Null(await Store.GetStreamMetadataAsync("capture-x"));
        Assert.Equal(10, (await Store.ReadAllAsync(GlobalPosition.Start, Deadline()).ToListAsync()).Count);

        await using (var tx = await Store.BeginAppendAsync("capture-x", ExpectedRevision.NoStream))
        {
            await tx.AppendAsync(TestEvents.Batch(500, seed: 6));
            // Readers (another handle) see nothing yet.
            await using (var reader = await ReaderAsync())
            {
                Assert.Null(await reader.GetStreamInfoAsync("capture-x"));
                Assert.Equal(10, (await reader.ReadAllAsync(GlobalPosition.Start, Deadline()).ToListAsync()).Count);
                Assert.Equal(10UL, (await reader.GetStreamInfoAsync("before"))!.EventCount);
            }
            Assert.Null(await Store.GetStreamInfoAsync("capture-x"));
            var r = await tx.CommitAsync();
            Assert.Equal(499UL, r.LastRevision);
            Assert.Equal(509UL, r.LastPosition); // the abandoned transaction used no positions
        }
        var ev = await Store.ReadStreamAsync("capture-x", ct: Deadline()).ToListAsync();
        Assert.Equal(500, ev.Count);
        TestEvents.AssertSame(TestEvents.Make(500, seed: 6)[0], ev[0].Trace!);
        Assert.Null(await Store.GetStreamMetadataAsync("capture-x"));
        Assert.True((await Store.VerifyAsync()).Ok);
    }

    [Fact]
    public async Task Verify_passes_on_a_healthy_store_and_counts_everything()
    {
        await Store.AppendAsync("v1", ExpectedRevision.NoStream, TestEvents.Batch(100));
        await Store.AppendAsync("v2", ExpectedRevision.NoStream, EventBatch.Of([new EventRecord("X", new byte[] { 1, 2, 3 })]));
        await Store.AppendAsync("v1", ExpectedRevision.Exact(99), TestEvents.Batch(50));
        var v = await Store.VerifyAsync();
        Assert.True(v.Ok, string.Join("\n", v.Problems));
        Assert.Equal(151, v.Events);
        Assert.Equal(3, v.Batches);
        Assert.Equal(2, v.Streams);
    }

    /// <summary>Every row of a block read from <paramref name="from"/>: revision, position, and the event copied out
    /// before the next MoveNext (blocks are only valid until then).</summary>
    async Task<List<(ulong Revision, ulong Position, TraceEvent Event, long RecordsSkipped)>> ReadBlockRowsAsync(StreamName stream, ulong from)
    {
        var rows = new List<(ulong, ulong, TraceEvent, long)>();
        await foreach (var s in Store.ReadStreamBlocksAsync(stream, new StreamRevision(from), Deadline()))
        {
            Assert.Equal(stream, s.Stream);
            Assert.True(s.Count > 0);
            Assert.Equal(s.Block.Count, s.Count);
            Assert.Equal(s.FirstRevision.Value + 5, s.RevisionOf(5).Value);
            Assert.Equal(s.FirstPosition.Value + 5, s.PositionOf(5).Value);
            for (int i = 0; i < s.Count; i++)
                rows.Add((s.RevisionOf(i).Value, s.PositionOf(i).Value, s.Block.ToTraceEvent(i), i == 0 ? s.RecordsSkipped : 0));
        }
        return rows;
    }

    static void AssertRowsMatch(IReadOnlyList<ResolvedEvent> expected, IReadOnlyList<(ulong Revision, ulong Position, TraceEvent Event, long RecordsSkipped)> rows)
    {
        Assert.Equal(expected.Count, rows.Count);
        for (int i = 0; i < rows.Count; i++)
        {
            Assert.Equal(expected[i].Revision.Value, rows[i].Revision);
            Assert.Equal(expected[i].Position.Value, rows[i].Position);
            ShapedCodecTests.AssertExact(expected[i].Trace!, rows[i].Event);
        }
    }

    [Fact]
    public async Task Block_reads_equal_trace_event_reads_from_any_revision_across_batches()
    {
        var ev = TestEvents.Make(1200, seed: 21);
        await Store.AppendAsync("blk", ExpectedRevision.NoStream, EventBatch.Of(ev[..100]));
        await Store.AppendAsync("other", ExpectedRevision.NoStream, TestEvents.Batch(7));
        await Store.AppendAsync("blk", ExpectedRevision.Exact(99), EventBatch.Of(ev[100..101]));
        // Block batches from one reused block, in a multi-batch transaction.
        var block = new EventBlock(16);
        await using (var tx = await Store.BeginAppendAsync("blk", ExpectedRevision.Exact(100)))
        {
            foreach (var (a, b) in new[] { (101, 351), (351, 352), (352, 900) })
            {
                block.Clear();
                for (int i = a; i < b; i++) block.Add(ev[i]);
                await tx.AppendAsync(EventBatch.Of(block));
            }
            block.Clear();
            await tx.CommitAsync();
        }
        await Store.AppendAsync("other", ExpectedRevision.Exact(6), TestEvents.Batch(3));
        await Store.AppendAsync("blk", ExpectedRevision.Exact(899), EventBatch.Of(ev[900..]));

        var all = await Store.ReadStreamAsync("blk", ct: Deadline()).ToListAsync();
        Assert.Equal(1200, all.Count);
        for (int i = 0; i < all.Count; i++) TestEvents.AssertSame(ev[i], all[i].Trace!);
        foreach (ulong from in new ulong[] { 0, 1, 50, 99, 100, 101, 102, 350, 351, 352, 899, 900, 1199, 1200, 5000 })
        {
            var rows = await ReadBlockRowsAsync("blk", from);
            AssertRowsMatch(all.Skip((int)Math.Min(from, 1200)).ToList(), rows);
            if (from < 1200) Assert.Equal(from, rows[0].Revision);
        }
        // Positions: "other" took 100..106 and 907..909.
        var fromRows = await ReadBlockRowsAsync("blk", 0);
        Assert.Equal(107UL, fromRows[100].Position);
        Assert.Equal(910UL, fromRows[900].Position);
        Assert.Equal(ev.Sum(e => e.Source), fromRows.Sum(r => r.Event.Source));

        await ReopenAsync();
        AssertRowsMatch(all.Skip(600).ToList(), await ReadBlockRowsAsync("blk", 600));
        Assert.Empty(await ReadBlockRowsAsync("missing", 0));
    }

    [Fact]
    public async Task Block_reads_of_deleted_and_recreated_streams()
    {
        await Store.AppendAsync("gone", ExpectedRevision.NoStream, TestEvents.Batch(40, seed: 2));
        await Store.AppendAsync("gone", ExpectedRevision.Exact(39), TestEvents.Batch(40, seed: 3));
        await Store.AppendAsync("keep", ExpectedRevision.NoStream, TestEvents.Batch(5, seed: 4));
        await Store.DeleteStreamAsync("gone", ExpectedRevision.Exact(79));
        Assert.Empty(await ReadBlockRowsAsync("gone", 0));
        Assert.Empty(await ReadBlockRowsAsync("gone", 40));

        var again = TestEvents.Make(30, seed: 5);
        await Store.AppendAsync("gone", ExpectedRevision.NoStream, EventBatch.Of(again));
        var rows = await ReadBlockRowsAsync("gone", 0);
        Assert.Equal(Enumerable.Range(0, 30).Select(i => (ulong)i), rows.Select(r => r.Revision));
        Assert.Equal(Enumerable.Range(85, 30).Select(i => (ulong)i), rows.Select(r => r.Position)); // positions are never reused
        for (int i = 0; i < 30; i++) ShapedCodecTests.AssertExact(again[i], rows[i].Event);
        AssertRowsMatch(await Store.ReadStreamAsync("gone", ct: Deadline()).ToListAsync(), rows);
        AssertRowsMatch(await Store.ReadStreamAsync("keep", ct: Deadline()).ToListAsync(), await ReadBlockRowsAsync("keep", 0));
    }

    [Fact]
    public async Task Block_reads_pass_over_typed_records_and_count_them()
    {
        var t1 = TestEvents.Make(3, seed: 1);
        var t2 = TestEvents.Make(5, seed: 2);
        var recs = Enumerable.Range(0, 50).Select(i => new EventRecord("AuditFinding", Encoding.UTF8.GetBytes("{\"i\":" + i + "}"))).ToArray();
        await Store.AppendAsync("mixed", ExpectedRevision.NoStream, EventBatch.Of(t1));
        await Store.AppendAsync("mixed", ExpectedRevision.Exact(2), EventBatch.Of(recs[..20]));
        await Store.AppendAsync("mixed", ExpectedRevision.Exact(22), EventBatch.Of(recs[20..]));
        await Store.AppendAsync("mixed", ExpectedRevision.Exact(52), EventBatch.Of(t2));
        await Store.AppendAsync("mixed", ExpectedRevision.Exact(57), EventBatch.Of([new EventRecord("AuditSummary", new byte[] { 1 })]));
        await Store.AppendAsync("only-records", ExpectedRevision.NoStream, EventBatch.Of(recs));

        var all = await Store.ReadStreamAsync("mixed", ct: Deadline()).ToListAsync();
        var traces = all.Where(e => e.Trace != null).ToList();
        Assert.Equal(8, traces.Count);

        var slices = new List<(ulong First, int Count, long Skipped)>();
        await foreach (var s in Store.ReadStreamBlocksAsync("mixed", StreamRevision.Start, Deadline()))
            slices.Add((s.FirstRevision.Value, s.Count, s.RecordsSkipped));
        Assert.Equal([(0UL, 3, 0L), (53UL, 5, 50L)], slices);
        AssertRowsMatch(traces, await ReadBlockRowsAsync("mixed", 0));

        // From inside the records: the rest of them are counted.
        var fromInside = await ReadBlockRowsAsync("mixed", 10);
        AssertRowsMatch(traces.Skip(3).ToList(), fromInside);
        Assert.Equal(43, fromInside[0].RecordsSkipped);
        AssertRowsMatch(traces.Skip(4).ToList(), await ReadBlockRowsAsync("mixed", 54));
        Assert.Empty(await ReadBlockRowsAsync("mixed", 58)); // trailing records: nothing to yield
        Assert.Empty(await ReadBlockRowsAsync("only-records", 0));
    }

    [Fact]
    public async Task Abandoning_a_block_read_midway_and_reading_again_works()
    {
        var ev = TestEvents.Make(5000, seed: 8);
        await using (var tx = await Store.BeginAppendAsync("many", ExpectedRevision.NoStream))
        {
            for (int k = 0; k < 50; k++) await tx.AppendAsync(EventBatch.Of(ev.AsSpan(k * 100, 100)));
            await tx.CommitAsync();
        }
        for (int round = 0; round < 3; round++)
        {
            int seen = 0;
            await foreach (var s in Store.ReadStreamBlocksAsync("many", StreamRevision.Start, Deadline()))
            {
                ShapedCodecTests.AssertExact(ev[seen], s.Block.ToTraceEvent(0));
                seen += s.Count;
                if (seen >= 700) break;
            }
            Assert.Equal(700, seen);
        }
        using var cts = new CancellationTokenSource();
        int n = 0;
        var ex = await Record.ExceptionAsync(async () =>
        {
            await foreach (var s in Store.ReadStreamBlocksAsync("many", StreamRevision.Start, cts.Token))
                if ((n += s.Count) >= 300) cts.Cancel();
        });
        Assert.IsAssignableFrom<OperationCanceledException>(ex);
        AssertRowsMatch(await Store.ReadStreamAsync("many", ct: Deadline()).ToListAsync(), await ReadBlockRowsAsync("many", 0));
    }

    [Fact]
    public async Task Empty_batches_and_bad_names_are_rejected()
    {
        await Assert.ThrowsAsync<ArgumentException>(() => Store.AppendAsync("e", ExpectedRevision.Any, EventBatch.Of(Array.Empty<TraceEvent>())));
        Assert.Throws<ArgumentException>(() => new StreamName(""));
        Assert.Throws<ArgumentException>(() => new StreamName("a\nb"));
        Assert.Throws<ArgumentException>(() => new StreamName(new string('x', 201)));
        Assert.Null(await Store.GetStreamInfoAsync("e"));
    }
}
