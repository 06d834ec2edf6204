using System.Runtime.CompilerServices;
using MessagePack;
using Replayer.Core;

namespace Replayer.Store;

/// <summary>
/// Body kind <see cref="BodyKind.TraceEventsShaped"/>: a batch of trace events laid out so that decoding is a
/// straight walk of small integers into an <see cref="EventBlock"/>. It is a sequence of MessagePack values:
/// <list type="number">
/// <item>the event count (uint);</item>
/// <item>the string table: an array of the batch's distinct strings (comm, names, probes, flags, field names,
/// string values);</item>
/// <item>the shape table: an array of shapes, each an array <c>[name, probe, (field name, kind, mode)*]</c>
/// (strings as table indices, nil for null). A shape is everything that repeats from one event of a kind to
/// the next: event name, probe, and per field its name, its kind byte (<see cref="EventField.Kind"/>) and how
/// its value is stored (mode 0: integer, mode 1: string, mode 2: raw, below);</item>
/// <item>per event: timestamp delta (int, from the previous event), cpu, pid, comm (string index), shape index,
/// source delta (int), flags (string index or nil), then one value per field of the shape: mode 0 (an integer
/// field without text): the difference (wrapping, as a signed 64-bit int) from the previous value of the same
/// field of the same shape in this batch (0 before the first) — pointers and counters that move by small steps
/// take one to three bytes instead of nine; mode 1 (a string field, bits 0): its string index; mode 2
/// (anything else, e.g. a string field with non-zero bits): bits (uint) and text (string index or nil).</item>
/// </list>
/// A null comm or name, and a null field name, read back as "" (as the older kinds do); everything else,
/// including the integer bits of every field, its print style and unusual kind bytes, round-trips exactly.
/// The decoder treats the bytes as untrusted: every count is checked against the bytes left, every index
/// against its table.
/// </summary>
public static class ShapedTraceEventCodec
{
    internal const byte ModeInt = 0, ModeStr = 1, ModeRaw = 2;

    /// <summary>Smallest encoding of an event: seven one-byte values (used to bound hostile counts).</summary>
    const int MinEventBytes = 7;

    /// <summary>
    /// Encodes <paramref name="events"/> (none null) and returns the raw body: a span over a per-thread buffer,
    /// valid until the next call of an <c>Encode</c> on the same thread.
    /// </summary>
    public static ReadOnlySpan<byte> Encode(ReadOnlySpan<TraceEvent> events) => EncoderState.ForThread.Encode(new ArrayRows(events));

    /// <summary>Encodes rows <paramref name="start"/>..start+count of <paramref name="block"/>; see <see cref="Encode(ReadOnlySpan{TraceEvent})"/>.</summary>
    public static ReadOnlySpan<byte> Encode(EventBlock block, int start, int count)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(start);
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        if (start + count > block.Count) throw new ArgumentOutOfRangeException(nameof(count), $"rows {start}..{start + count} of a block of {block.Count}");
        return EncoderState.ForThread.Encode(new BlockRows(block, start, count));
    }

    /// <summary>
    /// Decodes a raw body onto the end of <paramref name="block"/>, leaving out its first <paramref name="skip"/>
    /// events (they are read, not stored). Returns the body's event count and, in <paramref name="consumed"/>,
    /// the bytes read. Malformed input throws <see cref="MessagePackSerializationException"/> or
    /// <see cref="EndOfStreamException"/> (<see cref="BatchCodec"/> turns both into <see cref="StoreCorruptException"/>).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static int Decode(ReadOnlySpan<byte> raw, EventBlock block, int skip, out int consumed)
    {
        var st = DecoderState.ForThread;
        var r = new MsgPackSpanReader(raw);
        ulong n64 = r.ReadUInt64();

        int ns = r.ReadArrayHeader();
        if (ns > r.Remaining) throw new MessagePackSerializationException($"string table of {ns} entries exceeds the {r.Remaining} bytes left");
        var strings = st.Strings(ns);
        var interner = StoreStringInterner.ForThread;
        for (int i = 0; i < ns; i++) strings[i] = interner.Lookup(r.ReadStringBytes());

        int nk = r.ReadArrayHeader();
        // A shape takes at least three bytes (array header, name, probe).
        if (nk > r.Remaining / 3) throw new MessagePackSerializationException($"shape table of {nk} entries exceeds the {r.Remaining} bytes left");
        var shapes = st.Shapes(nk);
        int slots = 0;
        for (int k = 0; k < nk; k++)
        {
            int len = r.ReadArrayHeader();
            if (len < 2 || (len - 2) % 3 != 0) throw new MessagePackSerializationException($"shape {k} has {len} members (2 + 3 per field expected)");
            int nf = (len - 2) / 3;
            if (nf > r.Remaining / 3) throw new MessagePackSerializationException($"shape {k} has {nf} fields, more than the bytes left hold");
            string name = Ref(ref r, strings, ns) ?? "";
            string? probe = Ref(ref r, strings, ns);
            var fields = st.Fields(slots + nf);
            for (int f = 0; f < nf; f++)
            {
                string fname = Ref(ref r, strings, ns) ?? "";
                ulong kind = r.ReadUInt64();
                if (kind > byte.MaxValue) throw new MessagePackSerializationException($"shape {k} field {f}: kind {kind} is not a byte");
                ulong mode = r.ReadUInt64();
                if (mode > ModeRaw) throw new MessagePackSerializationException($"shape {k} field {f}: unknown value mode {mode}");
                fields[slots + f] = new FieldDesc(fname, (byte)kind, (byte)mode);
            }
            shapes[k] = new ShapeDesc(name, probe, slots, nf);
            slots += nf;
        }
        var descs = st.Fields(slots);
        var prev = st.Prev(slots);

        if (n64 > (ulong)(r.Remaining / MinEventBytes)) throw new MessagePackSerializationException($"event count {n64} exceeds what the {r.Remaining} bytes left can hold");
        int n = (int)n64;
        skip = Math.Clamp(skip, 0, n);
        long ts = 0, source = 0;
        for (int i = 0; i < n; i++)
        {
            ts = unchecked(ts + r.ReadInt64());
            int cpu = r.ReadInt32();
            int pid = r.ReadInt32();
            string comm = Ref(ref r, strings, ns) ?? "";
            ref readonly var shape = ref shapes[r.ReadIndex(nk, "shape")];
            source = unchecked(source + r.ReadInt64());
            string? flags = Ref(ref r, strings, ns);
            int nf = shape.FieldCount;
            if (nf > r.Remaining) throw new MessagePackSerializationException($"event {i} has {nf} fields, more than the {r.Remaining} bytes left hold");
            if (i < skip)
            {
                for (int f = 0; f < nf; f++)
                {
                    int slot = shape.FieldStart + f;
                    switch (descs[slot].Mode)
                    {
                        case ModeInt: prev[slot] = unchecked(prev[slot] + (ulong)r.ReadInt64()); break;
                        case ModeStr: r.ReadIndex(ns, "string"); break;
                        default: r.ReadUInt64(); Ref(ref r, strings, ns); break;
                    }
                }
                continue;
            }
            block.Append(ts, cpu, pid, comm, shape.Name, shape.Probe, flags, source);
            if (nf == 0) continue;
            var dst = block.AddFields(nf);
            var fd = descs.AsSpan(shape.FieldStart, nf);
            var pv = prev.AsSpan(shape.FieldStart, nf);
            for (int f = 0; f < fd.Length && f < dst.Length && f < pv.Length; f++)
            {
                ref readonly var d = ref fd[f];
                switch (d.Mode)
                {
                    case ModeInt:
                        ulong bits = unchecked(pv[f] + (ulong)r.ReadInt64());
                        pv[f] = bits;
                        dst[f] = new EventField(d.Name, d.Kind, bits, null);
                        break;
                    case ModeStr:
                        dst[f] = new EventField(d.Name, d.Kind, 0, strings[r.ReadIndex(ns, "string")]);
                        break;
                    default:
                        ulong raw64 = r.ReadUInt64();
                        dst[f] = new EventField(d.Name, d.Kind, raw64, Ref(ref r, strings, ns));
                        break;
                }
            }
        }
        consumed = r.Consumed;
        return n;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static string? Ref(ref MsgPackSpanReader r, string[] strings, int ns) =>
        r.TryReadNil() ? null : strings[r.ReadIndex(ns, "string")];

    internal readonly record struct FieldDesc(string Name, byte Kind, byte Mode);

    internal readonly record struct ShapeDesc(string Name, string? Probe, int FieldStart, int FieldCount);

    /// <summary>Per-thread tables reused from batch to batch.</summary>
    sealed class DecoderState
    {
        [ThreadStatic] static DecoderState? t_state;
        public static DecoderState ForThread => t_state ??= new DecoderState();

        string[] _strings = new string[256];
        ShapeDesc[] _shapes = new ShapeDesc[64];
        FieldDesc[] _fields = new FieldDesc[512];
        ulong[] _prev = new ulong[512];

        public string[] Strings(int n)
        {
            if (_strings.Length < n) _strings = new string[Math.Max(n, _strings.Length * 2)];
            return _strings;
        }

        public ShapeDesc[] Shapes(int n)
        {
            if (_shapes.Length < n) _shapes = new ShapeDesc[Math.Max(n, _shapes.Length * 2)];
            return _shapes;
        }

        public FieldDesc[] Fields(int n)
        {
            if (_fields.Length < n) Array.Resize(ref _fields, Math.Max(n, _fields.Length * 2));
            return _fields;
        }

        public ulong[] Prev(int n)
        {
            if (_prev.Length < n) _prev = new ulong[Math.Max(n, _prev.Length * 2)];
            else Array.Clear(_prev, 0, n);
            return _prev;
        }
    }

    // ───────────────────────────── encoding ─────────────────────────────

    interface IRows
    {
        int Count { get; }
        long Timestamp(int i);
        int Cpu(int i);
        int Pid(int i);
        string? Comm(int i);
        string? Name(int i);
        string? Probe(int i);
        long Source(int i);
        string? Flags(int i);
        ReadOnlySpan<EventField> Fields(int i);
    }

    readonly ref struct ArrayRows(ReadOnlySpan<TraceEvent> a) : IRows
    {
        readonly ReadOnlySpan<TraceEvent> _a = a;
        public int Count => _a.Length;
        public long Timestamp(int i) => _a[i].Timestamp;
        public int Cpu(int i) => _a[i].Cpu;
        public int Pid(int i) => _a[i].Pid;
        public string? Comm(int i) => _a[i].Comm;
        public string? Name(int i) => _a[i].Name;
        public string? Probe(int i) => _a[i].Probe;
        public long Source(int i) => _a[i].Source;
        public string? Flags(int i) => _a[i].Flags;
        public ReadOnlySpan<EventField> Fields(int i) => _a[i].Fields;
    }

    readonly struct BlockRows(EventBlock b, int start, int count) : IRows
    {
        public int Count => count;
        public long Timestamp(int i) => b.TimestampOf(start + i);
        public int Cpu(int i) => b.CpuOf(start + i);
        public int Pid(int i) => b.PidOf(start + i);
        public string? Comm(int i) => b.CommOf(start + i);
        public string? Name(int i) => b.NameOf(start + i);
        public string? Probe(int i) => b.ProbeOf(start + i);
        public long Source(int i) => b.SourceOf(start + i);
        public string? Flags(int i) => b.FlagsOf(start + i);
        public ReadOnlySpan<EventField> Fields(int i) => b.FieldsOf(start + i);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static byte ModeOf(in EventField f)
    {
        int t = f.Kind & 0x0f;
        if (t <= (int)FieldType.S64) return f.Text is null ? ModeInt : ModeRaw;
        if (t == (int)FieldType.Str) return f.Text is not null && f.Bits == 0 ? ModeStr : ModeRaw;
        return ModeRaw;
    }

    sealed class EncoderState
    {
        [ThreadStatic] static EncoderState? t_state;
        public static EncoderState ForThread => t_state ??= new EncoderState();

        const int SlotMask = 4095;
        const int ShapeCacheMask = 255;

        /// <summary>A direct-mapped cache in front of the string dictionary (the same few strings repeat).</summary>
        struct StrSlot
        {
            public string? Key;
            public int Index;
        }

        struct ShapeSlot
        {
            public string? Name;
            public string? Probe;
            public int Shape;
        }

        Dictionary<string, int> _index = new(ReferenceEqualityComparer.Instance);
        List<string> _table = [];
        readonly StrSlot[] _slots = new StrSlot[SlotMask + 1];
        readonly ShapeSlot[] _shapeCache = new ShapeSlot[ShapeCacheMask + 1];
        // Shapes of the current batch.
        ShapeDesc[] _shapes = new ShapeDesc[64];
        int[] _shapeNext = new int[64];
        int _shapeCount;
        readonly Dictionary<int, int> _shapeByHash = [];
        FieldDesc[] _fields = new FieldDesc[512];
        int _fieldCount;
        ulong[] _prev = new ulong[512];
        readonly MsgPackBuffer _events = new(1 << 18);
        readonly MsgPackBuffer _out = new(1 << 18);

        void Reset()
        {
            // After a batch with a huge table, drop the buckets rather than keep them per thread forever.
            if (_table.Count > 1 << 16)
            {
                _index = new(ReferenceEqualityComparer.Instance);
                _table = [];
            }
            _index.Clear();
            _table.Clear();
            Array.Clear(_slots);
            Array.Clear(_shapeCache);
            Array.Clear(_shapes, 0, _shapeCount);
            Array.Clear(_fields, 0, _fieldCount);
            _shapeCount = 0;
            _fieldCount = 0;
            _shapeByHash.Clear();
            _events.Reset();
            _out.Reset();
        }

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public ReadOnlySpan<byte> Encode<TRows>(TRows rows) where TRows : IRows, allows ref struct
        {
            Reset();
            var w = _events;
            long prevTs = 0, prevSource = 0;
            int n = rows.Count;
            for (int i = 0; i < n; i++)
            {
                long ts = rows.Timestamp(i), source = rows.Source(i);
                var fields = rows.Fields(i);
                int shape = FindShape(rows.Name(i), rows.Probe(i), fields);
                w.WriteInt64(unchecked(ts - prevTs));
                prevTs = ts;
                w.WriteInt64(rows.Cpu(i));
                w.WriteInt64(rows.Pid(i));
                Str(w, rows.Comm(i));
                w.WriteUInt64((uint)shape);
                w.WriteInt64(unchecked(source - prevSource));
                prevSource = source;
                Str(w, rows.Flags(i));
                int fs = _shapes[shape].FieldStart;
                for (int k = 0; k < fields.Length; k++)
                {
                    ref readonly var f = ref fields[k];
                    switch (_fields[fs + k].Mode)
                    {
                        case ModeInt:
                            w.WriteInt64(unchecked((long)(f.Bits - _prev[fs + k])));
                            _prev[fs + k] = f.Bits;
                            break;
                        case ModeStr:
                            Str(w, f.Text);
                            break;
                        default:
                            w.WriteUInt64(f.Bits);
                            Str(w, f.Text);
                            break;
                    }
                }
            }

            var o = _out;
            o.WriteUInt64((uint)n);
            o.WriteArrayHeader(_table.Count);
            foreach (var s in _table) o.WriteString(s);
            o.WriteArrayHeader(_shapeCount);
            for (int k = 0; k < _shapeCount; k++)
            {
                ref readonly var sh = ref _shapes[k];
                o.WriteArrayHeader(2 + 3 * sh.FieldCount);
                Str(o, sh.Name);
                Str(o, sh.Probe);
                for (int f = 0; f < sh.FieldCount; f++)
                {
                    ref readonly var d = ref _fields[sh.FieldStart + f];
                    Str(o, d.Name);
                    o.WriteUInt64(d.Kind);
                    o.WriteUInt64(d.Mode);
                }
            }
            o.WriteRaw(w.WrittenSpan);
            // Strings added while writing the shapes (names, probes, field names) are already in the table:
            // FindShape registered them.
            return o.WrittenSpan;
        }

        /// <summary>The shape of an event: by reference through a small cache, else by value.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        int FindShape(string? name, string? probe, ReadOnlySpan<EventField> fields)
        {
            ref var c = ref _shapeCache[(RuntimeHelpers.GetHashCode(name) ^ (RuntimeHelpers.GetHashCode(probe) * 31)) & ShapeCacheMask];
            if (c.Name is not null && ReferenceEquals(c.Name, name) && ReferenceEquals(c.Probe, probe) && SameFields(c.Shape, fields, byReference: true))
                return c.Shape;
            int s = FindOrAddShape(name, probe, fields);
            c.Name = name;
            c.Probe = probe;
            c.Shape = s;
            return s;
        }

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        bool SameFields(int shape, ReadOnlySpan<EventField> fields, bool byReference)
        {
            ref readonly var sh = ref _shapes[shape];
            if (sh.FieldCount != fields.Length) return false;
            var d = _fields.AsSpan(sh.FieldStart, sh.FieldCount);
            for (int k = 0; k < fields.Length; k++)
            {
                ref readonly var f = ref fields[k];
                if (d[k].Kind != f.Kind || d[k].Mode != ModeOf(f)) return false;
                if (byReference ? !ReferenceEquals(d[k].Name, f.Name) : !string.Equals(d[k].Name, f.Name, StringComparison.Ordinal)) return false;
            }
            return true;
        }

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        int FindOrAddShape(string? name, string? probe, ReadOnlySpan<EventField> fields)
        {
            var h = new HashCode();
            h.Add(name, StringComparer.Ordinal);
            h.Add(probe, StringComparer.Ordinal);
            h.Add(fields.Length);
            foreach (ref readonly var f in fields)
            {
                h.Add(f.Name, StringComparer.Ordinal);
                h.Add(f.Kind);
            }
            int hash = h.ToHashCode();
            if (_shapeByHash.TryGetValue(hash, out int s))
                for (; s >= 0; s = _shapeNext[s])
                {
                    ref readonly var sh = ref _shapes[s];
                    if (string.Equals(sh.Name, name, StringComparison.Ordinal) && string.Equals(sh.Probe, probe, StringComparison.Ordinal) && SameFields(s, fields, byReference: false))
                        return s;
                }
            // A new shape; its strings go into the table now so that the table is complete before it is written.
            s = _shapeCount++;
            if (s == _shapes.Length)
            {
                Array.Resize(ref _shapes, s * 2);
                Array.Resize(ref _shapeNext, s * 2);
            }
            if (_fieldCount + fields.Length > _fields.Length)
            {
                int cap = Math.Max(_fields.Length * 2, _fieldCount + fields.Length);
                Array.Resize(ref _fields, cap);
                Array.Resize(ref _prev, cap);
            }
            _shapes[s] = new ShapeDesc(name!, probe, _fieldCount, fields.Length);
            _shapeNext[s] = _shapeByHash.TryGetValue(hash, out int head) ? head : -1;
            _shapeByHash[hash] = s;
            if (name is not null) Index(name);
            if (probe is not null) Index(probe);
            for (int k = 0; k < fields.Length; k++)
            {
                ref readonly var f = ref fields[k];
                _fields[_fieldCount + k] = new FieldDesc(f.Name, f.Kind, ModeOf(f));
                _prev[_fieldCount + k] = 0;
                if (f.Name is not null) Index(f.Name);
            }
            _fieldCount += fields.Length;
            return s;
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        void Str(MsgPackBuffer w, string? s)
        {
            if (s is null) w.WriteNil();
            else w.WriteUInt64((uint)Index(s));
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        int Index(string s)
        {
            ref var slot = ref _slots[RuntimeHelpers.GetHashCode(s) & SlotMask];
            if (ReferenceEquals(slot.Key, s)) return slot.Index;
            return IndexSlow(s, ref slot);
        }

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        int IndexSlow(string s, ref StrSlot slot)
        {
            // By reference: readers intern what repeats; an unshared copy only costs a duplicate table entry.
            if (!_index.TryGetValue(s, out int i))
            {
                _index[s] = i = _table.Count;
                _table.Add(s);
            }
            slot.Key = s;
            slot.Index = i;
            return i;
        }
    }
}
