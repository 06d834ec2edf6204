using System.Buffers;
using MessagePack;
using Replayer.Core;

namespace Replayer.Store;

/// <summary>
/// Body kind <see cref="BodyKind.TraceEventsCompact"/>: a batch's strings once, then the events referring to
/// them by index. Layout (a sequence of MessagePack values): event count; array of distinct strings; per
/// event: timestamp delta from the previous event, cpu, pid, comm, name, probe, source delta, flags (string
/// indices, nil for null), then fields as nil or an array header followed by (name, kind, bits, text) per field.
/// Against <see cref="BodyKind.TraceEvents"/> (self-describing <c>TraceEvent[]</c>, ~170 bytes/event on real
/// captures) the raw body is several times smaller, so zstd and the decoder have far fewer bytes to walk.
/// </summary>
public static class CompactTraceEventEncoder
{
    [ThreadStatic] static Dictionary<string, int>? t_index;
    [ThreadStatic] static List<string>? t_table;
    [ThreadStatic] static ArrayBufferWriter<byte>? t_events;
    [ThreadStatic] static Slot[]? t_slots;

    /// <summary>A direct-mapped cache in front of the dictionary (most lookups hit: the same few strings repeat).</summary>
    struct Slot
    {
        public string? Key;
        public int Index;
    }

    const int SlotMask = 4095;

    public static void Encode(IBufferWriter<byte> output, TraceEvent[] events)
    {
        // Strings are looked up by reference: readers intern what repeats, and an unshared copy only costs a
        // duplicate table entry (it decodes to an equal string).
        var index = t_index ??= new Dictionary<string, int>(ReferenceEqualityComparer.Instance);
        var table = t_table ??= [];
        var body = t_events ??= new ArrayBufferWriter<byte>(1 << 20);
        var slots = t_slots ??= new Slot[SlotMask + 1];
        Array.Clear(slots);
        index.Clear();
        table.Clear();
        body.ResetWrittenCount();
        var w = new MessagePackWriter(body);
        long prevTs = 0, prevSource = 0;
        foreach (var e in events)
        {
            if (e is null) { w.WriteNil(); continue; }
            w.Write(unchecked(e.Timestamp - prevTs));
            prevTs = e.Timestamp;
            w.Write(e.Cpu);
            w.Write(e.Pid);
            Str(ref w, e.Comm, index, table, slots);
            Str(ref w, e.Name, index, table, slots);
            Str(ref w, e.Probe, index, table, slots);
            w.Write(unchecked(e.Source - prevSource));
            prevSource = e.Source;
            Str(ref w, e.Flags, index, table, slots);
            var fields = e.Fields;
            if (fields is null) { w.WriteNil(); continue; }
            w.WriteArrayHeader(fields.Length);
            foreach (var f in fields)
            {
                Str(ref w, f.Name, index, table, slots);
                w.Write(f.Kind);
                w.Write(f.Bits);
                Str(ref w, f.Text, index, table, slots);
            }
        }
        w.Flush();
        // A large table: drop the dictionary's buckets rather than keep them per thread forever.
        if (index.Count > 1 << 16) t_index = null;

        var o = new MessagePackWriter(output);
        o.Write((uint)events.Length);
        o.WriteArrayHeader(table.Count);
        foreach (var s in table) o.Write(s);
        o.WriteRaw(body.WrittenSpan);
        o.Flush();
        table.Clear();
        Array.Clear(slots);
        if (table.Capacity > 1 << 16) t_table = null;
    }

    static void Str(ref MessagePackWriter w, string? s, Dictionary<string, int> index, List<string> table, Slot[] slots)
    {
        if (s is null) { w.WriteNil(); return; }
        ref var slot = ref slots[System.Runtime.CompilerServices.RuntimeHelpers.GetHashCode(s) & SlotMask];
        int i;
        if (ReferenceEquals(slot.Key, s)) i = slot.Index;
        else
        {
            if (!index.TryGetValue(s, out i))
            {
                index[s] = i = table.Count;
                table.Add(s);
            }
            slot.Key = s;
            slot.Index = i;
        }
        w.Write(i);
    }
}
