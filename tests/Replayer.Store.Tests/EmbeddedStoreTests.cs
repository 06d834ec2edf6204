using System.Buffers;
using System.Buffers.Binary;
using Replayer.Core;
using Replayer.Store;
using Replayer.Store.Embedded;
using Replayer.TestKit;

namespace Replayer.Store.Tests;

/// <summary>Embedded-store specifics: the writer lock, readers beside a writer, torn-tail recovery,
/// damage detection by Verify, hostile lengths, index rebuild.</summary>
public sealed class EmbeddedStoreTests : IDisposable
{
    readonly string _dir = Repo.TempDir("emb");
    readonly List<string> _cleanup = [];

    public void Dispose()
    {
        foreach (var d in _cleanup.Append(_dir)) if (Directory.Exists(d)) Directory.Delete(d, true);
    }

    static EmbeddedStoreOptions Small => new() { MaxSegmentBytes = 64 << 10, CheckpointEveryBytes = 1 << 30 };

    string Copy(string from)
    {
        var to = Repo.TempDir("emb-copy");
        _cleanup.Add(to);
        foreach (var f in Directory.EnumerateFiles(from, "*", SearchOption.AllDirectories))
        {
            var rel = Path.GetRelativePath(from, f);
            if (rel is "LOCK" or "LOCK.pid") continue;
            Directory.CreateDirectory(Path.GetDirectoryName(Path.Combine(to, rel))!);
            File.Copy(f, Path.Combine(to, rel));
        }
        return to;
    }

    [Fact]
    public async Task A_second_writer_gets_a_clear_locked_error_and_readers_work_beside_the_writer()
    {
        await using var w = EmbeddedEventStore.Open(_dir);
        await w.AppendAsync("a", ExpectedRevision.NoStream, TestEvents.Batch(10));
        var ex = Assert.Throws<StoreLockedException>(() => EmbeddedEventStore.Open(_dir));
        Assert.Contains($"store {Path.GetFullPath(_dir)} is locked by pid {Environment.ProcessId}", ex.Message);

        await using var r = EmbeddedEventStore.Open(_dir, new EmbeddedStoreOptions { ReadOnly = true });
        Assert.Equal(10UL, (await r.GetStreamInfoAsync("a"))!.EventCount);
        await Assert.ThrowsAsync<InvalidOperationException>(() => r.AppendAsync("a", ExpectedRevision.Any, TestEvents.Batch(1)));
        await w.AppendAsync("a", ExpectedRevision.Exact(9), TestEvents.Batch(5));
        Assert.Equal(10UL, (await r.GetStreamInfoAsync("a"))!.EventCount);
        r.Refresh();
        Assert.Equal(15UL, (await r.GetStreamInfoAsync("a"))!.EventCount);

        await w.DisposeAsync();
        await using var w2 = EmbeddedEventStore.Open(_dir);
        Assert.Equal(15UL, (await w2.GetStreamInfoAsync("a"))!.EventCount);
    }

    [Fact]
    public async Task Read_only_subscription_follows_another_writer()
    {
        await using var w = EmbeddedEventStore.Open(_dir);
        await w.AppendAsync("a", ExpectedRevision.NoStream, TestEvents.Batch(10));
        await using var r = EmbeddedEventStore.Open(_dir, new EmbeddedStoreOptions { ReadOnly = true });
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var got = new List<ulong>();
        var sub = Task.Run(async () =>
        {
            await foreach (var e in r.SubscribeToAllAsync(null, cts.Token))
            {
                got.Add(e.Position.Value);
                if (got.Count == 30) break;
            }
        });
        await w.AppendAsync("b", ExpectedRevision.NoStream, TestEvents.Batch(20));
        await sub.WaitAsync(cts.Token);
        Assert.Equal(Enumerable.Range(0, 30).Select(i => (ulong)i), got);
    }

    /// <summary>A crash leaves a staged (uncommitted) transaction, possibly torn anywhere: the copy of the
    /// directory taken mid-transaction is the crashed state. Opening it keeps every committed event,
    /// removes the rest, reports it, and the store is fully usable.</summary>
    [Fact]
    public async Task Open_recovers_from_an_uncommitted_or_torn_tail_at_any_byte()
    {
        var committed = TestEvents.Make(3000, seed: 11);
        await using var w = EmbeddedEventStore.Open(_dir, Small);
        for (int k = 0; k < 3; k++)
            await w.AppendAsync("keep", k == 0 ? ExpectedRevision.NoStream : ExpectedRevision.Exact((ulong)k * 1000 - 1), EventBatch.Of(committed[(k * 1000)..((k + 1) * 1000)]));
        var segsBefore = Directory.GetFiles(Path.Combine(_dir, "segments")).ToDictionary(f => Path.GetFileName(f), f => new FileInfo(f).Length);
        await using var tx = await w.BeginAppendAsync("capture-torn", ExpectedRevision.NoStream);
        for (int k = 0; k < 6; k++) await tx.AppendAsync(TestEvents.Batch(2000, seed: 20 + k));
        tx.SetMetadata("{\"x\":1}");
        // Flush staged frames (the transaction writes them as it goes).
        var crashed = Copy(_dir);
        var lastSeg = Directory.GetFiles(Path.Combine(crashed, "segments")).Order(StringComparer.Ordinal).Last();

        var rng = new Random(5);
        var cuts = new List<long> { new FileInfo(lastSeg).Length };
        for (int i = 0; i < 12; i++) cuts.Add(rng.NextInt64(new FileInfo(lastSeg).Length));
        foreach (var cut in cuts)
        {
            var d = Copy(crashed);
            var seg = Path.Combine(d, "segments", Path.GetFileName(lastSeg));
            using (var fs = new FileStream(seg, FileMode.Open)) if (cut < fs.Length) fs.SetLength(cut);
            bool cutIntoCommitted = segsBefore.TryGetValue(Path.GetFileName(lastSeg), out var committedLen) && cut < committedLen;
            await using var s = EmbeddedEventStore.Open(d, Small);
            Assert.Null(await s.GetStreamInfoAsync("capture-torn"));
            Assert.Null(await s.GetStreamMetadataAsync("capture-torn"));
            if (!cutIntoCommitted)
            {
                Assert.Contains(s.RecoveryLog, l => l.Contains("recovered from an interrupted write"));
                var ev = await s.ReadStreamAsync("keep").ToListAsync();
                Assert.Equal(3000, ev.Count);
                TestEvents.AssertSame(committed[2999], ev[^1].Trace!);
            }
            // Usable afterwards: the same capture ingests fully.
            var info = await s.GetStreamInfoAsync("keep");
            await s.AppendAsync("capture-torn", ExpectedRevision.NoStream, TestEvents.Batch(100, seed: 99));
            Assert.Equal(100UL, (await s.GetStreamInfoAsync("capture-torn"))!.EventCount);
            var v = await s.VerifyAsync();
            Assert.True(v.Ok, $"cut at {cut}: " + string.Join("\n", v.Problems));
            Assert.Empty(v.Notes);
            if (info != null) Assert.Equal(info.LastPosition.Value + 100, (await s.GetStreamInfoAsync("capture-torn"))!.LastPosition.Value);
        }
        await tx.DisposeAsync();
    }

    [Fact]
    public async Task Abandoned_transaction_spanning_segments_is_rolled_back_on_disk()
    {
        await using var w = EmbeddedEventStore.Open(_dir, Small);
        await w.AppendAsync("keep", ExpectedRevision.NoStream, TestEvents.Batch(500));
        var files = Directory.GetFiles(Path.Combine(_dir, "segments")).Order(StringComparer.Ordinal).ToArray();
        var lengths = files.Select(f => new FileInfo(f).Length).ToArray();
        await using (var tx = await w.BeginAppendAsync("x", ExpectedRevision.NoStream))
            for (int k = 0; k < 20; k++) await tx.AppendAsync(TestEvents.Batch(2000, seed: k));
        Assert.Equal(files, Directory.GetFiles(Path.Combine(_dir, "segments")).Order(StringComparer.Ordinal).ToArray());
        Assert.Equal(lengths, files.Select(f => new FileInfo(f).Length).ToArray());
        Assert.True((await w.VerifyAsync()).Ok);
    }

    /// <summary>Builds a store with every frame type, several segments, then flips one byte at sampled
    /// positions (fixed seed) of every structural region of every segment: Verify must name the file and
    /// the offset of the damaged frame (or 0 for the segment header).</summary>
    [Fact]
    public async Task Verify_detects_one_flipped_byte_anywhere_in_a_segment_file_with_file_and_offset()
    {
        await using (var w = EmbeddedEventStore.Open(_dir, new EmbeddedStoreOptions { MaxSegmentBytes = 8 << 10 }))
        {
            await w.AppendAsync("s1", ExpectedRevision.NoStream, TestEvents.Batch(400, seed: 1));
            await w.AppendAsync("audit", ExpectedRevision.NoStream, EventBatch.Of([new EventRecord("R", new byte[] { 1, 2, 3 })]));
            await using (var tx = await w.BeginAppendAsync("capture-1", ExpectedRevision.NoStream))
            {
                await tx.AppendAsync(TestEvents.Batch(700, seed: 2));
                await tx.AppendAsync(TestEvents.Batch(700, seed: 3));
                tx.SetMetadata("{\"file\":\"trace.txt\"}");
                await tx.CommitAsync();
            }
            await w.AppendAsync("gone", ExpectedRevision.NoStream, TestEvents.Batch(50, seed: 4));
            await w.DeleteStreamAsync("gone", ExpectedRevision.Any);
            await w.AppendAsync("s1", ExpectedRevision.Exact(399), TestEvents.Batch(300, seed: 5));
            Assert.True((await w.VerifyAsync()).Ok);
        }
        // Map every byte to its region from a clean walk of the frames.
        var regions = new List<(string File, long Start, long End, long FrameStart, string Region)>();
        foreach (var seg in Directory.GetFiles(Path.Combine(_dir, "segments")).Order(StringComparer.Ordinal))
        {
            var data = File.ReadAllBytes(seg);
            regions.Add((seg, 0, SegmentFormat.SegmentHeaderSize, 0, "segment header"));
            long off = SegmentFormat.SegmentHeaderSize;
            while (off < data.Length)
            {
                Assert.Null(FrameHeader.ParseFixed(data.AsSpan((int)off), out var h));
                var type = (FrameType)data[off + 4];
                regions.Add((seg, off, off + SegmentFormat.FrameHeaderSize, off, type + " header"));
                regions.Add((seg, off + SegmentFormat.FrameHeaderSize, off + SegmentFormat.FrameHeaderSize + h.NameLength, off, type + " name"));
                if (h.BodyLength > 0) regions.Add((seg, off + SegmentFormat.FrameHeaderSize + h.NameLength, off + h.FrameLength, off, type + " body"));
                off += h.FrameLength;
            }
        }
        Assert.Contains(regions, r => r.Region == "Commit header");
        Assert.Contains(regions, r => r.Region == "Metadata body");
        Assert.Contains(regions, r => r.Region == "Delete name");
        Assert.True(regions.Select(r => r.File).Distinct().Count() >= 3);

        var rng = new Random(1234);
        var samples = new List<(string File, long Pos, long FrameStart, string Region)>();
        foreach (var r in regions)
        {
            // Every region of every frame: a random byte in it, and its last byte.
            samples.Add((r.File, r.Start + rng.NextInt64(r.End - r.Start), r.FrameStart, r.Region));
            if (r.End - r.Start > 8) samples.Add((r.File, r.End - 1, r.FrameStart, r.Region));
        }
        Assert.True(samples.Count >= 40);
        foreach (var (file, pos, frameStart, region) in samples)
        {
            var d = Copy(_dir);
            var f = Path.Combine(d, "segments", Path.GetFileName(file));
            var bytes = File.ReadAllBytes(f);
            bytes[pos] ^= (byte)(1 << rng.Next(8));
            File.WriteAllBytes(f, bytes);
            var report = new EmbeddedVerifier(d).Run();
            Assert.False(report.Ok, $"flip at {Path.GetFileName(file)}:{pos} ({region}) not detected");
            Assert.Contains(report.Problems, p => p.File == f && p.Offset == frameStart);
            Directory.Delete(d, true);
            _cleanup.Remove(d);
        }
    }

    [Fact]
    public async Task A_hostile_length_with_a_valid_checksum_is_checked_against_the_file_size()
    {
        await using (var w = EmbeddedEventStore.Open(_dir))
        {
            await w.AppendAsync("a", ExpectedRevision.NoStream, TestEvents.Batch(100));
            await w.AppendAsync("a", ExpectedRevision.Exact(99), TestEvents.Batch(100));
        }
        var seg = Path.Combine(_dir, "segments", SegmentFormat.SegmentFileName(0));
        var data = File.ReadAllBytes(seg);
        long off = SegmentFormat.SegmentHeaderSize;
        Assert.Null(FrameHeader.ParseFixed(data.AsSpan((int)off), out var h));
        // Body length of the first frame: 1.5 GB claimed, header CRC recomputed so only the size check can catch it.
        BinaryPrimitives.WriteInt32LittleEndian(data.AsSpan((int)off + 16), 400_000_000);
        var crc = Crc32C.Append(Crc32C.Append(~0u, data.AsSpan((int)off, 60)), data.AsSpan((int)off + 64, h.NameLength)) ^ ~0u;
        BinaryPrimitives.WriteUInt32LittleEndian(data.AsSpan((int)off + 60), crc);
        File.WriteAllBytes(seg, data);

        var report = new EmbeddedVerifier(_dir).Run();
        Assert.Contains(report.Problems, p => p.File == seg && p.Offset == off && p.What.Contains("runs past the end"));
        await using var r = EmbeddedEventStore.Open(_dir, new EmbeddedStoreOptions { ReadOnly = true });
        var ex = await Assert.ThrowsAsync<StoreCorruptException>(async () => await r.ReadStreamAsync("a").ToListAsync());
        Assert.Contains(seg, ex.Message);
        Assert.Contains($"byte {off}", ex.Message);
    }

    [Fact]
    public async Task Damage_before_valid_frames_is_not_mistaken_for_a_torn_tail()
    {
        await using (var w = EmbeddedEventStore.Open(_dir, new EmbeddedStoreOptions { CheckpointEveryBytes = 1 << 30 }))
        {
            await w.AppendAsync("a", ExpectedRevision.NoStream, TestEvents.Batch(100));
        }
        // Remove the checkpoint so that open rescans everything, then damage the first frame's header.
        File.Delete(Path.Combine(_dir, "checkpoint"));
        await using (var w = EmbeddedEventStore.Open(_dir)) await w.AppendAsync("a", ExpectedRevision.Exact(99), TestEvents.Batch(100));
        File.Delete(Path.Combine(_dir, "checkpoint"));
        var seg = Path.Combine(_dir, "segments", SegmentFormat.SegmentFileName(0));
        var data = File.ReadAllBytes(seg);
        data[SegmentFormat.SegmentHeaderSize + 13] ^= 0x40;
        File.WriteAllBytes(seg, data);
        var ex = Assert.Throws<StoreCorruptException>(() => EmbeddedEventStore.Open(_dir));
        Assert.Contains(seg, ex.Message);
        Assert.Contains($"byte {SegmentFormat.SegmentHeaderSize}", ex.Message);
        Assert.Equal(data.Length, new FileInfo(seg).Length); // nothing truncated
    }

    [Fact]
    public async Task Damaged_index_is_reported_by_verify_and_rebuilt_on_open()
    {
        await using (var w = EmbeddedEventStore.Open(_dir))
        {
            for (int k = 0; k < 5; k++) await w.AppendAsync("a", k == 0 ? ExpectedRevision.NoStream : ExpectedRevision.StreamExists, TestEvents.Batch(100, seed: k));
        }
        var idx = Directory.GetFiles(Path.Combine(_dir, "index")).Single();
        var data = File.ReadAllBytes(idx);
        int entryPos = data.Length - IndexFormat.EntrySize * 2 + 9;
        data[entryPos] ^= 1;
        File.WriteAllBytes(idx, data);
        var report = new EmbeddedVerifier(_dir).Run();
        Assert.Contains(report.Problems, p => p.File == idx && p.Offset == data.Length - IndexFormat.EntrySize * 2);

        await using var s = EmbeddedEventStore.Open(_dir);
        Assert.Contains(s.RecoveryLog, l => l.Contains("rebuilding"));
        var ev = await s.ReadStreamAsync("a").ToListAsync();
        Assert.Equal(500, ev.Count);
        TestEvents.AssertSame(TestEvents.Make(100, seed: 4)[99], ev[^1].Trace!);
        Assert.True((await s.VerifyAsync()).Ok);
    }

    [Fact]
    public async Task Body_damage_is_reported_on_read_with_file_and_offset()
    {
        await using (var w = EmbeddedEventStore.Open(_dir))
            await w.AppendAsync("a", ExpectedRevision.NoStream, TestEvents.Batch(1000));
        var seg = Path.Combine(_dir, "segments", SegmentFormat.SegmentFileName(0));
        var data = File.ReadAllBytes(seg);
        data[SegmentFormat.SegmentHeaderSize + 200] ^= 0xff;
        File.WriteAllBytes(seg, data);
        await using var s = EmbeddedEventStore.Open(_dir);
        var ex = await Assert.ThrowsAsync<StoreCorruptException>(async () => await s.ReadAllAsync(GlobalPosition.Start).ToListAsync());
        Assert.Equal($"{seg} at byte {SegmentFormat.SegmentHeaderSize}: body checksum mismatch", ex.Message);
    }

    /// <summary>A segment as an older version wrote it: one transaction of a kind 1 and a kind 3 batch (zstd).</summary>
    static void WriteOldFormatStore(string dir, string stream, TraceEvent[] kind1, TraceEvent[] kind3)
    {
        Directory.CreateDirectory(Path.Combine(dir, "segments"));
        using var fs = File.Create(Path.Combine(dir, "segments", SegmentFormat.SegmentFileName(0)));
        fs.Write(SegmentFormat.BuildSegmentHeader(0));
        ulong rev = 0;
        foreach (var (kind, events) in new[] { (BodyKind.TraceEvents, kind1), (BodyKind.TraceEventsCompact, kind3) })
        {
            var raw = new ArrayBufferWriter<byte>();
            if (kind == BodyKind.TraceEvents) TraceEventEncoder.Encode(raw, events);
            else CompactTraceEventEncoder.Encode(raw, events);
            var body = new ZstdSharp.Compressor(1).Wrap(raw.WrittenSpan).ToArray();
            var h = new FrameHeader
            {
                Type = FrameType.Batch, Kind = kind, Codec = BodyCodec.Zstd, Count = events.Length, BodyLength = body.Length, RawLength = raw.WrittenCount,
                TxId = 1, FirstRevision = rev, FirstPosition = rev, BodyCrc = Crc32C.Compute(body), Stream = stream,
            };
            fs.Write(h.Build());
            fs.Write(body);
            rev += (ulong)events.Length;
        }
        fs.Write(new FrameHeader { Type = FrameType.Commit, Count = (int)rev, TxId = 1, FirstRevision = 0, FirstPosition = 0, Stream = stream }.Build());
    }

    [Fact]
    public async Task Stores_written_with_kinds_1_and_3_are_read_as_objects_and_blocks_beside_new_kind_4_batches()
    {
        var k1 = TestEvents.Make(300, seed: 31);
        var k3 = TestEvents.Make(500, seed: 32, sourceBase: 301);
        var k4 = TestEvents.Make(200, seed: 33, sourceBase: 801);
        WriteOldFormatStore(_dir, "capture-old", k1, k3);
        await using (var s = EmbeddedEventStore.Open(_dir))
        {
            Assert.Equal(800UL, (await s.GetStreamInfoAsync("capture-old"))!.EventCount);
            await s.AppendAsync("capture-old", ExpectedRevision.Exact(799), EventBatch.Of(k4));
        }
        var all = k1.Concat(k3).Concat(k4).ToArray();
        await using var r = EmbeddedEventStore.Open(_dir, new EmbeddedStoreOptions { ReadOnly = true });
        var objects = await r.ReadStreamAsync("capture-old").ToListAsync();
        Assert.Equal(1000, objects.Count);
        for (int i = 0; i < all.Length; i++) TestEvents.AssertSame(all[i], objects[i].Trace!);
        foreach (ulong from in new ulong[] { 0, 150, 300, 555, 800, 999 })
        {
            long n = 0;
            await foreach (var slice in r.ReadStreamBlocksAsync("capture-old", new StreamRevision(from)))
            {
                Assert.Equal(from + (ulong)n, slice.FirstRevision.Value);
                for (int i = 0; i < slice.Count; i++) TestEvents.AssertSame(all[(int)from + n + i], slice.Block.ToTraceEvent(i));
                n += slice.Count;
            }
            Assert.Equal(1000 - (long)from, n);
        }
        var v = await r.VerifyAsync();
        Assert.True(v.Ok, string.Join("\n", v.Problems));
        Assert.Equal(1000, v.Events);
    }

    [Fact]
    public async Task A_kind_4_body_that_does_not_decode_is_reported_with_file_and_offset_by_reads_and_verify()
    {
        await using (var w = EmbeddedEventStore.Open(_dir))
        {
            await w.AppendAsync("a", ExpectedRevision.NoStream, TestEvents.Batch(50, seed: 1));
            await w.AppendAsync("a", ExpectedRevision.Exact(49), TestEvents.Batch(1000, seed: 2));
        }
        var seg = Path.Combine(_dir, "segments", SegmentFormat.SegmentFileName(0));
        var data = File.ReadAllBytes(seg);
        long off = SegmentFormat.SegmentHeaderSize;
        FrameHeader h;
        int batches = 0;
        while (true) // to the second batch frame
        {
            Assert.Null(FrameHeader.ParseFixed(data.AsSpan((int)off), out h));
            if (h.Type == FrameType.Batch && ++batches == 2) break;
            off += h.FrameLength;
        }
        Assert.Equal(BodyKind.TraceEventsShaped, h.Kind);
        // Replace the body by a zstd frame of a truncated raw body (the checksums made to match): only decoding can tell.
        int bodyAt = (int)off + SegmentFormat.FrameHeaderSize + h.NameLength;
        var raw = new ZstdSharp.Decompressor().Unwrap(data.AsSpan(bodyAt, h.BodyLength)).ToArray();
        var bad = new ZstdSharp.Compressor(1).Wrap(raw.AsSpan(0, raw.Length - 40)).ToArray();
        var fh = h with { BodyLength = bad.Length, RawLength = raw.Length - 40, BodyCrc = Crc32C.Compute(bad), Stream = "a" };
        var rebuilt = data.AsSpan(0, (int)off).ToArray().Concat(fh.Build()).Concat(bad).Concat(data.AsSpan(bodyAt + h.BodyLength).ToArray()).ToArray();
        File.WriteAllBytes(seg, rebuilt);
        File.Delete(Path.Combine(_dir, "checkpoint"));
        foreach (var f in Directory.GetFiles(Path.Combine(_dir, "index"))) File.Delete(f);

        await using var s = EmbeddedEventStore.Open(_dir);
        var ex = await Assert.ThrowsAsync<StoreCorruptException>(async () =>
        {
            await foreach (var _ in s.ReadStreamBlocksAsync("a", StreamRevision.Start)) { }
        });
        Assert.StartsWith($"{seg} at byte {off}: ", ex.Message);
        Assert.Contains("truncated", ex.Message);
        var ex2 = await Assert.ThrowsAsync<StoreCorruptException>(async () => await s.ReadStreamAsync("a").ToListAsync());
        Assert.StartsWith($"{seg} at byte {off}: ", ex2.Message);
        // The first batch still reads.
        await foreach (var slice in s.ReadStreamBlocksAsync("a", StreamRevision.Start))
        {
            Assert.Equal(50, slice.Count);
            break;
        }
        var report = await s.VerifyAsync();
        Assert.Contains(report.Problems, p => p.File == seg && p.Offset == off && p.What.Contains("truncated"));
    }
}
