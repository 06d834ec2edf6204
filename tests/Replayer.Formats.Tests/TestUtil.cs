using System.Text;
using CsCheck;
using Replayer.Core;
using Replayer.Formats;
using Replayer.TestKit;
using ZstdSharp;

namespace Replayer.Formats.Tests;

static class TestUtil
{
    /// <summary>A fixed CsCheck seed string.</summary>
    public static string Seed(ulong n) => new PCG(7, n).ToString(n);

    public static ITraceReader OpenText(string text, bool strict = false, string name = "inline.txt") =>
        TraceOpener.Open(new MemoryStream(Encoding.UTF8.GetBytes(text)), new TraceOpenOptions { Strict = strict, SourceName = name });

    public static List<TraceEvent> ReadAll(ITraceReader r)
    {
        var list = new List<TraceEvent>();
        while (r.Read() is { } e) list.Add(e);
        return list;
    }

    public static List<TraceEvent> ReadText(string text, bool strict = true) { using var r = OpenText(text, strict); return ReadAll(r); }

    static readonly Dictionary<string, byte[]> Cache = new();

    /// <summary>The first <paramref name="maxBytes"/> bytes (whole lines) of a capture text, decompressed.</summary>
    public static byte[] FixtureHead(string rel, int maxBytes)
    {
        lock (Cache)
        {
            var key = rel + "#" + maxBytes;
            if (Cache.TryGetValue(key, out var b)) return b;
            var path = Repo.Trace(rel.Split('/'));
            using var fs = File.OpenRead(path);
            using Stream s = path.EndsWith(".zst") ? new DecompressionStream(fs) : fs;
            var buf = new byte[maxBytes];
            int n = 0, r;
            while (n < maxBytes && (r = s.Read(buf, n, maxBytes - n)) > 0) n += r;
            int last = Array.LastIndexOf(buf, (byte)'\n', n - 1);
            b = buf.AsSpan(0, last + 1).ToArray();
            Cache[key] = b;
            return b;
        }
    }

    public static readonly string[] Fixtures =
    [
        "6.1-ext4-basic/ftrace/trace.txt.zst",
        "6.12-ext4-basic/ftrace/trace.txt.zst",
        "6.1-ext4-basic/tracecmd/report_host.txt.zst",
        "6.1-ext4-basic/perf/perf_script.txt.zst",
        "6.1-ext4-basic/perf/perf_script_F_all.txt.zst",
        "6.1-ext4-fail/ftrace/trace.txt.zst",
    ];
}

/// <summary>Returns at most a chosen number of bytes per Read: short reads at arbitrary boundaries.</summary>
sealed class ChunkedStream(byte[] data, int[] chunks) : Stream
{
    int _pos, _k;
    public override bool CanRead => true;
    public override bool CanSeek => false;
    public override bool CanWrite => false;
    public override long Length => data.Length;
    public override long Position { get => _pos; set => throw new NotSupportedException(); }
    public override void Flush() { }
    public override int Read(byte[] buffer, int offset, int count)
    {
        if (_pos >= data.Length) return 0;
        int want = chunks.Length == 0 ? count : Math.Max(1, chunks[_k++ % chunks.Length]);
        int n = Math.Min(Math.Min(count, want), data.Length - _pos);
        Buffer.BlockCopy(data, _pos, buffer, offset, n);
        _pos += n;
        return n;
    }
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
}
