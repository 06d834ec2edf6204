using System.Data;
using System.Runtime.CompilerServices;
using Npgsql;
using NpgsqlTypes;
using Replayer.Core;

namespace Replayer.Store.Postgres;

/// <summary>The store could not reach or use its PostgreSQL server (message has no password).</summary>
public sealed class StoreConnectionException(string message, Exception? inner = null) : IOException(message, inner);

/// <summary>
/// The PostgreSQL store. Tables (in schema <c>replayer</c> unless the spec names another):
/// <c>schema_version</c>, <c>streams</c> (name, last revision, metadata), <c>batches</c> (one row per
/// stored batch: stream, first/last revision, first/last global position, kind, codec, body), and
/// <c>global</c> (the next global position). An append locks its stream's row (expected revision is
/// checked under that lock, never read-then-write) and then the <c>global</c> row, so positions are
/// handed out in commit order and catch-up readers never miss an event. Batches go in with binary COPY.
/// </summary>
public sealed class PostgresEventStore : EventStoreBase
{
    public const int SchemaVersion = 1;
    const int PageRows = 64;

    readonly PostgresSpec _spec;
    readonly NpgsqlDataSource _ds;
    readonly string _s; // quoted schema
    bool _disposed;

    public override string Description => _spec.Redacted;
    public string Schema => _spec.Schema;

    PostgresEventStore(PostgresSpec spec)
    {
        _spec = spec;
        _ds = NpgsqlDataSource.Create(spec.ConnectionString);
        _s = "\"" + spec.Schema + "\"";
    }

    public static async Task<PostgresEventStore> OpenAsync(string spec, CancellationToken ct = default)
    {
        PostgresSpec parsed;
        try { parsed = PostgresSpec.Parse(spec); }
        catch (ArgumentException e) { throw new StoreConnectionException("bad PostgreSQL store spec: " + RedactRaw(e.Message, spec)); }
        var store = new PostgresEventStore(parsed);
        try
        {
            await store.MigrateAsync(ct).ConfigureAwait(false);
        }
        catch (Exception e) when (e is NpgsqlException or PostgresException or System.Net.Sockets.SocketException or TimeoutException)
        {
            await store._ds.DisposeAsync().ConfigureAwait(false);
            throw new StoreConnectionException($"cannot open PostgreSQL store {parsed.Redacted}: {parsed.Redact(e.Message)}");
        }
        return store;
    }

    public static PostgresEventStore Open(string spec) => OpenAsync(spec).GetAwaiter().GetResult();

    static string RedactRaw(string message, string spec)
    {
        // Best effort when the spec itself did not parse: hide anything after "password=" or between ':' and '@'.
        var m = System.Text.RegularExpressions.Regex.Match(spec, @"://[^:/@]*:([^@]*)@");
        if (m.Success && m.Groups[1].Value.Length > 0) message = message.Replace(m.Groups[1].Value, "***");
        foreach (System.Text.RegularExpressions.Match pm in System.Text.RegularExpressions.Regex.Matches(spec, @"password\s*=\s*'?([^;\s']+)", System.Text.RegularExpressions.RegexOptions.IgnoreCase))
            message = message.Replace(pm.Groups[1].Value, "***");
        return message;
    }

    async Task MigrateAsync(CancellationToken ct)
    {
        await using var conn = await _ds.OpenConnectionAsync(ct).ConfigureAwait(false);
        await using var tx = await conn.BeginTransactionAsync(ct).ConfigureAwait(false);
        // One migrator at a time per schema.
        await Exec(conn, tx, $"SELECT pg_advisory_xact_lock(hashtext('replayer-migrate:' || @s))", ct, ("s", _spec.Schema)).ConfigureAwait(false);
        await Exec(conn, tx, $"CREATE SCHEMA IF NOT EXISTS {_s}", ct).ConfigureAwait(false);
        await Exec(conn, tx, $"CREATE TABLE IF NOT EXISTS {_s}.schema_version (version int NOT NULL)", ct).ConfigureAwait(false);
        int version;
        await using (var cmd = new NpgsqlCommand($"SELECT max(version) FROM {_s}.schema_version", conn, tx))
        {
            var v = await cmd.ExecuteScalarAsync(ct).ConfigureAwait(false);
            version = v is int i ? i : 0;
        }
        if (version > SchemaVersion)
            throw new StoreCorruptException($"PostgreSQL store {_spec.Redacted} has schema version {version}; this replayer knows up to {SchemaVersion}");
        if (version < 1)
        {
            await Exec(conn, tx, $"""
                CREATE TABLE {_s}.streams (
                    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                    name text NOT NULL UNIQUE,
                    last_revision bigint NOT NULL DEFAULT -1,
                    metadata text
                );
                CREATE TABLE {_s}.batches (
                    stream_id bigint NOT NULL REFERENCES {_s}.streams(id),
                    first_revision bigint NOT NULL,
                    last_revision bigint NOT NULL,
                    first_position bigint NOT NULL,
                    last_position bigint NOT NULL,
                    kind smallint NOT NULL,
                    codec smallint NOT NULL,
                    raw_length integer NOT NULL,
                    count integer NOT NULL,
                    data bytea NOT NULL,
                    PRIMARY KEY (stream_id, first_revision),
                    UNIQUE (first_position),
                    CHECK (count > 0 AND last_revision = first_revision + count - 1 AND last_position = first_position + count - 1)
                );
                CREATE INDEX ON {_s}.batches (last_position);
                CREATE INDEX ON {_s}.batches (stream_id, last_revision);
                CREATE TABLE {_s}.global (id int PRIMARY KEY CHECK (id = 1), next_position bigint NOT NULL);
                INSERT INTO {_s}.global VALUES (1, 0);
                INSERT INTO {_s}.schema_version VALUES (1);
                """, ct).ConfigureAwait(false);
        }
        await tx.CommitAsync(ct).ConfigureAwait(false);
    }

    static async Task Exec(NpgsqlConnection conn, NpgsqlTransaction? tx, string sql, CancellationToken ct, params (string, object)[] args)
    {
        await using var cmd = new NpgsqlCommand(sql, conn, tx);
        foreach (var (n, v) in args) cmd.Parameters.AddWithValue(n, v);
        await cmd.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
    }

    async Task<T> Guard<T>(Func<Task<T>> body)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        try { return await body().ConfigureAwait(false); }
        catch (Exception e) when (e is NpgsqlException and not PostgresException || e is System.Net.Sockets.SocketException)
        {
            throw new StoreConnectionException($"PostgreSQL store {_spec.Redacted}: {_spec.Redact(e.Message)}", null);
        }
    }

    // ───────────────────────────── appends ─────────────────────────────

    public override async Task<AppendResult> AppendAsync(StreamName stream, ExpectedRevision expected, EventBatch batch, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(batch);
        if (batch.Count == 0) throw new ArgumentException("empty batch", nameof(batch));
        await using var tx = (Transaction)await BeginAppendAsync(stream, expected, ct).ConfigureAwait(false);
        await tx.AppendAsync(batch, ct).ConfigureAwait(false);
        return await tx.CommitAsync(ct).ConfigureAwait(false);
    }

    public override Task<IAppendTransaction> BeginAppendAsync(StreamName stream, ExpectedRevision expected, CancellationToken ct = default) =>
        Guard<IAppendTransaction>(async () =>
        {
            _ = stream.Value;
            var conn = await _ds.OpenConnectionAsync(ct).ConfigureAwait(false);
            NpgsqlTransaction? tx = null;
            try
            {
                tx = await conn.BeginTransactionAsync(IsolationLevel.ReadCommitted, ct).ConfigureAwait(false);
                var (id, last) = await LockStreamAsync(conn, tx, stream, ct).ConfigureAwait(false);
                ulong? actual = last < 0 ? null : (ulong)last;
                if (!expected.IsSatisfiedBy(actual)) throw new WrongExpectedVersionException(stream, expected, actual);
                return new Transaction(this, conn, tx, stream, id, actual is { } a ? a + 1 : 0);
            }
            catch
            {
                if (tx != null) await tx.DisposeAsync().ConfigureAwait(false);
                await conn.DisposeAsync().ConfigureAwait(false);
                throw;
            }
        });

    /// <summary>Creates the stream row if needed and locks it for the rest of the transaction.</summary>
    async Task<(long Id, long LastRevision)> LockStreamAsync(NpgsqlConnection conn, NpgsqlTransaction tx, StreamName stream, CancellationToken ct)
    {
        await using (var ins = new NpgsqlCommand($"INSERT INTO {_s}.streams (name) VALUES (@n) ON CONFLICT (name) DO NOTHING", conn, tx))
        {
            ins.Parameters.AddWithValue("n", stream.Value);
            await ins.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
        }
        await using var sel = new NpgsqlCommand($"SELECT id, last_revision FROM {_s}.streams WHERE name = @n FOR UPDATE", conn, tx);
        sel.Parameters.AddWithValue("n", stream.Value);
        await using var r = await sel.ExecuteReaderAsync(ct).ConfigureAwait(false);
        if (!await r.ReadAsync(ct).ConfigureAwait(false)) throw new InvalidOperationException("stream row vanished");
        return (r.GetInt64(0), r.GetInt64(1));
    }

    sealed class Transaction : IAppendTransaction
    {
        readonly PostgresEventStore _s;
        readonly NpgsqlConnection _conn;
        readonly NpgsqlTransaction _tx;
        readonly long _streamId;
        readonly ulong _firstRevision;
        readonly Queue<(Task<BatchCodec.Encoded> Task, int Count)> _encoding = new();
        ulong _written;
        long _queued;
        ulong? _firstPosition;
        string? _metadata;
        bool _done;

        public Transaction(PostgresEventStore s, NpgsqlConnection conn, NpgsqlTransaction tx, StreamName stream, long streamId, ulong firstRevision)
        {
            _s = s; _conn = conn; _tx = tx; Stream = stream; _streamId = streamId; _firstRevision = firstRevision;
        }

        public StreamName Stream { get; }
        public long Count => (long)_written + _queued;

        public Task AppendAsync(EventBatch batch, CancellationToken ct = default) => _s.Guard(async () =>
        {
            ArgumentNullException.ThrowIfNull(batch);
            if (_done) throw new InvalidOperationException("transaction already ended");
            if (batch.Count == 0) return 0;
            _encoding.Enqueue((Task.Run(() => BatchCodec.Encode(batch), ct), batch.Count));
            _queued += batch.Count;
            while (_encoding.Count > Math.Max(1, Environment.ProcessorCount))
                await WriteNextAsync(ct).ConfigureAwait(false);
            return 0;
        });

        async Task WriteNextAsync(CancellationToken ct)
        {
            var (task, count) = _encoding.Dequeue();
            _queued -= count;
            var enc = await task.ConfigureAwait(false);
            // Locks the global row until commit: positions are handed out in commit order.
            ulong first;
            await using (var cmd = new NpgsqlCommand($"UPDATE {_s._s}.global SET next_position = next_position + @n WHERE id = 1 RETURNING next_position - @n", _conn, _tx))
            {
                cmd.Parameters.AddWithValue("n", (long)enc.Count);
                first = (ulong)(long)(await cmd.ExecuteScalarAsync(ct).ConfigureAwait(false))!;
            }
            _firstPosition ??= first;
            ulong rev = _firstRevision + _written;
            await using (var w = await _conn.BeginBinaryImportAsync(
                $"COPY {_s._s}.batches (stream_id, first_revision, last_revision, first_position, last_position, kind, codec, raw_length, count, data) FROM STDIN (FORMAT BINARY)", ct).ConfigureAwait(false))
            {
                await w.StartRowAsync(ct).ConfigureAwait(false);
                await w.WriteAsync(_streamId, NpgsqlDbType.Bigint, ct).ConfigureAwait(false);
                await w.WriteAsync((long)rev, NpgsqlDbType.Bigint, ct).ConfigureAwait(false);
                await w.WriteAsync((long)(rev + (ulong)enc.Count - 1), NpgsqlDbType.Bigint, ct).ConfigureAwait(false);
                await w.WriteAsync((long)first, NpgsqlDbType.Bigint, ct).ConfigureAwait(false);
                await w.WriteAsync((long)(first + (ulong)enc.Count - 1), NpgsqlDbType.Bigint, ct).ConfigureAwait(false);
                await w.WriteAsync((short)enc.Kind, NpgsqlDbType.Smallint, ct).ConfigureAwait(false);
                await w.WriteAsync((short)enc.Codec, NpgsqlDbType.Smallint, ct).ConfigureAwait(false);
                await w.WriteAsync(enc.RawLength, NpgsqlDbType.Integer, ct).ConfigureAwait(false);
                await w.WriteAsync(enc.Count, NpgsqlDbType.Integer, ct).ConfigureAwait(false);
                await w.WriteAsync(enc.Body, NpgsqlDbType.Bytea, ct).ConfigureAwait(false);
                await w.CompleteAsync(ct).ConfigureAwait(false);
            }
            _written += (ulong)enc.Count;
            _lastPosition = first + (ulong)enc.Count - 1;
        }

        ulong _lastPosition;

        public void SetMetadata(string json)
        {
            ValidateJson(json);
            _metadata = json;
        }

        public Task<AppendResult> CommitAsync(CancellationToken ct = default) => _s.Guard(async () =>
        {
            if (_done) throw new InvalidOperationException("transaction already ended");
            try
            {
                while (_encoding.Count > 0) await WriteNextAsync(ct).ConfigureAwait(false);
                await using (var cmd = new NpgsqlCommand($"UPDATE {_s._s}.streams SET last_revision = @r{(_metadata != null ? ", metadata = @m" : "")} WHERE id = @id", _conn, _tx))
                {
                    long last = _written > 0 ? (long)(_firstRevision + _written - 1) : (long)_firstRevision - 1;
                    cmd.Parameters.AddWithValue("r", last);
                    cmd.Parameters.AddWithValue("id", _streamId);
                    if (_metadata != null) cmd.Parameters.AddWithValue("m", _metadata);
                    await cmd.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
                }
                await _tx.CommitAsync(ct).ConfigureAwait(false);
                _done = true;
            }
            finally
            {
                if (_done) await DisposeConnAsync().ConfigureAwait(false);
            }
            _s.SignalChange();
            if (_written == 0)
                return new AppendResult(_firstRevision == 0 ? null : _firstRevision - 1, null);
            return new AppendResult(_firstRevision + _written - 1, _lastPosition);
        });

        async Task DisposeConnAsync()
        {
            await _tx.DisposeAsync().ConfigureAwait(false);
            await _conn.DisposeAsync().ConfigureAwait(false);
        }

        public async ValueTask DisposeAsync()
        {
            if (_done) return;
            _done = true;
            while (_encoding.Count > 0)
            {
                try { await _encoding.Dequeue().Task.ConfigureAwait(false); } catch { /* aborting anyway */ }
            }
            try { await _tx.RollbackAsync().ConfigureAwait(false); } catch (Exception e) when (e is NpgsqlException or InvalidOperationException) { }
            await DisposeConnAsync().ConfigureAwait(false);
        }
    }

    public override async Task SetStreamMetadataAsync(StreamName stream, string json, CancellationToken ct = default)
    {
        ValidateJson(json);
        await using var tx = (Transaction)await BeginAppendAsync(stream, ExpectedRevision.Any, ct).ConfigureAwait(false);
        tx.SetMetadata(json);
        await tx.CommitAsync(ct).ConfigureAwait(false);
    }

    public override Task DeleteStreamAsync(StreamName stream, ExpectedRevision expected, CancellationToken ct = default) => Guard(async () =>
    {
        await using var conn = await _ds.OpenConnectionAsync(ct).ConfigureAwait(false);
        await using var tx = await conn.BeginTransactionAsync(ct).ConfigureAwait(false);
        var (id, last) = await LockStreamAsync(conn, tx, stream, ct).ConfigureAwait(false);
        ulong? actual = last < 0 ? null : (ulong)last;
        if (!expected.IsSatisfiedBy(actual)) throw new WrongExpectedVersionException(stream, expected, actual);
        await Exec(conn, tx, $"DELETE FROM {_s}.batches WHERE stream_id = @id", ct, ("id", id)).ConfigureAwait(false);
        await Exec(conn, tx, $"UPDATE {_s}.streams SET last_revision = -1, metadata = NULL WHERE id = @id", ct, ("id", id)).ConfigureAwait(false);
        await tx.CommitAsync(ct).ConfigureAwait(false);
        SignalChange();
        return 0;
    });

    // ───────────────────────────── reads ─────────────────────────────

    sealed record Row(string Stream, long FirstRevision, long FirstPosition, BodyKind Kind, BodyCodec Codec, int RawLength, int Count, byte[] Data);

    const string RowColumns = "s.name, b.first_revision, b.first_position, b.kind, b.codec, b.raw_length, b.count, b.data";

    async Task<List<Row>> QueryRowsAsync(string sql, CancellationToken ct, params (string, object)[] args)
    {
        return await Guard(async () =>
        {
            await using var conn = await _ds.OpenConnectionAsync(ct).ConfigureAwait(false);
            await using var cmd = new NpgsqlCommand(sql, conn);
            foreach (var (n, v) in args) cmd.Parameters.AddWithValue(n, v);
            await using var r = await cmd.ExecuteReaderAsync(ct).ConfigureAwait(false);
            var rows = new List<Row>();
            while (await r.ReadAsync(ct).ConfigureAwait(false))
                rows.Add(new Row(r.GetString(0), r.GetInt64(1), r.GetInt64(2), (BodyKind)r.GetInt16(3), (BodyCodec)r.GetInt16(4), r.GetInt32(5), r.GetInt32(6), r.GetFieldValue<byte[]>(7)));
            return rows;
        }).ConfigureAwait(false);
    }

    EventSlice Decode(Row row, int offset, int count)
    {
        var (ev, rec) = BatchCodec.Decode(row.Kind, row.Codec, row.RawLength, row.Count, row.Data, Where(row));
        return new EventSlice
        {
            Stream = new StreamName(row.Stream), FirstRevision = (ulong)row.FirstRevision + (ulong)offset,
            FirstPosition = (ulong)row.FirstPosition + (ulong)offset, TraceEvents = ev, Records = rec, Offset = offset, Count = count,
        };
    }

    async IAsyncEnumerable<EventSlice> DecodePages(Func<List<Row>?, Task<List<Row>>> nextPage, Func<Row, (int Offset, int Count)> window, [EnumeratorCancellation] CancellationToken ct)
    {
        List<Row>? page = null;
        while (true)
        {
            page = await nextPage(page).ConfigureAwait(false);
            if (page.Count == 0) yield break;
            var tasks = new Queue<Task<EventSlice>>();
            int next = 0;
            while (next < page.Count || tasks.Count > 0)
            {
                while (next < page.Count && tasks.Count < Math.Max(2, Environment.ProcessorCount))
                {
                    var row = page[next++];
                    var (o, c) = window(row);
                    tasks.Enqueue(Task.Run(() => Decode(row, o, c), ct));
                }
                yield return await tasks.Dequeue().ConfigureAwait(false);
            }
            if (page.Count < PageRows) yield break;
        }
    }

    protected override IAsyncEnumerable<EventSlice> ReadStreamSlicesCoreAsync(StreamName stream, ulong from, bool backward, CancellationToken ct)
    {
        long f = from > long.MaxValue ? long.MaxValue : (long)from;
        if (!backward)
            return DecodePages(prev => QueryRowsAsync(
                    $"SELECT {RowColumns} FROM {_s}.batches b JOIN {_s}.streams s ON s.id = b.stream_id WHERE s.name = @n AND b.last_revision >= @f ORDER BY b.first_revision LIMIT {PageRows}",
                    ct, ("n", stream.Value), ("f", prev is { Count: > 0 } ? prev[^1].FirstRevision + prev[^1].Count : f)),
                row => { int off = f > row.FirstRevision ? (int)(f - row.FirstRevision) : 0; return (off, row.Count - off); }, ct);
        return DecodePages(prev => QueryRowsAsync(
                $"SELECT {RowColumns} FROM {_s}.batches b JOIN {_s}.streams s ON s.id = b.stream_id WHERE s.name = @n AND b.first_revision <= @f ORDER BY b.first_revision DESC LIMIT {PageRows}",
                ct, ("n", stream.Value), ("f", prev is { Count: > 0 } ? prev[^1].FirstRevision - 1 : f)),
            row => (0, f >= row.FirstRevision + row.Count - 1 ? row.Count : (int)(f - row.FirstRevision + 1)), ct);
    }

    public override IAsyncEnumerable<EventBlockSlice> ReadStreamBlocksAsync(StreamName stream, StreamRevision from, CancellationToken ct = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        long f = from.Value > long.MaxValue ? long.MaxValue : (long)from.Value;
        return DecodeBlocksAhead(ForwardRows(stream, f, ct), (row, block) =>
        {
            int off = f > row.FirstRevision ? (int)(f - row.FirstRevision) : 0;
            var d = BatchCodec.DecodeInto(row.Kind, row.Codec, row.RawLength, row.Count, row.Data, Where(row), block, off);
            return new EventBlockSlice
            {
                Stream = new StreamName(row.Stream), FirstRevision = (ulong)row.FirstRevision + (ulong)off,
                FirstPosition = (ulong)row.FirstPosition + (ulong)off, Block = block, RecordsSkipped = d.IsRecords ? row.Count - off : 0,
            };
        }, Math.Max(2, Environment.ProcessorCount), ct);
    }

    /// <summary>The stream's batch rows from revision <paramref name="from"/> on, a page at a time.</summary>
    async IAsyncEnumerable<Row> ForwardRows(StreamName stream, long from, [EnumeratorCancellation] CancellationToken ct)
    {
        long next = from;
        while (true)
        {
            var page = await QueryRowsAsync(
                $"SELECT {RowColumns} FROM {_s}.batches b JOIN {_s}.streams s ON s.id = b.stream_id WHERE s.name = @n AND b.last_revision >= @f ORDER BY b.first_revision LIMIT {PageRows}",
                ct, ("n", stream.Value), ("f", next)).ConfigureAwait(false);
            foreach (var row in page) yield return row;
            if (page.Count < PageRows) yield break;
            next = page[^1].FirstRevision + page[^1].Count;
        }
    }

    string Where(Row row) => $"{_spec.Schema}.batches row of '{row.Stream}' at position {row.FirstPosition}";

    public override IAsyncEnumerable<EventSlice> ReadAllSlicesAsync(GlobalPosition from, CancellationToken ct = default)
    {
        long f = from.Value > long.MaxValue ? long.MaxValue : (long)from.Value;
        return DecodePages(prev => QueryRowsAsync(
                $"SELECT {RowColumns} FROM {_s}.batches b JOIN {_s}.streams s ON s.id = b.stream_id WHERE b.last_position >= @f ORDER BY b.last_position LIMIT {PageRows}",
                ct, ("f", prev is { Count: > 0 } ? prev[^1].FirstPosition + prev[^1].Count : f)),
            row => { int off = f > row.FirstPosition ? (int)(f - row.FirstPosition) : 0; return (off, row.Count - off); }, ct);
    }

    public override Task<StreamInfo?> GetStreamInfoAsync(StreamName stream, CancellationToken ct = default) => Guard(async () =>
    {
        await using var conn = await _ds.OpenConnectionAsync(ct).ConfigureAwait(false);
        await using var cmd = new NpgsqlCommand(
            $"SELECT s.name, s.last_revision, s.metadata, (SELECT max(last_position) FROM {_s}.batches b WHERE b.stream_id = s.id) FROM {_s}.streams s WHERE s.name = @n AND s.last_revision >= 0", conn);
        cmd.Parameters.AddWithValue("n", stream.Value);
        await using var r = await cmd.ExecuteReaderAsync(ct).ConfigureAwait(false);
        return await r.ReadAsync(ct).ConfigureAwait(false) ? ToInfo(r) : null;
    });

    static StreamInfo ToInfo(NpgsqlDataReader r)
    {
        long last = r.GetInt64(1);
        return new StreamInfo(new StreamName(r.GetString(0)), (ulong)last + 1, (ulong)last, r.IsDBNull(3) ? 0 : (ulong)r.GetInt64(3), r.IsDBNull(2) ? null : r.GetString(2));
    }

    public override async IAsyncEnumerable<StreamInfo> ListStreamsAsync([EnumeratorCancellation] CancellationToken ct = default)
    {
        var list = await Guard(async () =>
        {
            await using var conn = await _ds.OpenConnectionAsync(ct).ConfigureAwait(false);
            await using var cmd = new NpgsqlCommand(
                $"SELECT s.name, s.last_revision, s.metadata, (SELECT max(last_position) FROM {_s}.batches b WHERE b.stream_id = s.id) FROM {_s}.streams s WHERE s.last_revision >= 0 ORDER BY s.name COLLATE \"C\"", conn);
            await using var r = await cmd.ExecuteReaderAsync(ct).ConfigureAwait(false);
            var l = new List<StreamInfo>();
            while (await r.ReadAsync(ct).ConfigureAwait(false)) l.Add(ToInfo(r));
            return l;
        }).ConfigureAwait(false);
        foreach (var i in list) yield return i;
    }

    public override Task<string?> GetStreamMetadataAsync(StreamName stream, CancellationToken ct = default) => Guard(async () =>
    {
        await using var conn = await _ds.OpenConnectionAsync(ct).ConfigureAwait(false);
        await using var cmd = new NpgsqlCommand($"SELECT metadata FROM {_s}.streams WHERE name = @n", conn);
        cmd.Parameters.AddWithValue("n", stream.Value);
        var v = await cmd.ExecuteScalarAsync(ct).ConfigureAwait(false);
        return v as string;
    });

    // ───────────────────────────── verify ─────────────────────────────

    public override Task<VerifyReport> VerifyAsync(CancellationToken ct = default) => Guard(async () =>
    {
        var report = new VerifyReport();
        string table = $"{_spec.Schema}.batches";
        await using var conn = await _ds.OpenConnectionAsync(ct).ConfigureAwait(false);
        var lastRev = new Dictionary<string, long>(StringComparer.Ordinal);
        await using (var cmd = new NpgsqlCommand($"SELECT name, last_revision FROM {_s}.streams", conn))
        await using (var r = await cmd.ExecuteReaderAsync(ct).ConfigureAwait(false))
            while (await r.ReadAsync(ct).ConfigureAwait(false)) lastRev[r.GetString(0)] = r.GetInt64(1);
        var seen = new Dictionary<string, long>(StringComparer.Ordinal);
        long prevLastPos = -1;
        long fromPos = 0;
        while (true)
        {
            var rows = await QueryRowsAsync($"SELECT {RowColumns} FROM {_s}.batches b JOIN {_s}.streams s ON s.id = b.stream_id WHERE b.first_position >= @f ORDER BY b.first_position LIMIT 64", ct, ("f", fromPos)).ConfigureAwait(false);
            if (rows.Count == 0) break;
            foreach (var row in rows)
            {
                ct.ThrowIfCancellationRequested();
                report.Batches++;
                report.Events += row.Count;
                report.Bytes += row.Data.Length;
                if (row.FirstPosition <= prevLastPos)
                    report.Problems.Add(new VerifyProblem(table, row.FirstPosition, "batch overlaps the previous one in global position"));
                prevLastPos = row.FirstPosition + row.Count - 1;
                long expectRev = seen.TryGetValue(row.Stream, out var s) ? s + 1 : 0;
                if (row.FirstRevision != expectRev)
                    report.Problems.Add(new VerifyProblem(table, row.FirstPosition, $"batch of '{row.Stream}' at revision {row.FirstRevision}, expected {expectRev}"));
                seen[row.Stream] = row.FirstRevision + row.Count - 1;
                try { BatchCodec.Check(row.Kind, row.Codec, row.RawLength, row.Count, row.Data, Where(row)); }
                catch (StoreCorruptException e) { report.Problems.Add(new VerifyProblem(table, row.FirstPosition, e.Message)); }
            }
            fromPos = rows[^1].FirstPosition + 1;
        }
        foreach (var (name, last) in lastRev)
        {
            long have = seen.TryGetValue(name, out var l) ? l : -1;
            if (have != last) report.Problems.Add(new VerifyProblem($"{_spec.Schema}.streams", -1, $"stream '{name}' says last revision {last}, its batches end at {have}"));
        }
        report.Streams = seen.Count;
        return report;
    });

    /// <summary>Drops this store's schema and everything in it (tests).</summary>
    public async Task DropSchemaAsync(CancellationToken ct = default)
    {
        await using var conn = await _ds.OpenConnectionAsync(ct).ConfigureAwait(false);
        await Exec(conn, null, $"DROP SCHEMA IF EXISTS {_s} CASCADE", ct).ConfigureAwait(false);
    }

    public override async ValueTask DisposeAsync()
    {
        if (_disposed) return;
        _disposed = true;
        await _ds.DisposeAsync().ConfigureAwait(false);
    }
}
