using Replayer.Core;

namespace Replayer.Formats;

/// <summary>
/// Reads '\n'-terminated lines from a stream into a reusable buffer, handing them out as spans: no per-line
/// allocation, memory bounded by the longest line (up to <see cref="MaxLineLength"/>).
/// Works with streams that return short reads.
/// </summary>
public sealed class LineSource : IDisposable
{
    readonly Stream _stream;
    readonly string _source;
    byte[] _buf;
    int _start, _end;
    bool _eof;
    long _consumed; // bytes before _start

    public int MaxLineLength { get; }
    /// <summary>1-based number of the line last returned.</summary>
    public long LineNumber { get; private set; }
    /// <summary>Byte offset of the line last returned.</summary>
    public long LineOffset { get; private set; }
    /// <summary>False when the line last returned ended at end of input without '\n' (possibly truncated).</summary>
    public bool LineTerminated { get; private set; }

    public LineSource(Stream stream, string sourceName, int bufferSize = 1 << 20, int maxLineLength = 16 << 20)
    {
        _stream = stream;
        _source = sourceName;
        _buf = new byte[bufferSize];
        MaxLineLength = maxLineLength;
    }

    /// <summary>Puts bytes already read (format detection) in front of the stream's remaining content.</summary>
    public void Prepend(ReadOnlySpan<byte> prefix)
    {
        if (_end - _start + prefix.Length > _buf.Length) Array.Resize(ref _buf, _end - _start + prefix.Length);
        var rest = _buf.AsSpan(_start, _end - _start).ToArray();
        prefix.CopyTo(_buf);
        rest.CopyTo(_buf.AsSpan(prefix.Length));
        _start = 0;
        _end = prefix.Length + rest.Length;
    }

    /// <summary>The next line without its '\n' (and without a trailing '\r'); false at end of input.</summary>
    public bool TryReadLine(out ReadOnlySpan<byte> line)
    {
        int scanFrom = _start;
        while (true)
        {
            int nl = _buf.AsSpan(scanFrom, _end - scanFrom).IndexOf((byte)'\n');
            if (nl >= 0)
            {
                int lineEnd = scanFrom + nl;
                line = Trim(_buf.AsSpan(_start, lineEnd - _start));
                LineOffset = _consumed;
                _consumed += lineEnd + 1 - _start;
                _start = lineEnd + 1;
                LineNumber++;
                LineTerminated = true;
                return true;
            }
            if (_eof)
            {
                if (_end > _start)
                {
                    line = Trim(_buf.AsSpan(_start, _end - _start));
                    LineOffset = _consumed;
                    _consumed += _end - _start;
                    _start = _end;
                    LineNumber++;
                    LineTerminated = false;
                    return true;
                }
                line = default;
                return false;
            }
            scanFrom = _end;
            Fill();
            scanFrom -= _lastShift;
        }
    }

    int _lastShift;

    void Fill()
    {
        _lastShift = 0;
        if (_start > 0 && (_end == _buf.Length || _start > _buf.Length / 2))
        {
            int len = _end - _start;
            Buffer.BlockCopy(_buf, _start, _buf, 0, len);
            _lastShift = _start;
            _start = 0;
            _end = len;
        }
        if (_end == _buf.Length)
        {
            if (_buf.Length >= MaxLineLength)
                TraceInputException.ThrowAtLine(_source, LineNumber + 1, $"a line shorter than {MaxLineLength} bytes", "a longer line");
            Array.Resize(ref _buf, Math.Min(_buf.Length * 2, MaxLineLength));
        }
        int n = _stream.Read(_buf, _end, _buf.Length - _end);
        if (n <= 0) _eof = true;
        else _end += n;
    }

    static ReadOnlySpan<byte> Trim(ReadOnlySpan<byte> s) => s.Length > 0 && s[^1] == (byte)'\r' ? s[..^1] : s;

    public void Dispose() => _stream.Dispose();
}
