using System.Buffers.Binary;
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Text;

namespace Replayer.Core;

/// <summary>A small open-addressing map from UTF-8 byte strings to values; bounded (stops adding when full).</summary>
public sealed class Utf8Map<T> where T : class
{
    struct Entry { public int Hash; public byte[]? Key; public T Value; }

    Entry[] _table = new Entry[256];
    int _count;
    public int MaxEntries { get; }
    public int Count => _count;

    public Utf8Map(int maxEntries = 1 << 16) => MaxEntries = maxEntries;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int Hash(ReadOnlySpan<byte> s)
    {
        ulong h = 0x9E3779B97F4A7C15UL ^ (ulong)s.Length;
        while (s.Length >= 8)
        {
            h = BitOperations.RotateLeft((h ^ BinaryPrimitives.ReadUInt64LittleEndian(s)) * 0xff51afd7ed558ccdUL, 29);
            s = s[8..];
        }
        ulong tail = 0;
        for (int i = 0; i < s.Length; i++) tail |= (ulong)s[i] << (8 * i);
        h = (h ^ tail) * 0xc4ceb9fe1a85ec53UL;
        h ^= h >> 32;
        return (int)(h & 0x7fffffff);
    }

    public T? Find(ReadOnlySpan<byte> key, int hash)
    {
        var t = _table;
        int mask = t.Length - 1;
        int i = hash & mask;
        while (true)
        {
            ref var e = ref t[i];
            if (e.Key == null) return null;
            if (e.Hash == hash && key.SequenceEqual(e.Key)) return e.Value;
            i = (i + 1) & mask;
        }
    }

    /// <summary>Adds (key, value) unless the map is full; false when not added.</summary>
    public bool TryAdd(ReadOnlySpan<byte> key, int hash, T value)
    {
        if (_count >= MaxEntries) return false;
        var t = _table;
        int mask = t.Length - 1;
        int i = hash & mask;
        while (t[i].Key != null)
        {
            if (t[i].Hash == hash && key.SequenceEqual(t[i].Key)) return false;
            i = (i + 1) & mask;
        }
        t[i] = new Entry { Hash = hash, Key = key.ToArray(), Value = value };
        if (++_count * 2 > t.Length) Grow();
        return true;
    }

    public void Clear()
    {
        _table = new Entry[256];
        _count = 0;
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

/// <summary>
/// Turns UTF-8 byte spans into strings, returning the same string instance for the same bytes
/// (comm names, event names, symbolic values). Bounded: once <see cref="MaxEntries"/> distinct values are
/// cached, new values are decoded without caching so memory stays bounded on any input.
/// </summary>
public sealed class Utf8Interner
{
    readonly Utf8Map<string> _map;
    public int MaxEntries => _map.MaxEntries;
    public int MaxLength { get; }
    public int Count => _map.Count;

    readonly bool _runtimeInterned;

    /// <param name="maxEntries">distinct strings remembered at most.</param>
    /// <param name="maxLength">longer byte strings are decoded every time, never remembered.</param>
    /// <param name="runtimeInterned">remember the runtime's interned instance when there is one (a string literal such
    /// as a field name the decoders look up), so that lookups by reference hit.</param>
    public Utf8Interner(int maxEntries = 1 << 16, int maxLength = 96, bool runtimeInterned = false)
    {
        _map = new Utf8Map<string>(maxEntries);
        MaxLength = maxLength;
        _runtimeInterned = runtimeInterned;
    }

    public string Get(ReadOnlySpan<byte> s)
    {
        if (s.Length == 0) return "";
        if (s.Length > MaxLength) return Encoding.UTF8.GetString(s);
        int h = Utf8Map<string>.Hash(s);
        var found = _map.Find(s, h);
        if (found != null) return found;
        var str = Encoding.UTF8.GetString(s);
        if (_runtimeInterned) str = string.IsInterned(str) ?? str;
        _map.TryAdd(s, h, str);
        return str;
    }
}
