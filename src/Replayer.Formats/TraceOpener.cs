using Replayer.Core;
using Replayer.Formats.Schema;

namespace Replayer.Formats;

/// <summary>
/// Opens any supported trace: decompresses gzip/zstd/xz transparently, detects the format from the content
/// (never the file name) and returns a streaming reader.
/// </summary>
public static class TraceOpener
{
    public static ITraceReader Open(string path, TraceOpenOptions? options = null)
    {
        options ??= TraceOpenOptions.Default;
        var capture = options.Capture ?? (options.DiscoverCapture ? CaptureContext.Discover(path) : CaptureContext.None);
        var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, FileOptions.SequentialScan);
        try
        {
            return Open(fs, options with { Capture = capture, SourceName = options.SourceName ?? path }, path);
        }
        catch
        {
            fs.Dispose();
            throw;
        }
    }

    public static ITraceReader Open(Stream stream, TraceOpenOptions? options = null) => Open(stream, options ?? TraceOpenOptions.Default, null);

    static ITraceReader Open(Stream stream, TraceOpenOptions options, string? path)
    {
        string source = options.SourceName ?? path ?? "<stream>";
        var capture = options.Capture ?? CaptureContext.None;
        var (plain, prefix, layers) = InputStreams.Decode(stream, source);
        if (prefix.AsSpan().StartsWith((ReadOnlySpan<byte>)[0xEF, 0xBB, 0xBF])) prefix = prefix[3..]; // UTF-8 byte order mark
        var format = FormatDetector.Detect(prefix);
        switch (format)
        {
            case TraceFormat.TraceDat:
            case TraceFormat.PerfData:
            {
                var factory = FormatDetector.FactoryFor(format)
                    ?? throw new TraceInputException(source, 0, 0, "a supported trace format", $"{format} (format not supported yet)");
                Stream s;
                if (layers.Count == 0 && plain.CanSeek)
                {
                    plain.Position = 0;
                    s = plain;
                }
                // compressed or piped: random access through a temp copy (deleted with the reader); perf's pipe mode reads in order
                else if (format == TraceFormat.PerfData && prefix.Length >= 16 && BitConverter.ToUInt64(prefix, 8) is 16 or 16UL << 56) s = new PrefixStream(prefix, plain);
                else s = Binary.SpoolFile.Create(prefix, plain, source);
                try { return factory(new BinaryOpenContext(s, source, options, capture, layers.Count == 0 ? path : null)); }
                catch { s.Dispose(); throw; }
            }
            case TraceFormat.Jsonl:
            {
                var lines = new LineSource(plain, source);
                lines.Prepend(prefix);
                return new JsonlReader(lines, source, options);
            }
            case TraceFormat.FtraceText:
            case TraceFormat.TraceCmdReport:
            case TraceFormat.PerfScript:
            {
                var lines = new LineSource(plain, source);
                lines.Prepend(prefix);
                var reader = new TextTraceReader(lines, format, source, capture.BuildRegistry(), options);
                if (capture.KernelRelease != null) reader.Header.KernelRelease = capture.KernelRelease;
                foreach (var p in capture.Problems)
                    reader.Stats.Add("capture_metadata_errors", StatSeverity.Error);
                return reader;
            }
            default:
                plain.Dispose();
                throw new TraceInputException(source, 1, -1,
                    "a trace (raw ftrace text, trace-cmd report, perf script, Replayer JSONL, trace.dat or perf.data)",
                    prefix.Length == 0 ? "an empty input" : FirstLine(prefix));
        }
    }

    static string FirstLine(byte[] p)
    {
        int nl = Array.IndexOf(p, (byte)'\n');
        var s = System.Text.Encoding.UTF8.GetString(p, 0, nl < 0 ? Math.Min(p.Length, 120) : Math.Min(nl, 120));
        return s;
    }
}
