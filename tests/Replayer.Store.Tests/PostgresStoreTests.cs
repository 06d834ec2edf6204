using System.Buffers;
using Npgsql;
using NpgsqlTypes;
using Replayer.Core;
using Replayer.Store;
using Replayer.Store.Postgres;

namespace Replayer.Store.Tests;

/// <summary>PostgreSQL specifics: rows written by an older version (kind 3) and rows that do not decode. Needs
/// <c>REPLAYER_TEST_PG</c> like the conformance suite (fails without it).</summary>
public sealed class PostgresStoreTests : IAsyncLifetime
{
    readonly string _schema = "t_" + Guid.NewGuid().ToString("N")[..12];
    PostgresEventStore _store = null!;

    public async Task InitializeAsync() =>
        _store = await PostgresEventStore.OpenAsync(PostgresConformanceTests.WithSchema(PostgresConformanceTests.ServerSpec(), _schema));

    public async Task DisposeAsync()
    {
        if (_store == null) return;
        await _store.DropSchemaAsync();
        await _store.DisposeAsync();
    }

    /// <summary>Adds a batch row by hand after the stream's last one, as another writer version would have.</summary>
    async Task InsertRowAsync(string stream, BodyKind kind, byte[] body, int rawLength, int count)
    {
        var info = (await _store.GetStreamInfoAsync(stream))!;
        long rev = (long)info.EventCount, pos = (long)info.LastPosition.Value + 1;
        var ds = NpgsqlDataSource.Create(ConnString());
        await using (ds)
        await using (var conn = await ds.OpenConnectionAsync())
        await using (var cmd = new NpgsqlCommand($"""
            INSERT INTO "{_schema}".batches (stream_id, first_revision, last_revision, first_position, last_position, kind, codec, raw_length, count, data)
              SELECT id, @r, @r + @n - 1, @p, @p + @n - 1, @k, 1, @raw, @n, @d FROM "{_schema}".streams WHERE name = @s;
            UPDATE "{_schema}".streams SET last_revision = @r + @n - 1 WHERE name = @s;
            UPDATE "{_schema}".global SET next_position = @p + @n;
            """, conn))
        {
            cmd.Parameters.AddWithValue("r", rev);
            cmd.Parameters.AddWithValue("p", pos);
            cmd.Parameters.AddWithValue("n", count);
            cmd.Parameters.AddWithValue("k", (short)kind);
            cmd.Parameters.AddWithValue("raw", rawLength);
            cmd.Parameters.AddWithValue("d", NpgsqlDbType.Bytea, body);
            cmd.Parameters.AddWithValue("s", stream);
            await cmd.ExecuteNonQueryAsync();
        }
    }

    /// <summary>The server spec as an Npgsql connection string (the store's own parser does the translation).</summary>
    static string ConnString() => PostgresSpec.Parse(PostgresConformanceTests.ServerSpec()).ConnectionString;

    [Fact]
    public async Task Rows_written_as_kind_3_read_as_objects_and_blocks_beside_kind_4_rows()
    {
        var first = TestEvents.Make(120, seed: 41);
        var old = TestEvents.Make(300, seed: 42, sourceBase: 121);
        var last = TestEvents.Make(80, seed: 43, sourceBase: 421);
        await _store.AppendAsync("capture-pg", ExpectedRevision.NoStream, EventBatch.Of(first));
        var raw = new ArrayBufferWriter<byte>();
        CompactTraceEventEncoder.Encode(raw, old);
        await InsertRowAsync("capture-pg", BodyKind.TraceEventsCompact, new ZstdSharp.Compressor(1).Wrap(raw.WrittenSpan).ToArray(), raw.WrittenCount, old.Length);
        await _store.AppendAsync("capture-pg", ExpectedRevision.Exact(419), EventBatch.Of(last));

        var all = first.Concat(old).Concat(last).ToArray();
        var objects = await _store.ReadStreamAsync("capture-pg").ToListAsync();
        Assert.Equal(all.Length, objects.Count);
        for (int i = 0; i < all.Length; i++) TestEvents.AssertSame(all[i], objects[i].Trace!);
        foreach (ulong from in new ulong[] { 0, 119, 120, 200, 420, 499 })
        {
            long n = 0;
            await foreach (var s in _store.ReadStreamBlocksAsync("capture-pg", new StreamRevision(from)))
            {
                for (int i = 0; i < s.Count; i++)
                {
                    Assert.Equal(from + (ulong)(n + i), s.RevisionOf(i).Value);
                    TestEvents.AssertSame(all[(int)from + n + i], s.Block.ToTraceEvent(i));
                }
                n += s.Count;
            }
            Assert.Equal(all.Length - (long)from, n);
        }
        Assert.True((await _store.VerifyAsync()).Ok);
    }

    [Fact]
    public async Task A_kind_4_row_that_does_not_decode_is_named_by_reads_and_verify()
    {
        await _store.AppendAsync("bad", ExpectedRevision.NoStream, TestEvents.Batch(10));
        var enc = BatchCodec.Encode(TestEvents.Batch(500, seed: 2), BodyCodec.None);
        var cut = enc.Body.AsSpan(0, enc.Body.Length - 30).ToArray();
        await InsertRowAsync("bad", BodyKind.TraceEventsShaped, new ZstdSharp.Compressor(1).Wrap(cut).ToArray(), cut.Length, 500);
        string where = $"{_schema}.batches row of 'bad' at position 10";
        var ex = await Assert.ThrowsAsync<StoreCorruptException>(async () =>
        {
            await foreach (var _ in _store.ReadStreamBlocksAsync("bad", StreamRevision.Start)) { }
        });
        Assert.StartsWith(where + ": ", ex.Message);
        var ex2 = await Assert.ThrowsAsync<StoreCorruptException>(async () => await _store.ReadStreamAsync("bad").ToListAsync());
        Assert.StartsWith(where + ": ", ex2.Message);
        var v = await _store.VerifyAsync();
        Assert.Contains(v.Problems, p => p.What.StartsWith(where, StringComparison.Ordinal));
    }
}
