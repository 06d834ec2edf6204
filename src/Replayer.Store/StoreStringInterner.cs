using System.Text;
using MessagePack;
using Replayer.Core;

namespace Replayer.Store;

/// <summary>UTF-8 bytes → string, remembering up to 64k distinct short strings per thread.</summary>
internal sealed class StoreStringInterner
{
    [ThreadStatic] static StoreStringInterner? t_interner;

    /// <summary>The calling thread's interner (decoders run on pool threads; each keeps its own table).</summary>
    public static StoreStringInterner ForThread => t_interner ??= new StoreStringInterner();

    const int MaxLen = 256;
    readonly Utf8Interner _strings = new(maxEntries: 1 << 16, maxLength: MaxLen, runtimeInterned: true);

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

    /// <summary>The string for these UTF-8 bytes; the same instance every time for short ones.</summary>
    public string Lookup(ReadOnlySpan<byte> span) => _strings.Get(span);
}
