namespace Replayer.Formats.Binary;

/// <summary>
/// <c>/proc/kallsyms</c> as stored in a capture: resolves an address to <c>func+0xoff/0xsize</c>
/// the way the kernel's <c>%pS</c> prints it (size = distance to the next symbol). Where several names share
/// an address, the first in the file's order is used (the kernel's <c>%pS</c> does the same).
/// <para>Parsing only indexes the text. A capture usually asks for a handful of addresses (its kprobe
/// locations), so the first lookups scan the index (tens of microseconds each) and the 100 000-symbol sort
/// is done only when many distinct addresses are asked for. Lookups are cached either way.</para>
/// </summary>
public sealed class Kallsyms
{
    /// <summary>Distinct uncached lookups answered by a scan before the index is sorted for binary search.</summary>
    const int ScanLookups = 64;

    readonly ulong[] _addr;
    readonly int[] _nameOff;
    readonly byte[] _text;
    readonly int _textStart, _textEnd;
    readonly Dictionary<ulong, string> _cacheSized = new(), _cacheBare = new();
    readonly object _sortLock = new();
    int _scans;
    volatile bool _sorted;

    public int Count => _addr.Length;

    /// <summary>The kallsyms text this was parsed from (the trace.dat writer embeds it again).</summary>
    public string Text => System.Text.Encoding.UTF8.GetString(_text, _textStart, _textEnd - _textStart);

    Kallsyms(ulong[] addr, int[] nameOff, byte[] text, int start, int end)
    {
        _addr = addr;
        _nameOff = nameOff;
        _text = text;
        _textStart = start;
        _textEnd = end;
    }

    /// <summary>Parses kallsyms text (<c>addr type name [module]</c> per line). Malformed lines are skipped
    /// and counted in <paramref name="badLines"/>; returns null when no symbol has a non-zero address
    /// (kptr_restrict hides them all). Names are kept as offsets into the text until asked for.</summary>
    public static Kallsyms? Parse(ReadOnlySpan<byte> text, out int badLines)
    {
        var copy = text.ToArray();
        return ParseOwned(copy, 0, copy.Length, out badLines);
    }

    /// <summary><see cref="Parse"/> of <c>copy[start..start+length)</c>, a buffer the caller hands over (not copied;
    /// must not change afterwards).</summary>
    internal static Kallsyms? ParseOwned(byte[] copy, int start, int length, out int badLines)
    {
        badLines = 0;
        int limit = start + length;
        int lines = copy.AsSpan(start, length).Count((byte)'\n') + 1;
        var addrs = new ulong[lines];
        var offs = new int[lines];
        int count = 0;
        int pos = start;
        while (pos < limit)
        {
            int nl = copy.AsSpan(pos, limit - pos).IndexOf((byte)'\n');
            int end = nl < 0 ? limit : pos + nl;
            var line = copy.AsSpan(pos, end - pos);
            int lineStart = pos;
            pos = end + 1;
            if (line.Length == 0) continue;
            if (!System.Buffers.Text.Utf8Parser.TryParse(line, out ulong addr, out int used, 'x') || used >= line.Length - 3
                || line[used] != (byte)' ' || line[used + 2] != (byte)' ')
            { badLines++; continue; }
            char type = (char)line[used + 1];
            int nameAt = used + 3;
            if (nameAt >= line.Length || line[nameAt] is (byte)' ' or (byte)'\t') { badLines++; continue; }
            if (addr == 0) continue;
            if (type is 't' or 'T' or 'w' or 'W' or 'd' or 'D' or 'b' or 'B' or 'r' or 'R' or 'a' or 'A' or 'v' or 'V')
            {
                addrs[count] = addr;
                offs[count] = lineStart + nameAt;
                count++;
            }
        }
        if (count == 0) return null;
        if (count < addrs.Length)
        {
            Array.Resize(ref addrs, count);
            Array.Resize(ref offs, count);
        }
        return new Kallsyms(addrs, offs, copy, start, limit);
    }

    string NameAt(int i)
    {
        int st = _nameOff[i], e = st;
        while (e < _textEnd && _text[e] is not ((byte)'\n' or (byte)' ' or (byte)'\t')) e++;
        return System.Text.Encoding.UTF8.GetString(_text, st, e - st);
    }

    /// <summary><c>func+0xoff/0xsize</c> (or <c>func</c> when <paramref name="withOffset"/> is false), or null.</summary>
    public string? Describe(ulong addr, bool withOffset)
    {
        var cache = withOffset ? _cacheSized : _cacheBare;
        lock (cache)
            if (cache.TryGetValue(addr, out var hit)) return hit;
        if (!Find(addr, out int i, out ulong nextAddr)) return null;
        ulong off = addr - _addr[i], size = nextAddr - _addr[i];
        string s = withOffset
            ? string.Intern($"{NameAt(i)}+0x{off:x}/0x{size:x}")
            : string.Intern(NameAt(i));
        lock (cache)
            if (cache.Count < 1 << 16) cache[addr] = s;
        return s;
    }

    /// <summary>The symbol containing <paramref name="addr"/>: the highest symbol address at or below it (the
    /// first such name in file order) and the next higher symbol address (its end). False below the first
    /// symbol and past the last one (size unknown).</summary>
    bool Find(ulong addr, out int index, out ulong nextAddr)
    {
        if (!_sorted)
            lock (_sortLock)
                if (!_sorted)
                {
                    if (_scans < ScanLookups)
                    {
                        _scans++;
                        return Scan(addr, out index, out nextAddr);
                    }
                    SortStable();
                    _sorted = true;
                }
        index = 0;
        nextAddr = 0;
        int i = Array.BinarySearch(_addr, addr);
        if (i < 0) i = ~i - 1;
        if (i < 0) return false;
        while (i > 0 && _addr[i - 1] == _addr[i]) i--;
        int next = i + 1;
        while (next < _addr.Length && _addr[next] == _addr[i]) next++;
        if (next >= _addr.Length) return false;
        index = i;
        nextAddr = _addr[next];
        return true;
    }

    /// <summary><see cref="Find"/> by one pass over the unsorted index.</summary>
    bool Scan(ulong addr, out int index, out ulong nextAddr)
    {
        var a = _addr;
        int best = -1;
        ulong bestAddr = 0, next = ulong.MaxValue;
        bool haveNext = false;
        for (int j = 0; j < a.Length; j++)
        {
            ulong v = a[j];
            if (v <= addr)
            {
                // Higher, or the same address earlier in the file (offsets grow with file order).
                if (best < 0 || v > bestAddr || v == bestAddr && _nameOff[j] < _nameOff[best]) { best = j; bestAddr = v; }
            }
            else if (v <= next) { next = v; haveNext = true; }
        }
        index = best;
        nextAddr = next;
        return best >= 0 && haveNext;
    }

    /// <summary>Sorts by address; names sharing an address stay in file order.</summary>
    void SortStable()
    {
        Array.Sort(_addr, _nameOff);
        for (int i = 0; i < _addr.Length;)
        {
            int j = i + 1;
            while (j < _addr.Length && _addr[j] == _addr[i]) j++;
            if (j - i > 1) Array.Sort(_nameOff, i, j - i);
            i = j;
        }
    }
}
