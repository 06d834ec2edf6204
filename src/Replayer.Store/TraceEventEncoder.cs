using System.Buffers;
using System.Text;
using MessagePack;
using Replayer.Core;

namespace Replayer.Store;

/// <summary>
/// Writes exactly the bytes <c>MessagePackSerializer.Serialize&lt;TraceEvent[]&gt;</c> writes (integer-keyed
/// arrays, smallest integer encodings), without the generic resolver: the encoded form of strings that
/// repeat (names, comms, probes, flags, field names, symbolic values) is cached per thread by reference.
/// </summary>
public static class TraceEventEncoder
{
    [ThreadStatic] static Dictionary<string, byte[]>? t_strings;
    const int MaxCached = 1 << 16;
    const int MaxLen = 256;

    public static void Encode(IBufferWriter<byte> output, TraceEvent[] events)
    {
        var cache = t_strings ??= new Dictionary<string, byte[]>(ReferenceEqualityComparer.Instance);
        var w = new MessagePackWriter(output);
        w.WriteArrayHeader(events.Length);
        foreach (var e in events)
        {
            if (e is null) { w.WriteNil(); continue; }
            w.WriteArrayHeader(9);
            w.Write(e.Timestamp);
            w.Write(e.Cpu);
            w.Write(e.Pid);
            WriteString(ref w, e.Comm, cache);
            WriteString(ref w, e.Name, cache);
            var fields = e.Fields;
            if (fields is null) w.WriteNil();
            else
            {
                w.WriteArrayHeader(fields.Length);
                foreach (var f in fields)
                {
                    w.WriteArrayHeader(4);
                    WriteString(ref w, f.Name, cache);
                    w.Write(f.Kind);
                    w.Write(f.Bits);
                    WriteString(ref w, f.Text, cache);
                }
            }
            WriteString(ref w, e.Probe, cache);
            w.Write(e.Source);
            WriteString(ref w, e.Flags, cache);
        }
        w.Flush();
    }

    static void WriteString(ref MessagePackWriter w, string? s, Dictionary<string, byte[]> cache)
    {
        if (s is null) { w.WriteNil(); return; }
        if (s.Length > MaxLen) { w.Write(s); return; }
        if (!cache.TryGetValue(s, out var bytes))
        {
            if (cache.Count >= MaxCached) { w.Write(s); return; }
            var buf = new ArrayBufferWriter<byte>(s.Length * 3 + 5);
            var tmp = new MessagePackWriter(buf);
            tmp.Write(s);
            tmp.Flush();
            cache[s] = bytes = buf.WrittenSpan.ToArray();
        }
        w.WriteRaw(bytes);
    }
}
