using System.Runtime.CompilerServices;
using System.Text;

namespace Replayer.Formats;

/// <summary>
/// Turns UTF-8 byte spans into strings, returning the same string instance for the same bytes
/// (comm names, event names, symbolic values). Bounded: once <see cref="MaxEntries"/> distinct values are
/// cached, new values are decoded without caching so memory stays bounded on any input.
/// </summary>
public sealed class Utf8Interner
{
    struct Entry { public int Hash; public byte[] Key; public string Value; }

    Entry[] _table;
    int _count;
    public int MaxEntries { get; }
    public int MaxLength { get; }

    public Utf8Interner(int maxEntries = 1 << 16, int maxLength = 96)
    {
        MaxEntries = maxEntries;
        MaxLength = maxLength;
        _table = new Entry[256];
    }

    public int Count => _count;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static int Hash(ReadOnlySpan<byte> s)
    {
        uint h = 2166136261;
        foreach (var b in s) h = (h ^ b) * 16777619;
        return (int)(h & 0x7fffffff);
    }

    public string Get(ReadOnlySpan<byte> s)
    {
        if (s.Length == 0) return "";
        if (s.Length > MaxLength) return Encoding.UTF8.GetString(s);
        int h = Hash(s);
        var t = _table;
        int mask = t.Length - 1;
        int i = h & mask;
        while (true)
        {
            ref var e = ref t[i];
            if (e.Key == null) break;
            if (e.Hash == h && s.SequenceEqual(e.Key)) return e.Value;
            i = (i + 1) & mask;
        }
        var str = Encoding.UTF8.GetString(s);
        if (_count >= MaxEntries) return str;
        t[i] = new Entry { Hash = h, Key = s.ToArray(), Value = str };
        if (++_count * 2 > t.Length) Grow();
        return str;
    }

    void Grow()
    {
        var old = _table;
        var t = new Entry[old.Length * 2];
        int mask = t.Length - 1;
        foreach (var e in old)
        {
            if (e.Key == null) continue;
            int i = e.Hash & mask;
            while (t[i].Key != null) i = (i + 1) & mask;
            t[i] = e;
        }
        _table = t;
    }
}
