using Replayer.Store;
using Replayer.Store.Embedded;
using Replayer.Store.Postgres;
using Replayer.TestKit;

namespace Replayer.Store.Tests;

/// <summary>The conformance suite on the embedded store (a fresh temp directory per test).</summary>
public sealed class EmbeddedConformanceTests : EventStoreConformance
{
    readonly string _dir = Repo.TempDir("store");

    // Small segments so that every test also crosses segment boundaries.
    EmbeddedEventStore OpenStore() => EmbeddedEventStore.Open(_dir, new EmbeddedStoreOptions { MaxSegmentBytes = 256 << 10, CheckpointEveryBytes = 64 << 10 });

    protected override Task<IEventStore> CreateStoreAsync() => Task.FromResult<IEventStore>(OpenStore());
    protected override Task<IEventStore> ReopenStoreAsync() => Task.FromResult<IEventStore>(OpenStore());
    protected override Task<IEventStore> SecondHandleAsync() => Task.FromResult(new NonDisposing(Store) as IEventStore);
    protected override Task<IEventStore> ReaderAsync() => Task.FromResult<IEventStore>(EmbeddedEventStore.Open(_dir, new EmbeddedStoreOptions { ReadOnly = true }));
    protected override Task CleanupAsync()
    {
        Directory.Delete(_dir, true);
        return Task.CompletedTask;
    }
}

/// <summary>
/// The conformance suite on PostgreSQL: a real server named by <c>REPLAYER_TEST_PG</c> (start one with
/// <c>.ci/postgres.sh</c>); each test gets its own schema, dropped afterwards. Without the variable
/// every test FAILS (never skips).
/// </summary>
public sealed class PostgresConformanceTests : EventStoreConformance
{
    readonly string _schema = "t_" + Guid.NewGuid().ToString("N")[..12];

    public static string ServerSpec() =>
        Environment.GetEnvironmentVariable("REPLAYER_TEST_PG") is { Length: > 0 } s ? s
        : throw new InvalidOperationException("REPLAYER_TEST_PG is not set: start a throw-away server with `export REPLAYER_TEST_PG=\"$(.ci/postgres.sh | tail -1)\"` and rerun");

    public static string WithSchema(string spec, string schema) =>
        spec.Contains("://", StringComparison.Ordinal) ? spec + (spec.Contains('?') ? "&" : "?") + "schema=" + schema
        : spec.Contains(';') || !spec.Contains(' ') ? spec.TrimEnd(';') + ";schema=" + schema
        : spec + " schema=" + schema;

    async Task<IEventStore> OpenAsync() => await PostgresEventStore.OpenAsync(WithSchema(ServerSpec(), _schema));

    protected override Task<IEventStore> CreateStoreAsync() => OpenAsync();
    protected override Task<IEventStore> ReopenStoreAsync() => OpenAsync();
    protected override Task<IEventStore> SecondHandleAsync() => OpenAsync();
    protected override Task<IEventStore> ReaderAsync() => OpenAsync();
    protected override async Task CleanupAsync()
    {
        if (Environment.GetEnvironmentVariable("REPLAYER_TEST_PG") is not { Length: > 0 }) return;
        await using var s = await PostgresEventStore.OpenAsync(WithSchema(ServerSpec(), _schema));
        await s.DropSchemaAsync();
    }
}

/// <summary>Shares the embedded store instance as a "second handle" without letting the test dispose it.</summary>
sealed class NonDisposing(IEventStore inner) : IEventStore
{
    public string Description => inner.Description;
    public Task<AppendResult> AppendAsync(StreamName stream, ExpectedRevision expected, EventBatch batch, CancellationToken ct = default) => inner.AppendAsync(stream, expected, batch, ct);
    public Task<IAppendTransaction> BeginAppendAsync(StreamName stream, ExpectedRevision expected, CancellationToken ct = default) => inner.BeginAppendAsync(stream, expected, ct);
    public IAsyncEnumerable<EventSlice> ReadStreamSlicesAsync(StreamName stream, StreamRevision from, CancellationToken ct = default) => inner.ReadStreamSlicesAsync(stream, from, ct);
    public IAsyncEnumerable<EventBlockSlice> ReadStreamBlocksAsync(StreamName stream, StreamRevision from, CancellationToken ct = default) => inner.ReadStreamBlocksAsync(stream, from, ct);
    public IAsyncEnumerable<ResolvedEvent> ReadStreamAsync(StreamName stream, Direction direction = Direction.Forward, StreamRevision? from = null, long maxCount = long.MaxValue, CancellationToken ct = default) => inner.ReadStreamAsync(stream, direction, from, maxCount, ct);
    public IAsyncEnumerable<EventSlice> ReadAllSlicesAsync(GlobalPosition from, CancellationToken ct = default) => inner.ReadAllSlicesAsync(from, ct);
    public IAsyncEnumerable<ResolvedEvent> ReadAllAsync(GlobalPosition from, CancellationToken ct = default) => inner.ReadAllAsync(from, ct);
    public IAsyncEnumerable<ResolvedEvent> SubscribeToAllAsync(GlobalPosition? checkpoint, CancellationToken ct) => inner.SubscribeToAllAsync(checkpoint, ct);
    public IAsyncEnumerable<ResolvedEvent> SubscribeToStreamAsync(StreamName stream, StreamRevision? checkpoint, CancellationToken ct) => inner.SubscribeToStreamAsync(stream, checkpoint, ct);
    public Task<StreamInfo?> GetStreamInfoAsync(StreamName stream, CancellationToken ct = default) => inner.GetStreamInfoAsync(stream, ct);
    public IAsyncEnumerable<StreamInfo> ListStreamsAsync(CancellationToken ct = default) => inner.ListStreamsAsync(ct);
    public Task<string?> GetStreamMetadataAsync(StreamName stream, CancellationToken ct = default) => inner.GetStreamMetadataAsync(stream, ct);
    public Task SetStreamMetadataAsync(StreamName stream, string json, CancellationToken ct = default) => inner.SetStreamMetadataAsync(stream, json, ct);
    public Task DeleteStreamAsync(StreamName stream, ExpectedRevision expected, CancellationToken ct = default) => inner.DeleteStreamAsync(stream, expected, ct);
    public Task<VerifyReport> VerifyAsync(CancellationToken ct = default) => inner.VerifyAsync(ct);
    public ValueTask DisposeAsync() => ValueTask.CompletedTask;
    public void Dispose() { }
}
