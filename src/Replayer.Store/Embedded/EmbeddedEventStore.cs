using System.Buffers.Binary;
using System.Globalization;
using System.Runtime.CompilerServices;
using System.Text;
using Microsoft.Win32.SafeHandles;
using Replayer.Core;

namespace Replayer.Store.Embedded;

public sealed class EmbeddedStoreOptions
{
    /// <summary>A segment file is closed and a new one started when a frame would take it past this size.</summary>
    public long MaxSegmentBytes { get; init; } = 256L << 20;
    /// <summary>Open without the writer lock: read what is committed, never repair. Several readers may
    /// run beside one writer process.</summary>
    public bool ReadOnly { get; init; }
    /// <summary>Index files are flushed and the checkpoint rewritten after this many appended bytes.</summary>
    public long CheckpointEveryBytes { get; init; } = 16L << 20;
    /// <summary>Batches decoded ahead of the reader (in parallel).</summary>
    public int ReadAhead { get; init; } = Math.Max(2, Environment.ProcessorCount);
}

/// <summary>
/// The default store: a directory with append-only, checksummed segment files (see
/// <see cref="SegmentFormat"/>), a per-stream index (see <see cref="IndexFormat"/>), a checkpoint, and an
/// exclusive writer lock (<c>LOCK</c>, holder's pid in <c>LOCK.pid</c>).
/// </summary>
public sealed class EmbeddedEventStore : EventStoreBase
{
    sealed class StreamState(string name)
    {
        public readonly string Name = name;
        public readonly List<IndexEntry> Batches = [];
        public IndexEntry? Metadata;
        public ulong EventCount => Batches.Count == 0 ? 0 : Batches[^1].EndRevision;
        public ulong? LastRevision => Batches.Count == 0 ? null : Batches[^1].EndRevision - 1;
    }

    readonly record struct Staged(FrameHeader Header, int Segment, long Offset);

    readonly string _dir, _segDir, _idxDir;
    readonly EmbeddedStoreOptions _opts;
    readonly object _state = new();
    readonly Dictionary<string, StreamState> _streams = new(StringComparer.Ordinal);
    readonly List<(IndexEntry Entry, StreamState Stream)> _all = [];
    readonly SemaphoreSlim _appendGate = new(1, 1);
    readonly Dictionary<int, SafeFileHandle> _readHandles = [];
    readonly HashSet<string> _dirtyIndexes = new(StringComparer.Ordinal);
    readonly List<string> _recovery = [];
    FileStream? _lock;
    ulong _nextPosition, _nextTx = 1;
    // Writer: current segment.
    int _segNo;
    SafeFileHandle? _segWrite;
    long _segLen;
    long _sinceCheckpoint;
    // Reader: where committed data scanned so far ends.
    int _scanSeg;
    long _scanOff;
    bool _disposed;

    public override string Description => _dir;
    public string Directory => _dir;
    public bool IsReadOnly => _opts.ReadOnly;
    /// <summary>What opening the store repaired or noticed (torn tail removed, index rebuilt, …).</summary>
    public IReadOnlyList<string> RecoveryLog => _recovery;

    EmbeddedEventStore(string dir, EmbeddedStoreOptions opts)
    {
        _dir = Path.GetFullPath(dir);
        _segDir = Path.Combine(_dir, "segments");
        _idxDir = Path.Combine(_dir, "index");
        _opts = opts;
    }

    public static EmbeddedEventStore Open(string dir, EmbeddedStoreOptions? options = null)
    {
        var s = new EmbeddedEventStore(dir, options ?? new EmbeddedStoreOptions());
        try { s.OpenCore(); }
        catch { s.CloseHandles(); throw; }
        return s;
    }

    string SegPath(int n) => Path.Combine(_segDir, SegmentFormat.SegmentFileName(n));
    string IdxPath(string stream) => Path.Combine(_idxDir, IndexFormat.FileName(stream));
    string CheckpointPath => Path.Combine(_dir, "checkpoint");

    // ───────────────────────────── open / recovery ─────────────────────────────

    void OpenCore()
    {
        if (_opts.ReadOnly)
        {
            if (!System.IO.Directory.Exists(_segDir))
                throw new DirectoryNotFoundException($"no event store at {_dir}");
        }
        else
        {
            System.IO.Directory.CreateDirectory(_segDir);
            System.IO.Directory.CreateDirectory(_idxDir);
            AcquireLock();
        }

        IndexFormat.Checkpoint? cp = null;
        if (File.Exists(CheckpointPath))
        {
            cp = IndexFormat.ParseCheckpoint(File.ReadAllBytes(CheckpointPath), out var err);
            if (cp == null) _recovery.Add($"{CheckpointPath}: {err}; rebuilding the index from the segments");
        }
        if (cp is { } c && !LoadIndexes(c))
        {
            cp = null;
            ResetState();
        }
        if (cp == null && !_opts.ReadOnly)
            foreach (var f in System.IO.Directory.EnumerateFiles(_idxDir, "*.idx")) File.Delete(f);

        int startSeg = cp?.Segment ?? 0;
        long startOff = cp?.Offset ?? 0;
        if (cp is { } c2) { _nextPosition = c2.NextPosition; _nextTx = Math.Max(1, c2.NextTxId); }
        bool applied = Scan(startSeg, startOff, repair: !_opts.ReadOnly);

        if (!_opts.ReadOnly)
        {
            var segs = ListSegments();
            if (segs.Count == 0) StartSegment(0);
            else
            {
                _segNo = segs[^1];
                _segWrite = File.OpenHandle(SegPath(_segNo), FileMode.Open, FileAccess.ReadWrite, FileShare.ReadWrite | FileShare.Delete);
                _segLen = RandomAccess.GetLength(_segWrite);
            }
            if (applied || cp == null || _recovery.Count > 0) WriteCheckpoint();
        }
    }

    void AcquireLock()
    {
        var path = Path.Combine(_dir, "LOCK");
        try
        {
            _lock = new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        }
        catch (IOException)
        {
            string pid = "unknown";
            try { pid = File.ReadAllText(Path.Combine(_dir, "LOCK.pid")).Trim(); } catch (IOException) { }
            throw new StoreLockedException($"store {_dir} is locked by pid {pid} (another replayer is writing to it)");
        }
        File.WriteAllText(Path.Combine(_dir, "LOCK.pid"), Environment.ProcessId.ToString(CultureInfo.InvariantCulture) + "\n");
    }

    void ResetState()
    {
        _streams.Clear();
        _all.Clear();
        _nextPosition = 0;
        _nextTx = 1;
    }

    List<int> ListSegments()
    {
        var list = new List<int>();
        if (!System.IO.Directory.Exists(_segDir)) return list;
        foreach (var f in System.IO.Directory.EnumerateFiles(_segDir))
            if (SegmentFormat.TryParseSegmentFileName(Path.GetFileName(f), out int n)) list.Add(n);
        list.Sort();
        for (int i = 0; i < list.Count; i++)
            if (list[i] != i) throw new StoreCorruptException($"{_segDir}: segment {SegmentFormat.SegmentFileName(i)} is missing (found {SegmentFormat.SegmentFileName(list[i])})");
        return list;
    }

    /// <summary>Loads every index file; entries at or past the checkpoint are dropped (they are rescanned).
    /// False (with a note in the recovery log) when anything is inconsistent: then everything is rebuilt.</summary>
    bool LoadIndexes(IndexFormat.Checkpoint cp)
    {
        if (!System.IO.Directory.Exists(_idxDir)) return cp.Segment == 0 && cp.Offset == 0;
        var segLengths = new Dictionary<int, long>();
        foreach (var n in ListSegments()) segLengths[n] = new FileInfo(SegPath(n)).Length;
        var all = new List<(IndexEntry, StreamState)>();
        foreach (var file in System.IO.Directory.EnumerateFiles(_idxDir, "*.idx"))
        {
            var data = File.ReadAllBytes(file);
            int pos = IndexFormat.ParseHeader(data, out var stream, out var err);
            if (pos < 0 || IndexFormat.FileName(stream) != Path.GetFileName(file))
            {
                _recovery.Add($"{file}: {err ?? "file name does not match the stream"}; rebuilding the index from the segments");
                return false;
            }
            var st = new StreamState(stream);
            long keep = pos;
            for (; pos + IndexFormat.EntrySize <= data.Length; pos += IndexFormat.EntrySize)
            {
                var e = IndexFormat.ReadEntry(data.AsSpan(pos, IndexFormat.EntrySize), out err);
                if (e == null)
                {
                    _recovery.Add($"{file} at byte {pos}: {err}; rebuilding the index from the segments");
                    return false;
                }
                if (e.Segment > cp.Segment || (e.Segment == cp.Segment && e.Offset >= cp.Offset)) break;
                if (!segLengths.TryGetValue(e.Segment, out var len) || e.Offset + e.FrameLength > len)
                {
                    _recovery.Add($"{file} at byte {pos}: entry points past the end of segment {e.Segment}; rebuilding the index");
                    return false;
                }
                if (e.Type == FrameType.Metadata) st.Metadata = e;
                else
                {
                    if (e.FirstRevision != st.EventCount || e.EndPosition > cp.NextPosition)
                    {
                        _recovery.Add($"{file} at byte {pos}: entry revision/position out of sequence; rebuilding the index");
                        return false;
                    }
                    st.Batches.Add(e);
                    all.Add((e, st));
                }
                keep = pos + IndexFormat.EntrySize;
            }
            if (keep != data.Length && !_opts.ReadOnly)
            {
                using var fs = new FileStream(file, FileMode.Open, FileAccess.Write, FileShare.ReadWrite);
                fs.SetLength(keep);
            }
            if (st.Batches.Count > 0 || st.Metadata != null) _streams[stream] = st;
        }
        all.Sort((a, b) => a.Item1.FirstPosition.CompareTo(b.Item1.FirstPosition));
        for (int i = 1; i < all.Count; i++)
            if (all[i].Item1.FirstPosition < all[i - 1].Item1.EndPosition)
            {
                _recovery.Add("index entries of two streams overlap in global position; rebuilding the index");
                return false;
            }
        _all.AddRange(all);
        return true;
    }

    /// <summary>
    /// Reads frame headers from (segment, offset) to the end, applying committed transactions.
    /// What follows the last commit is a torn or uncommitted tail: with <paramref name="repair"/> it is
    /// truncated (and reported); without, it is left alone and scanning resumes there next time.
    /// Damage followed by valid frames is not a torn tail: it throws <see cref="StoreCorruptException"/>.
    /// Returns whether any transaction was applied.
    /// </summary>
    bool Scan(int startSeg, long startOff, bool repair)
    {
        var segs = ListSegments();
        bool applied = false;
        (int Seg, long Off) lastCommit = (startSeg, startOff);
        var pending = new List<Staged>();
        ulong pendingTx = 0;
        string? damage = null;
        (int Seg, long Off) damageAt = default;
        var headerBuf = new byte[SegmentFormat.FrameHeaderSize + SegmentFormat.MaxNameBytes];

        foreach (var seg in segs)
        {
            if (seg < startSeg) continue;
            using var h = File.OpenHandle(SegPath(seg), FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            long len = RandomAccess.GetLength(h);
            long off = seg == startSeg ? startOff : 0;
            if (off == 0)
            {
                int n = RandomAccess.Read(h, headerBuf.AsSpan(0, SegmentFormat.SegmentHeaderSize), 0);
                var err = SegmentFormat.CheckSegmentHeader(headerBuf.AsSpan(0, n), seg);
                if (err != null) { damage = err; damageAt = (seg, 0); break; }
                off = SegmentFormat.SegmentHeaderSize;
                if (lastCommit.Seg < seg && pending.Count == 0) lastCommit = (seg, off);
            }
            else if (off > len)
                throw new StoreCorruptException($"{SegPath(seg)}: checkpoint points at byte {off} but the file has {len} bytes");
            while (off < len)
            {
                var err = SegmentReads.ReadHeader(h, len, off, headerBuf, out var fh);
                if (err != null) { damage = err; damageAt = (seg, off); break; }
                err = CheckSequence(fh, pending, pendingTx);
                if (err != null) { damage = err; damageAt = (seg, off); break; }
                if (fh.Type == FrameType.Commit)
                {
                    ApplyCommit(fh, pending, seg, off, writeIndex: repair);
                    applied = true;
                    pending.Clear();
                    pendingTx = 0;
                    lastCommit = (seg, off + fh.FrameLength);
                }
                else
                {
                    pendingTx = fh.TxId;
                    pending.Add(new Staged(fh, seg, off));
                }
                off += fh.FrameLength;
            }
            if (damage != null) break;
        }

        if (damage != null && FindValidFrameAfter(segs, damageAt.Seg, damageAt.Off) is { } later)
            throw new StoreCorruptException($"{SegPath(damageAt.Seg)} at byte {damageAt.Off}: {damage}; valid frames follow at {SegPath(later.Seg)} byte {later.Off}, so this is damage, not an interrupted write (run `replayer store verify`)");

        // Everything after lastCommit is a torn or uncommitted tail.
        bool hasTail = segs.Count > 0 && segs[^1] >= lastCommit.Seg
            && (segs[^1] > lastCommit.Seg || new FileInfo(SegPath(lastCommit.Seg)).Length > lastCommit.Off);
        if (hasTail && repair)
        {
            long removed = 0;
            for (int s = segs[^1]; s > lastCommit.Seg; s--)
            {
                removed += new FileInfo(SegPath(s)).Length;
                File.Delete(SegPath(s));
            }
            if (File.Exists(SegPath(lastCommit.Seg)))
            {
                using var fs = new FileStream(SegPath(lastCommit.Seg), FileMode.Open, FileAccess.Write, FileShare.ReadWrite);
                removed += fs.Length - lastCommit.Off;
                if (lastCommit.Off < SegmentFormat.SegmentHeaderSize) { fs.Close(); File.Delete(SegPath(lastCommit.Seg)); }
                else { fs.SetLength(lastCommit.Off); fs.Flush(true); }
            }
            string why = damage != null ? $"{damage} at {SegPath(damageAt.Seg)} byte {damageAt.Off}" : "uncommitted frames";
            string txs = pending.Count > 0 ? $" (transaction {pendingTx}: {pending.Count} frame(s), {pending.Sum(p => (long)p.Header.Count)} event(s) of stream '{pending[0].Header.Stream}')" : "";
            _recovery.Add($"recovered from an interrupted write: removed {removed} byte(s) after the last commit at {SegPath(lastCommit.Seg)} byte {lastCommit.Off}: {why}{txs}");
        }
        _scanSeg = lastCommit.Seg;
        _scanOff = lastCommit.Off;
        return applied;
    }



    /// <summary>Whether a frame continues the pending transaction consistently with the committed state.</summary>
    string? CheckSequence(in FrameHeader fh, List<Staged> pending, ulong pendingTx)
    {
        if (pending.Count > 0 && fh.TxId != pendingTx) return $"frame of transaction {fh.TxId} inside uncommitted transaction {pendingTx}";
        if (pending.Count > 0 && fh.Stream != pending[0].Header.Stream) return "transaction spans two streams";
        if (pending.Count == 0 && fh.TxId < _nextTx) return $"transaction id {fh.TxId} reused (next is {_nextTx})";
        ulong pendingEvents = 0;
        foreach (var p in pending) pendingEvents += (ulong)p.Header.Count;
        _streams.TryGetValue(fh.Stream, out var st);
        bool deletedInTx = pending.Any(p => p.Header.Type == FrameType.Delete);
        ulong baseRev = deletedInTx ? 0 : st?.EventCount ?? 0;
        switch (fh.Type)
        {
            case FrameType.Batch:
                if (fh.FirstPosition != _nextPosition + pendingEvents) return $"batch at global position {fh.FirstPosition}, expected {_nextPosition + pendingEvents}";
                if (fh.FirstRevision != baseRev + pendingEvents) return $"batch at revision {fh.FirstRevision} of '{fh.Stream}', expected {baseRev + pendingEvents}";
                break;
            case FrameType.Commit:
                if (pending.Count > 0 && (ulong)fh.Count != pendingEvents) return $"commit counts {fh.Count} events, its transaction has {pendingEvents}";
                if (pending.Count == 0 && fh.Count != 0) return "commit of an empty transaction counts events";
                break;
        }
        return null;
    }

    (int Seg, long Off)? FindValidFrameAfter(List<int> segs, int seg, long off)
    {
        var buf = new byte[SegmentFormat.FrameHeaderSize + SegmentFormat.MaxNameBytes];
        var chunk = new byte[1 << 20];
        foreach (var s in segs)
        {
            if (s < seg) continue;
            using var h = File.OpenHandle(SegPath(s), FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            long len = RandomAccess.GetLength(h);
            long p = s == seg ? off + 1 : 0;
            if (s > seg)
            {
                int n = RandomAccess.Read(h, buf.AsSpan(0, SegmentFormat.SegmentHeaderSize), 0);
                if (SegmentFormat.CheckSegmentHeader(buf.AsSpan(0, n), s) == null && len > SegmentFormat.SegmentHeaderSize) return (s, 0);
            }
            while (p + SegmentFormat.FrameHeaderSize <= len)
            {
                int n = RandomAccess.Read(h, chunk, p);
                if (n < 4) break;
                var span = chunk.AsSpan(0, n);
                for (int i = 0; i + 4 <= n; i++)
                {
                    if (BinaryPrimitives.ReadUInt32LittleEndian(span[i..]) != SegmentFormat.FrameMagic) continue;
                    if (SegmentReads.ReadHeader(h, len, p + i, buf, out _) == null) return (s, p + i);
                }
                p += n - 3;
            }
        }
        return null;
    }

    /// <summary>Makes a committed transaction visible (memory and, for the writer, index files).</summary>
    void ApplyCommit(in FrameHeader commit, List<Staged> frames, int commitSeg, long commitOff, bool writeIndex)
    {
        lock (_state)
        {
            var name = commit.Stream;
            _streams.TryGetValue(name, out var st);
            var newEntries = new List<IndexEntry>();
            foreach (var f in frames)
            {
                switch (f.Header.Type)
                {
                    case FrameType.Delete:
                        if (st != null)
                        {
                            var dead = st;
                            _all.RemoveAll(x => ReferenceEquals(x.Stream, dead));
                            _streams.Remove(name);
                        }
                        st = null;
                        newEntries.Clear();
                        if (writeIndex)
                        {
                            File.Delete(IdxPath(name));
                            _dirtyIndexes.Remove(IdxPath(name));
                        }
                        break;
                    case FrameType.Batch:
                    case FrameType.Metadata:
                        st ??= _streams[name] = new StreamState(name);
                        var e = new IndexEntry
                        {
                            Type = f.Header.Type, Count = f.Header.Type == FrameType.Batch ? f.Header.Count : 0,
                            FirstRevision = f.Header.FirstRevision, FirstPosition = f.Header.FirstPosition,
                            Segment = f.Segment, Offset = f.Offset, FrameLength = f.Header.FrameLength,
                        };
                        if (e.Type == FrameType.Batch)
                        {
                            st.Batches.Add(e);
                            _all.Add((e, st));
                            _nextPosition = e.EndPosition;
                        }
                        else st.Metadata = e;
                        newEntries.Add(e);
                        break;
                }
            }
            _nextTx = Math.Max(_nextTx, commit.TxId + 1);
            if (writeIndex && newEntries.Count > 0) AppendIndex(name, newEntries);
        }
    }

    void AppendIndex(string stream, List<IndexEntry> entries)
    {
        var path = IdxPath(stream);
        using var fs = new FileStream(path, FileMode.OpenOrCreate, FileAccess.Write, FileShare.ReadWrite);
        if (fs.Length == 0) fs.Write(IndexFormat.BuildHeader(stream));
        fs.Seek(0, SeekOrigin.End);
        var buf = new byte[IndexFormat.EntrySize * entries.Count];
        for (int i = 0; i < entries.Count; i++) IndexFormat.WriteEntry(buf.AsSpan(i * IndexFormat.EntrySize), entries[i]);
        fs.Write(buf);
        _dirtyIndexes.Add(path);
    }

    void WriteCheckpoint()
    {
        foreach (var path in _dirtyIndexes)
        {
            if (!File.Exists(path)) continue;
            using var fs = new FileStream(path, FileMode.Open, FileAccess.ReadWrite, FileShare.ReadWrite);
            fs.Flush(true);
        }
        _dirtyIndexes.Clear();
        var tmp = CheckpointPath + ".tmp";
        using (var fs = new FileStream(tmp, FileMode.Create, FileAccess.Write, FileShare.None))
        {
            fs.Write(IndexFormat.BuildCheckpoint(new IndexFormat.Checkpoint(_segNo, _segLen, _nextPosition, _nextTx)));
            fs.Flush(true);
        }
        File.Move(tmp, CheckpointPath, overwrite: true);
        _sinceCheckpoint = 0;
    }

    /// <summary>Read-only stores pick up what the writer process committed since.</summary>
    protected override ValueTask RefreshAsync(CancellationToken ct)
    {
        if (_opts.ReadOnly)
            lock (_state) Scan(_scanSeg, _scanOff, repair: false);
        return ValueTask.CompletedTask;
    }

    public void Refresh() => RefreshAsync(default).AsTask().GetAwaiter().GetResult();

    // ───────────────────────────── writing ─────────────────────────────

    void StartSegment(int n)
    {
        var path = SegPath(n);
        var h = File.OpenHandle(path, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.ReadWrite | FileShare.Delete);
        RandomAccess.Write(h, SegmentFormat.BuildSegmentHeader(n), 0);
        _segWrite = h;
        _segNo = n;
        _segLen = SegmentFormat.SegmentHeaderSize;
    }

    (int Seg, long Off) WriteFrame(byte[] headerAndName, ReadOnlyMemory<byte> body)
    {
        long len = headerAndName.Length + body.Length;
        if (_segLen + len > _opts.MaxSegmentBytes && _segLen > SegmentFormat.SegmentHeaderSize)
        {
            RandomAccess.FlushToDisk(_segWrite!);
            _segWrite!.Dispose();
            StartSegment(_segNo + 1);
        }
        var off = _segLen;
        if (body.IsEmpty) RandomAccess.Write(_segWrite!, headerAndName, off);
        else RandomAccess.Write(_segWrite!, new ReadOnlyMemory<byte>[] { headerAndName, body }, off);
        _segLen += len;
        _sinceCheckpoint += len;
        return (_segNo, off);
    }

    /// <summary>Undoes the frames of an aborted transaction.</summary>
    void Rollback(int seg, long off)
    {
        if (_segNo > seg)
        {
            _segWrite?.Dispose();
            lock (_readHandles)
                for (int s = _segNo; s > seg; s--)
                {
                    if (_readHandles.Remove(s, out var rh)) rh.Dispose();
                    File.Delete(SegPath(s));
                }
            _segNo = seg;
            _segWrite = File.OpenHandle(SegPath(seg), FileMode.Open, FileAccess.ReadWrite, FileShare.ReadWrite | FileShare.Delete);
        }
        RandomAccess.SetLength(_segWrite!, off);
        _segLen = off;
    }

    void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(_disposed, this);

    void ThrowIfReadOnly()
    {
        if (_opts.ReadOnly) throw new InvalidOperationException($"store {_dir} is open read-only");
    }

    public override async Task<AppendResult> AppendAsync(StreamName stream, ExpectedRevision expected, EventBatch batch, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(batch);
        if (batch.Count == 0) throw new ArgumentException("empty batch", nameof(batch));
        await using var tx = (Transaction)await BeginAppendAsync(stream, expected, ct).ConfigureAwait(false);
        await tx.AppendAsync(batch, ct).ConfigureAwait(false);
        return await tx.CommitAsync(ct).ConfigureAwait(false);
    }

    public override async Task<IAppendTransaction> BeginAppendAsync(StreamName stream, ExpectedRevision expected, CancellationToken ct = default)
    {
        ThrowIfDisposed();
        ThrowIfReadOnly();
        _ = stream.Value;
        await _appendGate.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            ulong? actual;
            lock (_state) actual = _streams.TryGetValue(stream.Value, out var st) ? st.LastRevision : null;
            if (!expected.IsSatisfiedBy(actual)) throw new WrongExpectedVersionException(stream, expected, actual);
            return new Transaction(this, stream, actual is { } a ? a + 1 : 0);
        }
        catch
        {
            _appendGate.Release();
            throw;
        }
    }

    sealed class Transaction : IAppendTransaction
    {
        readonly EmbeddedEventStore _s;
        readonly ulong _txId, _firstRevision, _firstPosition;
        readonly int _startSeg;
        readonly long _startOff;
        readonly List<Staged> _frames = [];
        readonly Queue<(Task<BatchCodec.Encoded> Task, int Count)> _encoding = new();
        readonly bool _delete;
        ulong _written;
        long _queued;
        string? _metadata;
        bool _done;

        public Transaction(EmbeddedEventStore s, StreamName stream, ulong firstRevision, bool delete = false)
        {
            _s = s;
            Stream = stream;
            _txId = s._nextTx;
            _firstRevision = firstRevision;
            _firstPosition = s._nextPosition;
            _startSeg = s._segNo;
            _startOff = s._segLen;
            _delete = delete;
        }

        public StreamName Stream { get; }
        public long Count => (long)_written + _queued;

        public async Task AppendAsync(EventBatch batch, CancellationToken ct = default)
        {
            ArgumentNullException.ThrowIfNull(batch);
            if (_done) throw new InvalidOperationException("transaction already ended");
            if (_delete) throw new InvalidOperationException("a delete transaction takes no events");
            if (batch.Count == 0) return;
            _encoding.Enqueue((Task.Run(() => BatchCodec.Encode(batch), ct), batch.Count));
            _queued += batch.Count;
            while (_encoding.Count > Math.Max(1, Environment.ProcessorCount))
                await WriteNextAsync().ConfigureAwait(false);
        }

        async Task WriteNextAsync()
        {
            var (task, count) = _encoding.Dequeue();
            _queued -= count;
            var enc = await task.ConfigureAwait(false);
            var h = new FrameHeader
            {
                Type = FrameType.Batch, Kind = enc.Kind, Codec = enc.Codec, Count = enc.Count,
                BodyLength = enc.Body.Length, RawLength = enc.RawLength, TxId = _txId,
                FirstRevision = _firstRevision + _written, FirstPosition = _firstPosition + _written,
                BodyCrc = Crc32C.Compute(enc.Body), Stream = Stream.Value,
            };
            var bytes = h.Build();
            h = h with { NameLength = bytes.Length - SegmentFormat.FrameHeaderSize };
            var (seg, off) = _s.WriteFrame(bytes, enc.Body);
            _frames.Add(new Staged(h, seg, off));
            _written += (ulong)enc.Count;
        }

        public void SetMetadata(string json)
        {
            ValidateJson(json);
            _metadata = json;
        }

        public async Task<AppendResult> CommitAsync(CancellationToken ct = default)
        {
            if (_done) throw new InvalidOperationException("transaction already ended");
            try
            {
                while (_encoding.Count > 0) await WriteNextAsync().ConfigureAwait(false);
                ct.ThrowIfCancellationRequested();
                if (_delete) WriteBodiless(FrameType.Delete);
                if (_metadata != null)
                {
                    var body = Encoding.UTF8.GetBytes(_metadata);
                    var mh = new FrameHeader
                    {
                        Type = FrameType.Metadata, Codec = BodyCodec.None, BodyLength = body.Length, RawLength = body.Length,
                        TxId = _txId, FirstRevision = _firstRevision + _written, FirstPosition = _firstPosition + _written,
                        BodyCrc = Crc32C.Compute(body), Stream = Stream.Value,
                    };
                    var bytes = mh.Build();
                    mh = mh with { NameLength = bytes.Length - SegmentFormat.FrameHeaderSize };
                    var (seg, off) = _s.WriteFrame(bytes, body);
                    _frames.Add(new Staged(mh, seg, off));
                }
                var ch = new FrameHeader
                {
                    Type = FrameType.Commit, Count = checked((int)_written), TxId = _txId,
                    FirstRevision = _firstRevision, FirstPosition = _firstPosition, Stream = Stream.Value,
                };
                var cb = ch.Build();
                var (cseg, coff) = _s.WriteFrame(cb, default);
                RandomAccess.FlushToDisk(_s._segWrite!);
                _done = true;
                _s.ApplyCommit(ch, _frames, cseg, coff, writeIndex: true);
                if (_s._sinceCheckpoint >= _s._opts.CheckpointEveryBytes) _s.WriteCheckpoint();
            }
            catch
            {
                if (!_done) { _done = true; _s.Rollback(_startSeg, _startOff); }
                throw;
            }
            finally
            {
                if (_done) _s._appendGate.Release();
            }
            _s.SignalChange();
            if (_written == 0)
            {
                ulong? last;
                lock (_s._state) last = _s._streams.TryGetValue(Stream.Value, out var st) ? st.LastRevision : null;
                return new AppendResult(last, null);
            }
            return new AppendResult(_firstRevision + _written - 1, _firstPosition + _written - 1);
        }

        void WriteBodiless(FrameType type)
        {
            var h = new FrameHeader { Type = type, TxId = _txId, FirstRevision = _firstRevision, FirstPosition = _firstPosition, Stream = Stream.Value };
            var b = h.Build();
            h = h with { NameLength = b.Length - SegmentFormat.FrameHeaderSize };
            var (seg, off) = _s.WriteFrame(b, default);
            _frames.Add(new Staged(h, seg, off));
        }

        public async ValueTask DisposeAsync()
        {
            if (_done) return;
            _done = true;
            try
            {
                while (_encoding.Count > 0)
                {
                    try { await _encoding.Dequeue().Task.ConfigureAwait(false); } catch { /* aborting anyway */ }
                }
                _s.Rollback(_startSeg, _startOff);
            }
            finally
            {
                _s._appendGate.Release();
            }
        }
    }

    public override async Task SetStreamMetadataAsync(StreamName stream, string json, CancellationToken ct = default)
    {
        ValidateJson(json);
        await using var tx = (Transaction)await BeginAppendAsync(stream, ExpectedRevision.Any, ct).ConfigureAwait(false);
        tx.SetMetadata(json);
        await tx.CommitAsync(ct).ConfigureAwait(false);
    }

    public override async Task DeleteStreamAsync(StreamName stream, ExpectedRevision expected, CancellationToken ct = default)
    {
        ThrowIfDisposed();
        ThrowIfReadOnly();
        await _appendGate.WaitAsync(ct).ConfigureAwait(false);
        Transaction tx;
        try
        {
            ulong? actual;
            lock (_state) actual = _streams.TryGetValue(stream.Value, out var st) ? st.LastRevision : null;
            if (!expected.IsSatisfiedBy(actual)) throw new WrongExpectedVersionException(stream, expected, actual);
            tx = new Transaction(this, stream, 0, delete: true);
        }
        catch
        {
            _appendGate.Release();
            throw;
        }
        await using (tx) await tx.CommitAsync(ct).ConfigureAwait(false);
    }

    // ───────────────────────────── reading ─────────────────────────────

    SafeFileHandle ReadHandle(int seg)
    {
        lock (_readHandles)
        {
            if (!_readHandles.TryGetValue(seg, out var h))
                _readHandles[seg] = h = File.OpenHandle(SegPath(seg), FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            return h;
        }
    }

    /// <summary>Reads and checks one indexed frame (header, name, index agreement, body checksum) into a rented
    /// buffer (return it to <see cref="System.Buffers.ArrayPool{T}.Shared"/>); the body starts at <c>BodyStart</c>.</summary>
    (byte[] Buffer, FrameHeader Header, int BodyStart) ReadFrameBytes(IndexEntry e, string stream)
    {
        var path = SegPath(e.Segment);
        var h = ReadHandle(e.Segment);
        long len = RandomAccess.GetLength(h);
        if (e.Offset + e.FrameLength > len)
            throw new StoreCorruptException($"{path} at byte {e.Offset}: indexed frame of {e.FrameLength} bytes runs past the end of the file ({len} bytes)");
        var buf = System.Buffers.ArrayPool<byte>.Shared.Rent(checked((int)e.FrameLength));
        try
        {
            var frame = buf.AsSpan(0, (int)e.FrameLength);
            SegmentReads.ReadExactly(h, frame, e.Offset);
            var err = FrameHeader.ParseFixed(frame, out var fh);
            if (err == null && fh.FrameLength != e.FrameLength) err = $"frame length {fh.FrameLength} differs from the index ({e.FrameLength})";
            if (err == null) err = FrameHeader.FinishParse(frame[..(SegmentFormat.FrameHeaderSize + fh.NameLength)], ref fh);
            if (err == null && (fh.Stream != stream || fh.Type != e.Type || fh.FirstRevision != e.FirstRevision || fh.FirstPosition != e.FirstPosition || (e.Type == FrameType.Batch && fh.Count != e.Count)))
                err = "frame does not match its index entry";
            int bodyStart = SegmentFormat.FrameHeaderSize + fh.NameLength;
            if (err == null && Crc32C.Compute(frame[bodyStart..]) != fh.BodyCrc) err = "body checksum mismatch";
            if (err != null) throw new StoreCorruptException($"{path} at byte {e.Offset}: {err}");
            return (buf, fh, bodyStart);
        }
        catch
        {
            System.Buffers.ArrayPool<byte>.Shared.Return(buf);
            throw;
        }
    }

    /// <summary>Reads and checks one indexed frame; returns its body (decoded for batches).</summary>
    (TraceEvent[]? Events, EventRecord[]? Records, byte[]? RawBody) ReadFrame(IndexEntry e, string stream)
    {
        var (buf, fh, start) = ReadFrameBytes(e, stream);
        try
        {
            var body = buf.AsSpan(start, (int)e.FrameLength - start);
            if (fh.Type == FrameType.Metadata) return (null, null, body.ToArray());
            var (ev, rec) = BatchCodec.Decode(fh.Kind, fh.Codec, fh.RawLength, fh.Count, body, $"{SegPath(e.Segment)} at byte {e.Offset}");
            return (ev, rec, null);
        }
        finally
        {
            System.Buffers.ArrayPool<byte>.Shared.Return(buf);
        }
    }

    /// <summary>Decodes one batch frame into <paramref name="block"/>, leaving out its first <paramref name="offset"/> events.</summary>
    EventBlockSlice BlockSlice(IndexEntry e, string stream, int offset, int count, EventBlock block)
    {
        var (buf, fh, start) = ReadFrameBytes(e, stream);
        try
        {
            var body = buf.AsSpan(start, (int)e.FrameLength - start);
            var d = BatchCodec.DecodeInto(fh.Kind, fh.Codec, fh.RawLength, fh.Count, body, $"{SegPath(e.Segment)} at byte {e.Offset}", block, offset);
            return new EventBlockSlice
            {
                Stream = new StreamName(stream), FirstRevision = e.FirstRevision + (ulong)offset, FirstPosition = e.FirstPosition + (ulong)offset,
                Block = block, RecordsSkipped = d.IsRecords ? count : 0,
            };
        }
        finally
        {
            System.Buffers.ArrayPool<byte>.Shared.Return(buf);
        }
    }

    public override IAsyncEnumerable<EventBlockSlice> ReadStreamBlocksAsync(StreamName stream, StreamRevision from, CancellationToken ct = default)
    {
        ThrowIfDisposed();
        var plan = PlanForward(stream, from.Value);
        return DecodeBlocksAhead(AsAsync(plan), (p, block) => BlockSlice(p.E, p.Stream, p.Offset, p.Count, block), _opts.ReadAhead, ct);
    }

    List<(IndexEntry E, string Stream, int Offset, int Count)> PlanForward(StreamName stream, ulong from)
    {
        var plan = new List<(IndexEntry, string, int, int)>();
        lock (_state)
        {
            if (_streams.TryGetValue(stream.Value, out var st))
            {
                var b = st.Batches;
                for (int i = FindByRevision(b, from); i < b.Count; i++)
                {
                    var e = b[i];
                    int off = from > e.FirstRevision ? (int)(from - e.FirstRevision) : 0;
                    plan.Add((e, st.Name, off, e.Count - off));
                }
            }
        }
        return plan;
    }

    EventSlice Slice(IndexEntry e, string stream, int offset, int count)
    {
        var (ev, rec, _) = ReadFrame(e, stream);
        return new EventSlice
        {
            Stream = new StreamName(stream), FirstRevision = e.FirstRevision + (ulong)offset, FirstPosition = e.FirstPosition + (ulong)offset,
            TraceEvents = ev, Records = rec, Offset = offset, Count = count,
        };
    }

    /// <summary>Decodes the planned slices with up to <see cref="EmbeddedStoreOptions.ReadAhead"/> in parallel, yielding in order.</summary>
    async IAsyncEnumerable<EventSlice> DecodeAhead(List<(IndexEntry E, string Stream, int Offset, int Count)> plan, [EnumeratorCancellation] CancellationToken ct)
    {
        var window = new Queue<Task<EventSlice>>();
        int next = 0;
        try
        {
            while (next < plan.Count || window.Count > 0)
            {
                while (next < plan.Count && window.Count < Math.Max(1, _opts.ReadAhead))
                {
                    var p = plan[next++];
                    window.Enqueue(plan.Count == 1 ? Task.FromResult(Slice(p.E, p.Stream, p.Offset, p.Count)) : Task.Run(() => Slice(p.E, p.Stream, p.Offset, p.Count), ct));
                }
                var s = await window.Dequeue().ConfigureAwait(false);
                ct.ThrowIfCancellationRequested();
                yield return s;
            }
        }
        finally
        {
            foreach (var t in window) _ = t.ContinueWith(static t => _ = t.Exception, TaskScheduler.Default);
        }
    }

    protected override IAsyncEnumerable<EventSlice> ReadStreamSlicesCoreAsync(StreamName stream, ulong from, bool backward, CancellationToken ct)
    {
        ThrowIfDisposed();
        if (!backward) return DecodeAhead(PlanForward(stream, from), ct);
        var plan = new List<(IndexEntry, string, int, int)>();
        lock (_state)
        {
            if (_streams.TryGetValue(stream.Value, out var st))
            {
                var b = st.Batches;
                for (int i = b.Count - 1; i >= 0; i--)
                {
                    var e = b[i];
                    if (e.FirstRevision > from) continue;
                    int cnt = from >= e.EndRevision - 1 ? e.Count : (int)(from - e.FirstRevision + 1);
                    plan.Add((e, st.Name, 0, cnt));
                }
            }
        }
        return DecodeAhead(plan, ct);
    }

    static int FindByRevision(List<IndexEntry> b, ulong rev)
    {
        int lo = 0, hi = b.Count;
        while (lo < hi)
        {
            int mid = (lo + hi) >>> 1;
            if (b[mid].EndRevision <= rev) lo = mid + 1; else hi = mid;
        }
        return lo;
    }

    public override IAsyncEnumerable<EventSlice> ReadAllSlicesAsync(GlobalPosition from, CancellationToken ct = default)
    {
        ThrowIfDisposed();
        var plan = new List<(IndexEntry, string, int, int)>();
        lock (_state)
        {
            int lo = 0, hi = _all.Count;
            while (lo < hi)
            {
                int mid = (lo + hi) >>> 1;
                if (_all[mid].Entry.EndPosition <= from.Value) lo = mid + 1; else hi = mid;
            }
            for (int i = lo; i < _all.Count; i++)
            {
                var (e, st) = _all[i];
                int off = from.Value > e.FirstPosition ? (int)(from.Value - e.FirstPosition) : 0;
                plan.Add((e, st.Name, off, e.Count - off));
            }
        }
        return DecodeAhead(plan, ct);
    }

    public override Task<StreamInfo?> GetStreamInfoAsync(StreamName stream, CancellationToken ct = default)
    {
        ThrowIfDisposed();
        StreamState? st;
        IndexEntry? meta;
        lock (_state)
        {
            if (!_streams.TryGetValue(stream.Value, out st) || st.Batches.Count == 0) return Task.FromResult<StreamInfo?>(null);
            meta = st.Metadata;
        }
        return Task.FromResult<StreamInfo?>(Info(st, meta));
    }

    StreamInfo Info(StreamState st, IndexEntry? meta)
    {
        IndexEntry last;
        lock (_state) last = st.Batches[^1];
        return new StreamInfo(new StreamName(st.Name), last.EndRevision, last.EndRevision - 1, last.EndPosition - 1, meta == null ? null : ReadMetadata(meta, st.Name));
    }

    string ReadMetadata(IndexEntry meta, string stream)
    {
        var body = ReadFrame(meta, stream).RawBody!;
        try { return new UTF8Encoding(false, true).GetString(body); }
        catch (DecoderFallbackException) { throw new StoreCorruptException($"{SegPath(meta.Segment)} at byte {meta.Offset}: metadata is not UTF-8"); }
    }

    public override async IAsyncEnumerable<StreamInfo> ListStreamsAsync([EnumeratorCancellation] CancellationToken ct = default)
    {
        ThrowIfDisposed();
        List<(StreamState, IndexEntry?)> list;
        lock (_state)
            list = _streams.Values.Where(s => s.Batches.Count > 0).OrderBy(s => s.Name, StringComparer.Ordinal).Select(s => (s, s.Metadata)).ToList();
        foreach (var (st, meta) in list)
        {
            ct.ThrowIfCancellationRequested();
            yield return Info(st, meta);
        }
        await Task.CompletedTask.ConfigureAwait(false);
    }

    public override Task<string?> GetStreamMetadataAsync(StreamName stream, CancellationToken ct = default)
    {
        ThrowIfDisposed();
        IndexEntry? meta;
        lock (_state) meta = _streams.TryGetValue(stream.Value, out var st) ? st.Metadata : null;
        return Task.FromResult(meta == null ? null : ReadMetadata(meta, stream.Value));
    }

    // ───────────────────────────── verify ─────────────────────────────

    public override Task<VerifyReport> VerifyAsync(CancellationToken ct = default)
    {
        ThrowIfDisposed();
        return Task.Run(() => new EmbeddedVerifier(_dir).Run(ct), ct);
    }

    // ───────────────────────────── dispose ─────────────────────────────

    void CloseHandles()
    {
        lock (_readHandles)
        {
            foreach (var h in _readHandles.Values) h.Dispose();
            _readHandles.Clear();
        }
        _segWrite?.Dispose();
        _segWrite = null;
        if (_lock != null)
        {
            try { File.Delete(Path.Combine(_dir, "LOCK.pid")); } catch (IOException) { }
            _lock.Dispose();
            _lock = null;
        }
    }

    public override async ValueTask DisposeAsync()
    {
        if (_disposed) return;
        await _appendGate.WaitAsync().ConfigureAwait(false);
        try
        {
            if (_disposed) return;
            _disposed = true;
            if (!_opts.ReadOnly && _segWrite != null)
            {
                RandomAccess.FlushToDisk(_segWrite);
                WriteCheckpoint();
            }
            CloseHandles();
        }
        finally
        {
            _appendGate.Release();
        }
    }
}
