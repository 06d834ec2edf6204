using System.Text;
using MessagePack;

namespace Replayer.Store;

/// <summary>UTF-8 bytes → string, remembering up to 64k distinct short strings per thread.</summary>
internal sealed class StoreStringInterner
{
    [ThreadStatic] static StoreStringInterner? t_interner;

    /// <summary>The calling thread's interner (decoders run on pool threads; each keeps its own table).</summary>
    public static StoreStringInterner ForThread => t_interner ??= new StoreStringInterner();

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

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)]
    public string Lookup(ReadOnlySpan<byte> span)
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
