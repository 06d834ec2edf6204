using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;

namespace Replayer.Store.Embedded;

/// <summary>One index entry: where a committed batch (or the stream's metadata) lives.</summary>
public sealed class IndexEntry
{
    public required FrameType Type { get; init; }
    public required int Count { get; init; }
    public required ulong FirstRevision { get; init; }
    public required ulong FirstPosition { get; init; }
    public required int Segment { get; init; }
    public required long Offset { get; init; }
    public required int FrameLength { get; init; }
    public ulong EndRevision => FirstRevision + (ulong)Count;
    public ulong EndPosition => FirstPosition + (ulong)Count;
}

/// <summary>
/// Per-stream index file (<c>index/&lt;sha256(name)[..16]&gt;.idx</c>): header (magic <c>RPLIDX01</c>,
/// name length u32, name UTF-8, CRC-32C of all that), then 48-byte entries: type u8, 3 zero bytes,
/// count u32, first revision u64, first position u64, segment u32, frame length u32, offset u64,
/// 4 zero bytes, CRC-32C of bytes 0..43.
/// <para>Checkpoint file: magic <c>RPLCKP01</c>, segment u32, offset u64, next position u64, next
/// transaction id u64, CRC-32C. Index entries for frames before the checkpoint are complete and
/// durable; frames from the checkpoint on are rescanned from the segments on open.</para>
/// </summary>
public static class IndexFormat
{
    public static ReadOnlySpan<byte> IndexMagic => "RPLIDX01"u8;
    public static ReadOnlySpan<byte> CheckpointMagic => "RPLCKP01"u8;
    public const int EntrySize = 48;
    public const int CheckpointSize = 8 + 4 + 8 + 8 + 8 + 4;

    public static string FileName(string stream) =>
        Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(stream)).AsSpan(0, 8)) + ".idx";

    public static byte[] BuildHeader(string stream)
    {
        var name = Encoding.UTF8.GetBytes(stream);
        var h = new byte[8 + 4 + name.Length + 4];
        IndexMagic.CopyTo(h);
        BinaryPrimitives.WriteInt32LittleEndian(h.AsSpan(8), name.Length);
        name.CopyTo(h.AsSpan(12));
        BinaryPrimitives.WriteUInt32LittleEndian(h.AsSpan(12 + name.Length), Crc32C.Compute(h.AsSpan(0, 12 + name.Length)));
        return h;
    }

    /// <summary>Parses the header; returns its length, or -1 with <paramref name="error"/>.</summary>
    public static int ParseHeader(ReadOnlySpan<byte> data, out string stream, out string? error)
    {
        stream = "";
        error = null;
        if (data.Length < 16 || !data[..8].SequenceEqual(IndexMagic)) { error = "bad index magic"; return -1; }
        int n = BinaryPrimitives.ReadInt32LittleEndian(data[8..]);
        if (n <= 0 || n > SegmentFormat.MaxNameBytes || 12 + n + 4 > data.Length) { error = $"index name length {n} out of range"; return -1; }
        if (BinaryPrimitives.ReadUInt32LittleEndian(data[(12 + n)..]) != Crc32C.Compute(data[..(12 + n)])) { error = "index header checksum mismatch"; return -1; }
        try { stream = new UTF8Encoding(false, true).GetString(data.Slice(12, n)); }
        catch (DecoderFallbackException) { error = "index stream name is not UTF-8"; return -1; }
        return 12 + n + 4;
    }

    public static void WriteEntry(Span<byte> s, IndexEntry e)
    {
        s[..EntrySize].Clear();
        s[0] = (byte)e.Type;
        BinaryPrimitives.WriteInt32LittleEndian(s[4..], e.Count);
        BinaryPrimitives.WriteUInt64LittleEndian(s[8..], e.FirstRevision);
        BinaryPrimitives.WriteUInt64LittleEndian(s[16..], e.FirstPosition);
        BinaryPrimitives.WriteInt32LittleEndian(s[24..], e.Segment);
        BinaryPrimitives.WriteInt32LittleEndian(s[28..], e.FrameLength);
        BinaryPrimitives.WriteInt64LittleEndian(s[32..], e.Offset);
        BinaryPrimitives.WriteUInt32LittleEndian(s[44..], Crc32C.Compute(s[..44]));
    }

    public static IndexEntry? ReadEntry(ReadOnlySpan<byte> s, out string? error)
    {
        error = null;
        if (BinaryPrimitives.ReadUInt32LittleEndian(s[44..]) != Crc32C.Compute(s[..44])) { error = "index entry checksum mismatch"; return null; }
        var type = (FrameType)s[0];
        if (type is not (FrameType.Batch or FrameType.Metadata) || s[1] != 0 || s[2] != 0 || s[3] != 0 || BinaryPrimitives.ReadUInt32LittleEndian(s[40..]) != 0)
        { error = "malformed index entry"; return null; }
        var e = new IndexEntry
        {
            Type = type,
            Count = BinaryPrimitives.ReadInt32LittleEndian(s[4..]),
            FirstRevision = BinaryPrimitives.ReadUInt64LittleEndian(s[8..]),
            FirstPosition = BinaryPrimitives.ReadUInt64LittleEndian(s[16..]),
            Segment = BinaryPrimitives.ReadInt32LittleEndian(s[24..]),
            FrameLength = BinaryPrimitives.ReadInt32LittleEndian(s[28..]),
            Offset = BinaryPrimitives.ReadInt64LittleEndian(s[32..]),
        };
        if (e.Count < 0 || e.Segment < 0 || e.Offset < SegmentFormat.SegmentHeaderSize || e.FrameLength < SegmentFormat.FrameHeaderSize)
        { error = "index entry fields out of range"; return null; }
        return e;
    }

    public readonly record struct Checkpoint(int Segment, long Offset, ulong NextPosition, ulong NextTxId);

    public static byte[] BuildCheckpoint(Checkpoint c)
    {
        var b = new byte[CheckpointSize];
        CheckpointMagic.CopyTo(b);
        BinaryPrimitives.WriteInt32LittleEndian(b.AsSpan(8), c.Segment);
        BinaryPrimitives.WriteInt64LittleEndian(b.AsSpan(12), c.Offset);
        BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(20), c.NextPosition);
        BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(28), c.NextTxId);
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(36), Crc32C.Compute(b.AsSpan(0, 36)));
        return b;
    }

    public static Checkpoint? ParseCheckpoint(ReadOnlySpan<byte> b, out string? error)
    {
        error = null;
        if (b.Length != CheckpointSize || !b[..8].SequenceEqual(CheckpointMagic)) { error = "bad checkpoint magic or size"; return null; }
        if (BinaryPrimitives.ReadUInt32LittleEndian(b[36..]) != Crc32C.Compute(b[..36])) { error = "checkpoint checksum mismatch"; return null; }
        var c = new Checkpoint(BinaryPrimitives.ReadInt32LittleEndian(b[8..]), BinaryPrimitives.ReadInt64LittleEndian(b[12..]),
            BinaryPrimitives.ReadUInt64LittleEndian(b[20..]), BinaryPrimitives.ReadUInt64LittleEndian(b[28..]));
        if (c.Segment < 0 || c.Offset < 0) { error = "checkpoint fields out of range"; return null; }
        return c;
    }
}
