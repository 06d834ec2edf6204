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
    

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)]
    public static TraceEvent[] Decode(ReadOnlyMemory<byte> raw, out int consumed)
    {
        var interner = StoreStringInterner.ForThread;
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
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)]
    public static TraceEvent[] DecodeCompact(ReadOnlyMemory<byte> raw, out int consumed)
    {
        var interner = StoreStringInterner.ForThread;
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

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)]
    static string? Ref(ref MessagePackReader r, string[] strings)
    {
        if (r.TryReadNil()) return null;
        int i = r.ReadInt32();
        if ((uint)i >= (uint)strings.Length) throw new MessagePackSerializationException($"string index {i} outside the table ({strings.Length} strings)");
        return strings[i];
    }

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)]
    static TraceEvent ReadEvent(ref MessagePackReader r, StoreStringInterner interner)
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

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)]
    static EventField[] ReadFields(ref MessagePackReader r, StoreStringInterner interner, string eventName)
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
}
