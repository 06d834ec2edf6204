using System.IO.Compression;
using Replayer.Core;

namespace Replayer.Formats;

/// <summary>A stream that returns <c>prefix</c> first, then the rest of <c>inner</c>.</summary>
public sealed class PrefixStream(byte[] prefix, Stream inner) : Stream
{
    int _pos;
    long _read;
    public override bool CanRead => true;
    public override bool CanSeek => false;
    public override bool CanWrite => false;
    public override long Length => throw new NotSupportedException();
    /// <summary>Bytes read so far (some decompressors track their position).</summary>
    public override long Position { get => _read; set => throw new NotSupportedException(); }
    public override void Flush() { }
    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));
    public override int Read(Span<byte> buffer)
    {
        if (_pos < prefix.Length)
        {
            int n = Math.Min(buffer.Length, prefix.Length - _pos);
            prefix.AsSpan(_pos, n).CopyTo(buffer);
            _pos += n;
            _read += n;
            return n;
        }
        int r = inner.Read(buffer);
        _read += r;
        return r;
    }
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    protected override void Dispose(bool disposing) { if (disposing) inner.Dispose(); base.Dispose(disposing); }
}

public enum Compression { None, Gzip, Zstd, Xz }

/// <summary>Transparent decompression, decided from the content's magic bytes (never the file name).</summary>
public static class InputStreams
{
    /// <summary>Reads up to <paramref name="count"/> bytes (fewer only at end of input).</summary>
    public static byte[] ReadPrefix(Stream s, int count)
    {
        var buf = new byte[count];
        int n = 0;
        while (n < count)
        {
            int r = s.Read(buf, n, count - n);
            if (r <= 0) break;
            n += r;
        }
        if (n < count) Array.Resize(ref buf, n);
        return buf;
    }

    public static Compression DetectCompression(ReadOnlySpan<byte> p)
    {
        if (p.Length >= 2 && p[0] == 0x1f && p[1] == 0x8b) return Compression.Gzip;
        if (p.Length >= 4 && p[0] == 0x28 && p[1] == 0xb5 && p[2] == 0x2f && p[3] == 0xfd) return Compression.Zstd;
        if (p.Length >= 6 && p[0] == 0xfd && p[1] == (byte)'7' && p[2] == (byte)'z' && p[3] == (byte)'X' && p[4] == (byte)'Z' && p[5] == 0) return Compression.Xz;
        return Compression.None;
    }

    /// <summary>
    /// Peels compression layers off <paramref name="raw"/> (up to 4) and returns the plain stream with its first
    /// <paramref name="peek"/> bytes already read into <c>Prefix</c> (the stream continues after them).
    /// </summary>
    public static (Stream Plain, byte[] Prefix, List<Compression> Layers) Decode(Stream raw, string sourceName, int peek = 64 * 1024)
    {
        var layers = new List<Compression>();
        Stream s = raw;
        byte[] prefix = ReadPrefix(s, peek);
        for (int depth = 0; depth < 4; depth++)
        {
            var c = DetectCompression(prefix);
            if (c == Compression.None) break;
            layers.Add(c);
            Stream joined = new PrefixStream(prefix, s);
            s = c switch
            {
                Compression.Gzip => new GZipStream(joined, CompressionMode.Decompress),
                Compression.Zstd => new ZstdSharp.DecompressionStream(joined),
                _ => new SharpCompress.Compressors.Xz.XZStream(joined),
            };
            s = new ErrorMappingStream(s, sourceName, c);
            prefix = ReadPrefix(s, peek);
        }
        return (s, prefix, layers);
    }
}

/// <summary>Turns a decompressor's exceptions (corrupt or truncated data) into <see cref="TraceInputException"/>.</summary>
sealed class ErrorMappingStream(Stream inner, string source, Compression kind) : Stream
{
    long _pos;
    public override bool CanRead => true;
    public override bool CanSeek => false;
    public override bool CanWrite => false;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => _pos; set => throw new NotSupportedException(); }
    public override void Flush() { }
    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));
    public override int Read(Span<byte> buffer)
    {
        try
        {
            int n = inner.Read(buffer);
            _pos += n;
            return n;
        }
        catch (Exception e) when (e is not TraceInputException and not OutOfMemoryException)
        {
            throw new TraceInputException(source, 0, _pos, $"valid {kind} data", e.GetType().Name + ": " + e.Message, e);
        }
    }
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    protected override void Dispose(bool disposing) { if (disposing) inner.Dispose(); base.Dispose(disposing); }
}
