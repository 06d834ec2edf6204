using System.Buffers.Binary;
using Microsoft.Win32.SafeHandles;

namespace Replayer.Store.Embedded;

/// <summary>
/// Reads an embedded store end to end: every segment header, frame header, name and body checksum,
/// every body decoded, transaction structure, revision and position sequences, every index entry
/// against the frame it points at, and the checkpoint. Each problem names the file and byte offset.
/// Runs beside a writer (it only reads); an uncommitted tail is noted, not reported as damage.
/// </summary>
public sealed class EmbeddedVerifier(string dir)
{
    readonly string _segDir = Path.Combine(dir, "segments");
    readonly string _idxDir = Path.Combine(dir, "index");

    sealed record FrameInfo(FrameHeader Header, bool Committed);

    public VerifyReport Run(CancellationToken ct = default)
    {
        var report = new VerifyReport();
        var frames = new Dictionary<(int, long), FrameInfo>();
        var committedBatches = new List<(int Seg, long Off, FrameHeader H)>();
        var segEnds = new Dictionary<int, long>();
        var segs = new List<int>();
        if (!Directory.Exists(_segDir))
        {
            report.Problems.Add(new VerifyProblem(_segDir, -1, "no segments directory"));
            return report;
        }
        foreach (var f in Directory.EnumerateFiles(_segDir))
        {
            if (SegmentFormat.TryParseSegmentFileName(Path.GetFileName(f), out int n)) segs.Add(n);
            else report.Problems.Add(new VerifyProblem(f, -1, "unexpected file in segments directory"));
        }
        segs.Sort();
        for (int i = 0; i < segs.Count; i++)
            if (segs[i] != i) { report.Problems.Add(new VerifyProblem(Path.Combine(_segDir, SegmentFormat.SegmentFileName(i)), -1, "segment file missing")); break; }

        // Transaction and sequence state.
        var pending = new List<(int Seg, long Off, FrameHeader H)>();
        ulong nextPosition = 0;
        var revisions = new Dictionary<string, ulong>(StringComparer.Ordinal);
        var buf = new byte[SegmentFormat.FrameHeaderSize + SegmentFormat.MaxNameBytes];

        foreach (var seg in segs)
        {
            ct.ThrowIfCancellationRequested();
            var path = Path.Combine(_segDir, SegmentFormat.SegmentFileName(seg));
            using var h = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            long len = RandomAccess.GetLength(h);
            report.Bytes += len;
            segEnds[seg] = len;
            int hn = RandomAccess.Read(h, buf.AsSpan(0, SegmentFormat.SegmentHeaderSize), 0);
            var herr = SegmentFormat.CheckSegmentHeader(buf.AsSpan(0, hn), seg);
            if (herr != null) report.Problems.Add(new VerifyProblem(path, 0, herr));
            long off = SegmentFormat.SegmentHeaderSize;
            while (off < len)
            {
                var err = SegmentReads.ReadHeader(h, len, off, buf, out var fh);
                if (err == null && fh.BodyLength > 0)
                {
                    var body = new byte[fh.BodyLength];
                    SegmentReads.ReadExactly(h, body, off + SegmentFormat.FrameHeaderSize + fh.NameLength);
                    if (Crc32C.Compute(body) != fh.BodyCrc) err = "body checksum mismatch";
                    else if (fh.Type == FrameType.Batch)
                    {
                        try { BatchCodec.Check(fh.Kind, fh.Codec, fh.RawLength, fh.Count, body, "body"); }
                        catch (StoreCorruptException e) { err = e.Message; }
                    }
                    else if (fh.Type == FrameType.Metadata)
                    {
                        try { using var _ = System.Text.Json.JsonDocument.Parse(body); }
                        catch (System.Text.Json.JsonException e) { err = "metadata is not JSON: " + e.Message; }
                    }
                }
                if (err != null)
                {
                    bool last = seg == segs[^1];
                    var next = FindNextFrame(h, len, off + 1, buf);
                    // A damaged frame with nothing valid after it at the very end is an interrupted write.
                    if (next < 0 && last && IsTornTail(err))
                        report.Notes.Add($"{path} at byte {off}: uncommitted tail ({len - off} bytes): {err}");
                    else
                        report.Problems.Add(new VerifyProblem(path, off, err));
                    pending.Clear();
                    if (next < 0) break;
                    off = next;
                    continue;
                }

                // Transaction structure and sequences.
                if (pending.Count > 0 && fh.TxId != pending[0].H.TxId)
                {
                    report.Problems.Add(new VerifyProblem(path, off, $"frame of transaction {fh.TxId} inside uncommitted transaction {pending[0].H.TxId}"));
                    pending.Clear();
                }
                if (fh.Type == FrameType.Commit)
                {
                    ulong total = 0;
                    foreach (var p in pending) total += (ulong)p.H.Count;
                    if (pending.Count > 0 && total != (ulong)fh.Count)
                        report.Problems.Add(new VerifyProblem(path, off, $"commit counts {fh.Count} events, its transaction has {total}"));
                    foreach (var p in pending)
                    {
                        var ph = p.H;
                        frames[(p.Seg, p.Off)] = new FrameInfo(ph, true);
                        if (ph.Type == FrameType.Delete) { revisions.Remove(ph.Stream); continue; }
                        if (ph.Type != FrameType.Batch) continue;
                        var ppath = Path.Combine(_segDir, SegmentFormat.SegmentFileName(p.Seg));
                        if (ph.FirstPosition != nextPosition)
                            report.Problems.Add(new VerifyProblem(ppath, p.Off, $"batch at global position {ph.FirstPosition}, expected {nextPosition}"));
                        revisions.TryGetValue(ph.Stream, out var rev);
                        if (ph.FirstRevision != rev)
                            report.Problems.Add(new VerifyProblem(ppath, p.Off, $"batch at revision {ph.FirstRevision} of '{ph.Stream}', expected {rev}"));
                        nextPosition = ph.FirstPosition + (ulong)ph.Count;
                        revisions[ph.Stream] = ph.FirstRevision + (ulong)ph.Count;
                        report.Batches++;
                        report.Events += ph.Count;
                        committedBatches.Add(p);
                    }
                    frames[(seg, off)] = new FrameInfo(fh, true);
                    pending.Clear();
                }
                else
                {
                    pending.Add((seg, off, fh));
                    frames[(seg, off)] = new FrameInfo(fh, false);
                }
                off += fh.FrameLength;
            }
        }
        if (pending.Count > 0)
            report.Notes.Add($"{Path.Combine(_segDir, SegmentFormat.SegmentFileName(pending[0].Seg))} at byte {pending[0].Off}: uncommitted transaction {pending[0].H.TxId} ({pending.Count} frame(s)) — a writer is running or was interrupted");
        report.Streams = revisions.Count(kv => kv.Value > 0);

        VerifyIndexes(report, frames);
        VerifyCheckpoint(report, frames, segEnds);
        return report;
    }

    static bool IsTornTail(string err) =>
        err.StartsWith("incomplete frame header", StringComparison.Ordinal) || err.StartsWith("frame of ", StringComparison.Ordinal);

    void VerifyIndexes(VerifyReport report, Dictionary<(int, long), FrameInfo> frames)
    {
        if (!Directory.Exists(_idxDir)) return;
        foreach (var file in Directory.EnumerateFiles(_idxDir))
        {
            if (!file.EndsWith(".idx", StringComparison.Ordinal)) { report.Problems.Add(new VerifyProblem(file, -1, "unexpected file in index directory")); continue; }
            var data = File.ReadAllBytes(file);
            int pos = IndexFormat.ParseHeader(data, out var stream, out var err);
            if (pos < 0) { report.Problems.Add(new VerifyProblem(file, 0, err!)); continue; }
            if (IndexFormat.FileName(stream) != Path.GetFileName(file)) { report.Problems.Add(new VerifyProblem(file, 0, $"index of '{stream}' has the wrong file name")); continue; }
            ulong rev = 0;
            for (; pos + IndexFormat.EntrySize <= data.Length; pos += IndexFormat.EntrySize)
            {
                var e = IndexFormat.ReadEntry(data.AsSpan(pos, IndexFormat.EntrySize), out err);
                if (e == null) { report.Problems.Add(new VerifyProblem(file, pos, err!)); continue; }
                if (!frames.TryGetValue((e.Segment, e.Offset), out var fi))
                {
                    report.Problems.Add(new VerifyProblem(file, pos, $"entry points at segment {e.Segment} byte {e.Offset}, which is not the start of a valid frame"));
                    continue;
                }
                var h = fi.Header;
                if (!fi.Committed || h.Stream != stream || h.Type != e.Type || h.FrameLength != e.FrameLength || h.FirstRevision != e.FirstRevision
                    || h.FirstPosition != e.FirstPosition || (e.Type == FrameType.Batch && h.Count != e.Count))
                    report.Problems.Add(new VerifyProblem(file, pos, $"entry does not match the frame at segment {e.Segment} byte {e.Offset}"));
                if (e.Type == FrameType.Batch)
                {
                    if (e.FirstRevision != rev) report.Problems.Add(new VerifyProblem(file, pos, $"entry at revision {e.FirstRevision}, expected {rev}"));
                    rev = e.EndRevision;
                }
            }
            if (pos != data.Length) report.Problems.Add(new VerifyProblem(file, pos, $"{data.Length - pos} trailing byte(s) (a partial entry)"));
        }
    }

    void VerifyCheckpoint(VerifyReport report, Dictionary<(int, long), FrameInfo> frames, Dictionary<int, long> segEnds)
    {
        var path = Path.Combine(dir, "checkpoint");
        if (!File.Exists(path)) return;
        var cp = IndexFormat.ParseCheckpoint(File.ReadAllBytes(path), out var err);
        if (cp is not { } c) { report.Problems.Add(new VerifyProblem(path, 0, err!)); return; }
        bool atFrame = frames.ContainsKey((c.Segment, c.Offset)) || (segEnds.TryGetValue(c.Segment, out var end) && end == c.Offset)
            || c.Offset == SegmentFormat.SegmentHeaderSize || (c.Segment == 0 && c.Offset == 0);
        if (!atFrame) report.Problems.Add(new VerifyProblem(path, 0, $"checkpoint points at segment {c.Segment} byte {c.Offset}, not a frame boundary"));
    }


    static long FindNextFrame(SafeFileHandle h, long len, long from, byte[] buf)
    {
        var chunk = new byte[1 << 20];
        long p = from;
        while (p + SegmentFormat.FrameHeaderSize <= len)
        {
            int n = RandomAccess.Read(h, chunk, p);
            if (n < 4) break;
            for (int i = 0; i + 4 <= n; i++)
                if (BinaryPrimitives.ReadUInt32LittleEndian(chunk.AsSpan(i)) == SegmentFormat.FrameMagic && SegmentReads.ReadHeader(h, len, p + i, buf, out _) == null)
                    return p + i;
            p += n - 3;
        }
        return -1;
    }

}
