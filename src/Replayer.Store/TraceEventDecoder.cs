using System.Buffers;
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text;
using MessagePack;
using Replayer.Core;

namespace Replayer.Store;

/// <summary>
/// Reads the MessagePack array that <c>MessagePackSerializer.Serialize&lt;TraceEvent[]&gt;</c> writes
/// (TraceEvent and EventField as integer-keyed arrays) without the generic resolver: strings that
/// repeat (names, comms, probes, flags, field names, symbolic values) come from a per-thread intern
/// table keyed by their UTF-8 bytes, so decoding allocates little beyond the events themselves.
/// Input is untrusted: every count is checked against the bytes left, unknown trailing members are
/// skipped, wrong types throw <see cref="MessagePackSerializationException"/>.
/// </summary>
public static class TraceEventDecoder
{
    [ThreadStatic] static Interner? t_interner;

    public static TraceEvent[] Decode(ReadOnlyMemory<byte> raw, out int consumed)
    {
        var interner = t_interner ??= new Interner();
        var r = new MessagePackReader(raw);
        if (r.TryReadNil()) { consumed = (int)r.Consumed; return []; }
        int n = r.ReadArrayHeader();
        // Each event takes at least 10 bytes (array header + 9 members): a hostile count cannot force a huge allocation.
        if (n > raw.Length / 10 + 1) throw new MessagePackSerializationException($"event count {n} exceeds what {raw.Length} bytes can hold");
        var events = new TraceEvent[n];
        for (int i = 0; i < n; i++) events[i] = ReadEvent(ref r, interner);
        consumed = (int)r.Consumed;
        return events;
    }

    /// <summary>Reads a <see cref="BodyKind.TraceEventsCompact"/> body (see <see cref="CompactTraceEventEncoder"/>).</summary>
    public static TraceEvent[] DecodeCompact(ReadOnlyMemory<byte> raw, out int consumed)
    {
        var interner = t_interner ??= new Interner();
        var r = new MessagePackReader(raw);
        uint n = r.ReadUInt32();
        // Each event takes at least 10 bytes: a hostile count cannot force a huge allocation.
        if (n > raw.Length / 10 + 1) throw new MessagePackSerializationException($"event count {n} exceeds what {raw.Length} bytes can hold");
        int ns = r.ReadArrayHeader();
        if (ns > raw.Length - r.Consumed) throw new MessagePackSerializationException($"string count {ns} exceeds the bytes left");
        var strings = new string[ns];
        for (int i = 0; i < ns; i++)
            strings[i] = interner.Read(ref r) ?? throw new MessagePackSerializationException($"string {i} of the table is nil");
        var events = new TraceEvent[n];
        long ts = 0, source = 0;
        for (int i = 0; i < events.Length; i++)
        {
            if (r.TryReadNil()) throw new MessagePackSerializationException("null event");
            ts = unchecked(ts + r.ReadInt64());
            int cpu = r.ReadInt32();
            int pid = r.ReadInt32();
            string comm = Ref(ref r, strings) ?? "";
            string name = Ref(ref r, strings) ?? "";
            string? probe = Ref(ref r, strings);
            source = unchecked(source + r.ReadInt64());
            string? flags = Ref(ref r, strings);
            EventField[] fields = TraceEvent.NoFields;
            if (!r.TryReadNil())
            {
                int m = r.ReadArrayHeader();
                if (m > 0)
                {
                    // Each field takes at least 4 bytes.
                    if (m > (raw.Length - r.Consumed) / 4 + 1) throw new MessagePackSerializationException($"field count {m} exceeds the bytes left");
                    fields = new EventField[m];
                    for (int k = 0; k < m; k++)
                    {
                        string fname = Ref(ref r, strings) ?? "";
                        byte kind = r.ReadByte();
                        ulong bits = r.ReadUInt64();
                        fields[k] = new EventField(fname, kind, bits, Ref(ref r, strings));
                    }
                }
            }
            events[i] = new TraceEvent { Timestamp = ts, Cpu = cpu, Pid = pid, Comm = comm, Name = name, Fields = fields, Probe = probe, Source = source, Flags = flags };
        }
        consumed = (int)r.Consumed;
        return events;
    }

    static string? Ref(ref MessagePackReader r, string[] strings)
    {
        if (r.TryReadNil()) return null;
        int i = r.ReadInt32();
        if ((uint)i >= (uint)strings.Length) throw new MessagePackSerializationException($"string index {i} outside the table ({strings.Length} strings)");
        return strings[i];
    }

    static TraceEvent ReadEvent(ref MessagePackReader r, Interner interner)
    {
        if (r.TryReadNil()) throw new MessagePackSerializationException("null event");
        int members = r.ReadArrayHeader();
        long ts = 0, source = 0;
        int cpu = 0, pid = 0;
        string comm = "", name = "";
        string? probe = null, flags = null;
        EventField[] fields = TraceEvent.NoFields;
        for (int k = 0; k < members; k++)
        {
            switch (k)
            {
                case 0: ts = r.ReadInt64(); break;
                case 1: cpu = r.ReadInt32(); break;
                case 2: pid = r.ReadInt32(); break;
                case 3: comm = interner.ReadSlot(ref r, 0) ?? ""; break;
                case 4: name = interner.ReadSlot(ref r, 1) ?? ""; break;
                case 5: fields = ReadFields(ref r, interner, name); break;
                case 6: probe = interner.ReadSlot(ref r, 2); break;
                case 7: source = r.ReadInt64(); break;
                case 8: flags = interner.ReadSlot(ref r, 3); break;
                default: r.Skip(); break;
            }
        }
        return new TraceEvent { Timestamp = ts, Cpu = cpu, Pid = pid, Comm = comm, Name = name, Fields = fields, Probe = probe, Source = source, Flags = flags };
    }

    static EventField[] ReadFields(ref MessagePackReader r, Interner interner, string eventName)
    {
        var names = interner.FieldNames(eventName);
        if (r.TryReadNil()) return TraceEvent.NoFields;
        int n = r.ReadArrayHeader();
        if (n == 0) return TraceEvent.NoFields;
        if (n > (r.Sequence.Length - r.Consumed) / 5 + 1) throw new MessagePackSerializationException($"field count {n} exceeds the bytes left");
        var f = new EventField[n];
        for (int i = 0; i < n; i++)
        {
            int members = r.ReadArrayHeader();
            string fname = "";
            byte kind = 0;
            ulong bits = 0;
            string? text = null;
            for (int k = 0; k < members; k++)
            {
                switch (k)
                {
                    case 0: fname = (i < names.Length ? interner.ReadCached(ref r, ref names[i]) : interner.Read(ref r)) ?? ""; break;
                    case 1: kind = r.ReadByte(); break;
                    case 2: bits = r.ReadUInt64(); break;
                    case 3: text = interner.Read(ref r); break;
                    default: r.Skip(); break;
                }
            }
            f[i] = new EventField(fname, kind, bits, text);
        }
        return f;
    }

    /// <summary>UTF-8 bytes → string, remembering up to 64k distinct short strings per thread.</summary>
    sealed class Interner
    {
        const int MaxLen = 256;
        const int Capacity = 1 << 16;
        readonly Entry[] _table = new Entry[Capacity * 2];
        int _count;

        struct Entry
        {
            public uint Hash;
            public byte[]? Utf8;
            public string? Value;
        }

        /// <summary>A remembered string and its UTF-8 bytes.</summary>
        public struct Cached
        {
            public byte[]? Utf8;
            public string? Value;
        }

        readonly Cached[] _slots = new Cached[4];
        readonly Dictionary<string, Cached[]> _fieldNames = new(ReferenceEqualityComparer.Instance);

        /// <summary>Field names seen at each position for an event name (they repeat event after event).</summary>
        public Cached[] FieldNames(string eventName)
        {
            if (!_fieldNames.TryGetValue(eventName, out var a))
            {
                if (_fieldNames.Count >= 4096) return [];
                _fieldNames[eventName] = a = new Cached[32];
            }
            return a;
        }

        /// <summary>Comm, name, probe, flags: usually the same as in the previous event.</summary>
        public string? ReadSlot(ref MessagePackReader r, int slot) => ReadCached(ref r, ref _slots[slot]);

        public string? ReadCached(ref MessagePackReader r, ref Cached c)
        {
            if (r.TryReadNil()) return null;
            if (r.NextMessagePackType != MessagePackType.String) throw new MessagePackSerializationException($"expected a string, found {r.NextMessagePackType}");
            if (!r.TryReadStringSpan(out var span))
            {
                var seq = r.ReadStringSequence();
                return seq is { } sq ? Encoding.UTF8.GetString(sq) : null;
            }
            if (c.Utf8 != null && span.SequenceEqual(c.Utf8)) return c.Value;
            var s = Lookup(span);
            if (span.Length <= MaxLen)
            {
                c.Value = s;
                c.Utf8 = span.ToArray();
            }
            return s;
        }

        public string? Read(ref MessagePackReader r)
        {
            if (r.TryReadNil()) return null;
            if (r.NextMessagePackType != MessagePackType.String) throw new MessagePackSerializationException($"expected a string, found {r.NextMessagePackType}");
            if (!r.TryReadStringSpan(out var span))
            {
                var seq = r.ReadStringSequence();
                return seq is { } s ? Encoding.UTF8.GetString(s) : null;
            }
            return Lookup(span);
        }

        string Lookup(ReadOnlySpan<byte> span)
        {
            if (span.Length == 0) return "";
            if (span.Length > MaxLen) return Encoding.UTF8.GetString(span);
            uint h = Crc32C.Append(0x9e3779b9u, span);
            int mask = _table.Length - 1;
            int i = (int)(h & (uint)mask);
            while (true)
            {
                ref var e = ref _table[i];
                if (e.Utf8 == null)
                {
                    var str = Encoding.UTF8.GetString(span);
                    if (_count >= Capacity) return str; // full: stop remembering
                    e.Hash = h;
                    e.Utf8 = span.ToArray();
                    e.Value = string.IsInterned(str) ?? str;
                    _count++;
                    return e.Value;
                }
                if (e.Hash == h && span.SequenceEqual(e.Utf8)) return e.Value!;
                i = (i + 1) & mask;
            }
        }
    }
}
