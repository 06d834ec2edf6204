using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Text;
using Replayer.Core;

namespace Replayer.Formats.Binary;

/// <summary>
/// Random access to the bytes of a binary capture. Every read is bounds-checked against the
/// input's length and fails with a <see cref="TraceInputException"/> naming the offset and the
/// structure being read.
/// </summary>
public sealed class BinarySource : IDisposable
{
    readonly Stream _stream;
    readonly bool _own;

    public string Name { get; }
    public long Length { get; }

    public BinarySource(Stream stream, string name, bool ownStream = true)
    {
        Name = name;
        if (!stream.CanSeek)
        {
            // Non-seekable input (a pipe, a decompressing stream): copy it once. Random access needs it.
            var ms = new MemoryStream();
            stream.CopyTo(ms);
            if (ownStream) stream.Dispose();
            ms.Position = 0;
            stream = ms;
            ownStream = true;
        }
        _stream = stream;
        _own = ownStream;
        Length = stream.Length;
    }

    public static BinarySource Open(string path) =>
        new(new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.RandomAccess), path);

    public static BinarySource FromBytes(byte[] data, string name) => new(new MemoryStream(data, writable: false), name);

    /// <summary>Throws unless [offset, offset+count) lies inside the input.</summary>
    public void Check(long offset, long count, string what)
    {
        if (offset < 0 || count < 0 || offset > Length || count > Length - offset)
            TraceInputException.ThrowAtOffset(Name, Math.Max(0, Math.Min(offset, Length)),
                $"{what} ({count} bytes at offset {offset})", $"end of input at {Length}");
    }

    public void Read(long offset, Span<byte> dst, string what)
    {
        Check(offset, dst.Length, what);
        _stream.Position = offset;
        _stream.ReadExactly(dst);
    }

    public byte[] ReadBytes(long offset, long count, string what)
    {
        Check(offset, count, what);
        if (count > Array.MaxLength) TraceInputException.ThrowAtOffset(Name, offset, what, $"{count} bytes");
        var b = new byte[count];
        Read(offset, b, what);
        return b;
    }

    public void Dispose()
    {
        if (_own) _stream.Dispose();
    }
}

/// <summary>A cursor over bytes of a capture with the capture's endianness. Positions in error
/// messages are absolute input offsets (<c>Base + Pos</c>).</summary>
public ref struct ByteReader
{
    readonly ReadOnlySpan<byte> _data;
    readonly string _source;
    public readonly long Base;
    public readonly bool BigEndian;
    public int Pos;

    public ByteReader(ReadOnlySpan<byte> data, long baseOffset, bool bigEndian, string source)
    {
        _data = data;
        Base = baseOffset;
        BigEndian = bigEndian;
        _source = source;
        Pos = 0;
    }

    public readonly int Length => _data.Length;
    public readonly int Remaining => _data.Length - Pos;
    public readonly long Offset => Base + Pos;
    public readonly ReadOnlySpan<byte> Data => _data;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Need(long n, string what)
    {
        if (n < 0 || n > Remaining) Fail(n, what);
    }

    readonly void Fail(long n, string what) =>
        TraceInputException.ThrowAtOffset(_source, Offset, $"{n} bytes of {what}", $"{Remaining} bytes left");

    public byte U8(string what) { Need(1, what); return _data[Pos++]; }

    public ushort U16(string what)
    {
        Need(2, what);
        var s = _data.Slice(Pos, 2); Pos += 2;
        return BigEndian ? BinaryPrimitives.ReadUInt16BigEndian(s) : BinaryPrimitives.ReadUInt16LittleEndian(s);
    }

    public uint U32(string what)
    {
        Need(4, what);
        var s = _data.Slice(Pos, 4); Pos += 4;
        return BigEndian ? BinaryPrimitives.ReadUInt32BigEndian(s) : BinaryPrimitives.ReadUInt32LittleEndian(s);
    }

    public ulong U64(string what)
    {
        Need(8, what);
        var s = _data.Slice(Pos, 8); Pos += 8;
        return BigEndian ? BinaryPrimitives.ReadUInt64BigEndian(s) : BinaryPrimitives.ReadUInt64LittleEndian(s);
    }

    /// <summary>A u64 that must be a valid, non-negative size/offset.</summary>
    public long Size64(string what)
    {
        long at = Offset;
        ulong v = U64(what);
        if (v > long.MaxValue) TraceInputException.ThrowAtOffset(_source, at, what, v.ToString());
        return (long)v;
    }

    public ReadOnlySpan<byte> Bytes(long n, string what)
    {
        Need(n, what);
        var s = _data.Slice(Pos, (int)n);
        Pos += (int)n;
        return s;
    }

    public void Skip(long n, string what) { Need(n, what); Pos += (int)n; }

    /// <summary>A NUL-terminated string (the NUL is consumed).</summary>
    public string CString(string what)
    {
        var rest = _data[Pos..];
        int z = rest.IndexOf((byte)0);
        if (z < 0) TraceInputException.ThrowAtOffset(_source, Offset, $"NUL-terminated {what}", "no NUL before end of data");
        var s = Encoding.UTF8.GetString(rest[..z]);
        Pos += z + 1;
        return s;
    }

    public readonly TraceInputException Error(string expected, string found) =>
        new(_source, 0, Offset, expected, found);
}

/// <summary>Endian-aware primitive reads from spans (no bounds beyond the span's own).</summary>
public static class Endian
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Read(ReadOnlySpan<byte> s, int size, bool big)
    {
        switch (size)
        {
            case 1: return s[0];
            case 2: return big ? BinaryPrimitives.ReadUInt16BigEndian(s) : BinaryPrimitives.ReadUInt16LittleEndian(s);
            case 4: return big ? BinaryPrimitives.ReadUInt32BigEndian(s) : BinaryPrimitives.ReadUInt32LittleEndian(s);
            case 8: return big ? BinaryPrimitives.ReadUInt64BigEndian(s) : BinaryPrimitives.ReadUInt64LittleEndian(s);
            default:
                ulong v = 0;
                int n = Math.Min(size, 8);
                if (big) for (int i = 0; i < n; i++) v = (v << 8) | s[i];
                else for (int i = n - 1; i >= 0; i--) v = (v << 8) | s[i];
                return v;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint U32(ReadOnlySpan<byte> s, bool big) =>
        big ? BinaryPrimitives.ReadUInt32BigEndian(s) : BinaryPrimitives.ReadUInt32LittleEndian(s);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong U64(ReadOnlySpan<byte> s, bool big) =>
        big ? BinaryPrimitives.ReadUInt64BigEndian(s) : BinaryPrimitives.ReadUInt64LittleEndian(s);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static long SignExtend(ulong v, int size) => size switch
    {
        1 => (sbyte)v,
        2 => (short)v,
        4 => (int)v,
        _ => (long)v,
    };
}

/// <summary>Section decompression for trace.dat v7 and perf COMPRESSED records, with declared
/// sizes validated before allocation.</summary>
public static class Decompress
{
    /// <summary>Largest expansion ratio accepted from a declared uncompressed size, so that a
    /// corrupted size field cannot make us allocate far more than the data could describe.</summary>
    public const long MaxRatio = 1 << 14;

    public static void CheckDeclared(string source, long offset, long compressed, long uncompressed, string what)
    {
        if (uncompressed < 0 || uncompressed > compressed * MaxRatio + 65536 || uncompressed > Array.MaxLength)
            TraceInputException.ThrowAtOffset(source, offset, $"plausible uncompressed size of {what}",
                $"{uncompressed} bytes from {compressed} compressed");
    }

    /// <summary>Decompresses exactly <paramref name="dst"/>.Length bytes. <paramref name="zstd"/>, when given,
    /// is a decompression context reused across calls (creating one per call costs more than decoding a
    /// small chunk).</summary>
    public static void Into(string algorithm, ReadOnlySpan<byte> src, Span<byte> dst, string source, long offset, string what,
        ZstdFrameDecoder? zstd = null)
    {
        int n;
        try
        {
            switch (algorithm)
            {
                case "zstd":
                {
                    if (zstd != null)
                    {
                        n = zstd.Decode(src, dst);
                        break;
                    }
                    using var d = new ZstdFrameDecoder();
                    n = d.Decode(src, dst);
                    break;
                }
                case "zlib":
                {
                    using var ms = new UnmanagedSpanStream(src);
                    using var z = new System.IO.Compression.ZLibStream(ms, System.IO.Compression.CompressionMode.Decompress);
                    n = 0;
                    while (n < dst.Length)
                    {
                        int r = z.Read(dst[n..]);
                        if (r == 0) break;
                        n += r;
                    }
                    break;
                }
                case "none":
                    if (src.Length != dst.Length) goto default;
                    src.CopyTo(dst);
                    n = dst.Length;
                    break;
                default:
                    throw new TraceInputException(source, 0, offset, "a supported compression (zstd, zlib)", algorithm);
            }
        }
        catch (TraceInputException) { throw; }
        catch (Exception e) when (e is ZstdSharp.ZstdException or InvalidDataException or ArgumentException or IOException)
        {
            throw new TraceInputException(source, 0, offset, $"{algorithm}-compressed {what}", "corrupt data (" + e.Message.Split('\n')[0] + ")");
        }
        if (n != dst.Length)
            TraceInputException.ThrowAtOffset(source, offset, $"{dst.Length} bytes after decompressing {what}", $"{n} bytes");
    }

    /// <summary>A read-only stream over a span copy (zlib needs a stream).</summary>
    sealed class UnmanagedSpanStream(ReadOnlySpan<byte> data) : MemoryStream(data.ToArray(), writable: false);
}

/// <summary>
/// Decodes whole zstd frames into a buffer of known size with one reusable context: the system's libzstd
/// (<c>libzstd.so.1</c>) when it loads, about a fifth faster than the managed port on trace.dat chunks and
/// without its JIT warm-up, else ZstdSharp. Both give the same bytes; a corrupt frame fails with
/// <see cref="InvalidDataException"/> (native) or <see cref="ZstdSharp.ZstdException"/> (managed), which
/// <see cref="Decompress.Into"/> turns into one <see cref="TraceInputException"/>.
/// <c>REPLAYER_ZSTD=managed</c> forces the managed decoder.
/// </summary>
public sealed unsafe class ZstdFrameDecoder : IDisposable
{
    static readonly delegate* unmanaged<nint> Create;
    static readonly delegate* unmanaged<nint, nuint> Free;
    static readonly delegate* unmanaged<nint, byte*, nuint, byte*, nuint, nuint> DecompressDCtx;
    static readonly delegate* unmanaged<nuint, uint> IsError;
    static readonly delegate* unmanaged<nuint, sbyte*> ErrorName;

    /// <summary>True when frames are decoded by the system's libzstd.</summary>
    public static bool Native { get; }

    static ZstdFrameDecoder()
    {
        if (Environment.GetEnvironmentVariable("REPLAYER_ZSTD") == "managed") return;
        if (!OperatingSystem.IsLinux() || !System.Runtime.InteropServices.NativeLibrary.TryLoad("libzstd.so.1", out var lib)) return;
        if (!System.Runtime.InteropServices.NativeLibrary.TryGetExport(lib, "ZSTD_createDCtx", out var c)
            || !System.Runtime.InteropServices.NativeLibrary.TryGetExport(lib, "ZSTD_freeDCtx", out var f)
            || !System.Runtime.InteropServices.NativeLibrary.TryGetExport(lib, "ZSTD_decompressDCtx", out var d)
            || !System.Runtime.InteropServices.NativeLibrary.TryGetExport(lib, "ZSTD_isError", out var e)
            || !System.Runtime.InteropServices.NativeLibrary.TryGetExport(lib, "ZSTD_getErrorName", out var n))
            return;
        Create = (delegate* unmanaged<nint>)c;
        Free = (delegate* unmanaged<nint, nuint>)f;
        DecompressDCtx = (delegate* unmanaged<nint, byte*, nuint, byte*, nuint, nuint>)d;
        IsError = (delegate* unmanaged<nuint, uint>)e;
        ErrorName = (delegate* unmanaged<nuint, sbyte*>)n;
        Native = true;
    }

    nint _dctx;
    ZstdSharp.Decompressor? _managed;
    readonly bool _native;

    /// <param name="managed">Use ZstdSharp even when the system's libzstd is loaded (the tests compare both).</param>
    public ZstdFrameDecoder(bool managed = false) => _native = Native && !managed;

    /// <summary>True when this decoder uses the system's libzstd.</summary>
    public bool UsesNative => _native;

    /// <summary>Decodes all frames of <paramref name="src"/> into <paramref name="dst"/>; returns the bytes written.</summary>
    public int Decode(ReadOnlySpan<byte> src, Span<byte> dst)
    {
        if (!_native) return (_managed ??= new ZstdSharp.Decompressor()).Unwrap(src, dst);
        if (_dctx == 0)
        {
            _dctx = Create();
            if (_dctx == 0) throw new OutOfMemoryException("ZSTD_createDCtx");
        }
        nuint r;
        fixed (byte* s = src)
        fixed (byte* d = dst)
            r = DecompressDCtx(_dctx, d, (nuint)dst.Length, s, (nuint)src.Length);
        if (IsError(r) != 0) throw new InvalidDataException(new string(ErrorName(r)));
        return (int)r;
    }

    public void Dispose()
    {
        if (_dctx != 0)
        {
            Free(_dctx);
            _dctx = 0;
        }
        _managed?.Dispose();
        _managed = null;
    }
}

/// <summary>A zstd stream decoded piecewise: state (window, partial blocks) carries over between
/// calls, as perf's COMPRESSED records need.</summary>
public sealed unsafe class ZstdStreamDecoder : IDisposable
{
    ZstdSharp.Unsafe.ZSTD_DCtx_s* _ctx = ZstdSharp.Unsafe.Methods.ZSTD_createDCtx();

    /// <summary>Decodes all of <paramref name="src"/>, appending to <paramref name="dst"/> from
    /// <paramref name="start"/>; grows it up to <paramref name="limit"/> bytes. Returns the new end.</summary>
    public int Decode(ReadOnlySpan<byte> src, ref byte[] dst, int start, long limit, string source, long offset)
    {
        if (_ctx == null) throw new ObjectDisposedException(nameof(ZstdStreamDecoder));
        nuint srcPos = 0;
        nuint dstPos = (nuint)start;
        if (dst.Length < start + 65536) Array.Resize(ref dst, (int)Math.Min(Math.Max(start + 65536, dst.Length * 2L), Array.MaxLength));
        while (true)
        {
            nuint ret;
            fixed (byte* s = src)
            fixed (byte* d = dst)
            {
                nuint before = dstPos;
                ret = ZstdSharp.Unsafe.Methods.ZSTD_decompressStream_simpleArgs(_ctx, d, (nuint)dst.Length, &dstPos, s, (nuint)src.Length, &srcPos);
                if (ZstdSharp.Unsafe.Methods.ZSTD_isError(ret))
                    throw new TraceInputException(source, 0, offset, "zstd-compressed data",
                        "corrupt data (" + new string(ZstdSharp.Unsafe.Methods.ZSTD_getErrorName(ret)) + ")");
                bool outputFull = dstPos == (nuint)dst.Length;
                if (srcPos == (nuint)src.Length && !outputFull) return (int)dstPos;
                if (!outputFull && dstPos == before && srcPos == (nuint)src.Length) return (int)dstPos;
            }
            if (dstPos == (nuint)dst.Length)
            {
                if (dst.Length >= limit)
                    TraceInputException.ThrowAtOffset(source, offset, $"zstd data expanding to at most {limit} bytes", "more");
                Array.Resize(ref dst, (int)Math.Min(Math.Min(dst.Length * 2L, limit), Array.MaxLength));
            }
        }
    }

    public void Dispose()
    {
        if (_ctx != null)
        {
            ZstdSharp.Unsafe.Methods.ZSTD_freeDCtx(_ctx);
            _ctx = null;
        }
    }
}
