using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Text;
using MessagePack;

namespace Replayer.Store;

/// <summary>
/// A forward-only reader of MessagePack values over one contiguous span: the subset the shaped body uses
/// (integers, nil, strings, array headers), with a bounds check on every read. It exists because
/// <see cref="MessagePackReader"/> walks a <c>ReadOnlySequence</c> and costs several times more per value.
/// Malformed or truncated input throws <see cref="MessagePackSerializationException"/>.
/// </summary>
internal ref struct MsgPackSpanReader
{
    readonly ReadOnlySpan<byte> _b;
    int _pos;

    public MsgPackSpanReader(ReadOnlySpan<byte> bytes)
    {
        _b = bytes;
        _pos = 0;
    }

    public readonly int Consumed => _pos;
    public readonly int Remaining => _b.Length - _pos;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool TryReadNil()
    {
        if ((uint)_pos < (uint)_b.Length && _b[_pos] == MessagePackCode.Nil)
        {
            _pos++;
            return true;
        }
        return false;
    }

    /// <summary>Any MessagePack integer that fits an <see cref="long"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public long ReadInt64()
    {
        int p = _pos;
        if ((uint)p < (uint)_b.Length)
        {
            byte c = _b[p];
            if (c <= MessagePackCode.MaxFixInt)
            {
                _pos = p + 1;
                return c;
            }
            if (c >= MessagePackCode.MinNegativeFixInt)
            {
                _pos = p + 1;
                return (sbyte)c;
            }
        }
        return ReadInt64Slow();
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    long ReadInt64Slow()
    {
        byte c = Code();
        switch (c)
        {
            case MessagePackCode.UInt8: return Take(1)[0];
            case MessagePackCode.UInt16: return BinaryPrimitives.ReadUInt16BigEndian(Take(2));
            case MessagePackCode.UInt32: return BinaryPrimitives.ReadUInt32BigEndian(Take(4));
            case MessagePackCode.UInt64:
                ulong u = BinaryPrimitives.ReadUInt64BigEndian(Take(8));
                if (u > long.MaxValue) throw new MessagePackSerializationException($"integer {u} does not fit a signed 64-bit value");
                return (long)u;
            case MessagePackCode.Int8: return (sbyte)Take(1)[0];
            case MessagePackCode.Int16: return BinaryPrimitives.ReadInt16BigEndian(Take(2));
            case MessagePackCode.Int32: return BinaryPrimitives.ReadInt32BigEndian(Take(4));
            case MessagePackCode.Int64: return BinaryPrimitives.ReadInt64BigEndian(Take(8));
        }
        _pos--;
        throw Unexpected("an integer", c);
    }

    /// <summary>A non-negative MessagePack integer (any width).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public ulong ReadUInt64()
    {
        int p = _pos;
        if ((uint)p < (uint)_b.Length && _b[p] <= MessagePackCode.MaxFixInt)
        {
            _pos = p + 1;
            return _b[p];
        }
        byte c = Code();
        switch (c)
        {
            case MessagePackCode.UInt8: return Take(1)[0];
            case MessagePackCode.UInt16: return BinaryPrimitives.ReadUInt16BigEndian(Take(2));
            case MessagePackCode.UInt32: return BinaryPrimitives.ReadUInt32BigEndian(Take(4));
            case MessagePackCode.UInt64: return BinaryPrimitives.ReadUInt64BigEndian(Take(8));
        }
        _pos--;
        if (c >= MessagePackCode.MinNegativeFixInt || c is >= MessagePackCode.Int8 and <= MessagePackCode.Int64)
        {
            long v = ReadInt64();
            if (v < 0) throw new MessagePackSerializationException($"negative integer {v} where an unsigned one belongs");
            return (ulong)v;
        }
        throw Unexpected("an unsigned integer", c);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public int ReadInt32()
    {
        long v = ReadInt64();
        if (v != (int)v) throw new MessagePackSerializationException($"integer {v} does not fit a 32-bit value");
        return (int)v;
    }

    /// <summary>A non-negative integer below <paramref name="limit"/> (an index into a table of that size).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public int ReadIndex(int limit, string what)
    {
        int p = _pos;
        if ((uint)p < (uint)_b.Length)
        {
            byte c = _b[p];
            if (c <= MessagePackCode.MaxFixInt && c < limit)
            {
                _pos = p + 1;
                return c;
            }
        }
        ulong v = ReadUInt64();
        if (v >= (ulong)limit) throw new MessagePackSerializationException($"{what} index {v} outside the table ({limit} entries)");
        return (int)v;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public int ReadArrayHeader()
    {
        byte c = Code();
        int n;
        if (c is >= MessagePackCode.MinFixArray and <= MessagePackCode.MaxFixArray) n = c & 0x0f;
        else if (c == MessagePackCode.Array16) n = BinaryPrimitives.ReadUInt16BigEndian(Take(2));
        else if (c == MessagePackCode.Array32)
        {
            uint u = BinaryPrimitives.ReadUInt32BigEndian(Take(4));
            if (u > int.MaxValue) throw new MessagePackSerializationException($"array of {u} elements");
            n = (int)u;
        }
        else
        {
            _pos--;
            throw Unexpected("an array", c);
        }
        return n;
    }

    /// <summary>The UTF-8 bytes of a string value (not nil).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public ReadOnlySpan<byte> ReadStringBytes()
    {
        byte c = Code();
        int n;
        if (c is >= MessagePackCode.MinFixStr and <= MessagePackCode.MaxFixStr) n = c & 0x1f;
        else if (c == MessagePackCode.Str8) n = Take(1)[0];
        else if (c == MessagePackCode.Str16) n = BinaryPrimitives.ReadUInt16BigEndian(Take(2));
        else if (c == MessagePackCode.Str32)
        {
            uint u = BinaryPrimitives.ReadUInt32BigEndian(Take(4));
            if (u > int.MaxValue) throw new MessagePackSerializationException($"string of {u} bytes");
            n = (int)u;
        }
        else
        {
            _pos--;
            throw Unexpected("a string", c);
        }
        return Take(n);
    }

    byte Code()
    {
        if ((uint)_pos >= (uint)_b.Length) throw new EndOfStreamException($"body ends at byte {_pos} where a value belongs");
        return _b[_pos++];
    }

    ReadOnlySpan<byte> Take(int n)
    {
        if (n > _b.Length - _pos) throw new EndOfStreamException($"value at byte {_pos} needs {n} bytes, {_b.Length - _pos} left");
        var s = _b.Slice(_pos, n);
        _pos += n;
        return s;
    }

    MessagePackSerializationException Unexpected(string what, byte code) =>
        new($"expected {what} at byte {_pos}, found {MessagePackCode.ToFormatName(code)} (0x{code:x2})");
}

/// <summary>
/// Writes MessagePack values (smallest encodings, as <see cref="MessagePackWriter"/> does) into a growing
/// array that is reused from batch to batch.
/// </summary>
internal sealed class MsgPackBuffer
{
    byte[] _buf;
    int _len;

    public MsgPackBuffer(int capacity = 1 << 16) => _buf = new byte[Math.Max(capacity, 16)];

    public int Length => _len;
    public ReadOnlySpan<byte> WrittenSpan => _buf.AsSpan(0, _len);
    public int Capacity => _buf.Length;

    public void Reset() => _len = 0;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    Span<byte> Reserve(int n)
    {
        if (_buf.Length - _len < n) Grow(n);
        return _buf.AsSpan(_len, n);
    }

    void Grow(int n)
    {
        long want = Math.Max((long)_buf.Length * 2, (long)_len + n);
        if (want > Array.MaxLength) want = Math.Max((long)_len + n, Array.MaxLength);
        if (want > Array.MaxLength) throw new InvalidOperationException("batch body exceeds the largest array");
        Array.Resize(ref _buf, (int)want);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void WriteNil()
    {
        if (_len == _buf.Length) Grow(1);
        _buf[_len++] = MessagePackCode.Nil;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void WriteInt64(long v)
    {
        if ((ulong)(v + 32) < 32 + 128) // -32..127: one byte (negative or positive fixint)
        {
            if (_len == _buf.Length) Grow(1);
            _buf[_len++] = unchecked((byte)v);
            return;
        }
        if (v >= 0) WriteUInt64Slow((ulong)v);
        else WriteNegativeSlow(v);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void WriteUInt64(ulong v)
    {
        if (v <= MessagePackCode.MaxFixInt)
        {
            if (_len == _buf.Length) Grow(1);
            _buf[_len++] = (byte)v;
            return;
        }
        WriteUInt64Slow(v);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    void WriteUInt64Slow(ulong v)
    {
        var s = Reserve(9);
        if (v <= byte.MaxValue)
        {
            s[0] = MessagePackCode.UInt8;
            s[1] = (byte)v;
            _len += 2;
        }
        else if (v <= ushort.MaxValue)
        {
            s[0] = MessagePackCode.UInt16;
            BinaryPrimitives.WriteUInt16BigEndian(s[1..], (ushort)v);
            _len += 3;
        }
        else if (v <= uint.MaxValue)
        {
            s[0] = MessagePackCode.UInt32;
            BinaryPrimitives.WriteUInt32BigEndian(s[1..], (uint)v);
            _len += 5;
        }
        else
        {
            s[0] = MessagePackCode.UInt64;
            BinaryPrimitives.WriteUInt64BigEndian(s[1..], v);
            _len += 9;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    void WriteNegativeSlow(long v)
    {
        var s = Reserve(9);
        if (v >= sbyte.MinValue)
        {
            s[0] = MessagePackCode.Int8;
            s[1] = unchecked((byte)(sbyte)v);
            _len += 2;
        }
        else if (v >= short.MinValue)
        {
            s[0] = MessagePackCode.Int16;
            BinaryPrimitives.WriteInt16BigEndian(s[1..], (short)v);
            _len += 3;
        }
        else if (v >= int.MinValue)
        {
            s[0] = MessagePackCode.Int32;
            BinaryPrimitives.WriteInt32BigEndian(s[1..], (int)v);
            _len += 5;
        }
        else
        {
            s[0] = MessagePackCode.Int64;
            BinaryPrimitives.WriteInt64BigEndian(s[1..], v);
            _len += 9;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void WriteArrayHeader(int n)
    {
        var s = Reserve(5);
        if (n <= 15)
        {
            s[0] = (byte)(MessagePackCode.MinFixArray | n);
            _len += 1;
        }
        else if (n <= ushort.MaxValue)
        {
            s[0] = MessagePackCode.Array16;
            BinaryPrimitives.WriteUInt16BigEndian(s[1..], (ushort)n);
            _len += 3;
        }
        else
        {
            s[0] = MessagePackCode.Array32;
            BinaryPrimitives.WriteUInt32BigEndian(s[1..], (uint)n);
            _len += 5;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void WriteString(string s)
    {
        int max = Encoding.UTF8.GetMaxByteCount(s.Length);
        var span = Reserve(checked(max + 5));
        int n = Encoding.UTF8.GetBytes(s, span[5..]);
        int head;
        if (n <= 31)
        {
            span[0] = (byte)(MessagePackCode.MinFixStr | n);
            head = 1;
        }
        else if (n <= byte.MaxValue)
        {
            span[0] = MessagePackCode.Str8;
            span[1] = (byte)n;
            head = 2;
        }
        else if (n <= ushort.MaxValue)
        {
            span[0] = MessagePackCode.Str16;
            BinaryPrimitives.WriteUInt16BigEndian(span[1..], (ushort)n);
            head = 3;
        }
        else
        {
            span[0] = MessagePackCode.Str32;
            BinaryPrimitives.WriteUInt32BigEndian(span[1..], (uint)n);
            head = 5;
        }
        if (head != 5) span.Slice(5, n).CopyTo(span[head..]);
        _len += head + n;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void WriteBin(ReadOnlySpan<byte> bytes)
    {
        var s = Reserve(5);
        int n = bytes.Length;
        if (n <= byte.MaxValue)
        {
            s[0] = MessagePackCode.Bin8;
            s[1] = (byte)n;
            _len += 2;
        }
        else if (n <= ushort.MaxValue)
        {
            s[0] = MessagePackCode.Bin16;
            BinaryPrimitives.WriteUInt16BigEndian(s[1..], (ushort)n);
            _len += 3;
        }
        else
        {
            s[0] = MessagePackCode.Bin32;
            BinaryPrimitives.WriteUInt32BigEndian(s[1..], (uint)n);
            _len += 5;
        }
        WriteRaw(bytes);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void WriteRaw(ReadOnlySpan<byte> bytes)
    {
        bytes.CopyTo(Reserve(bytes.Length));
        _len += bytes.Length;
    }
}
