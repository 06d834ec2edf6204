namespace Replayer.Core;

/// <summary>Trace formats Replayer reads. Detected from content, never from the file name.</summary>
public enum TraceFormat
{
    Unknown = 0,
    /// <summary><c>/sys/kernel/tracing/trace</c> (with <c>#</c> header) or <c>trace_pipe</c> text.</summary>
    FtraceText,
    /// <summary><c>trace-cmd report</c> text.</summary>
    TraceCmdReport,
    /// <summary><c>perf script</c> text (default fields or <c>-F</c> variants).</summary>
    PerfScript,
    /// <summary>Replayer's canonical JSON lines.</summary>
    Jsonl,
    /// <summary>trace-cmd <c>trace.dat</c> (v6, v7).</summary>
    TraceDat,
    /// <summary>perf <c>perf.data</c> (file or pipe mode).</summary>
    PerfData,
}

/// <summary>What a capture says about itself (headers, options, metadata).</summary>
public sealed class CaptureHeader
{
    public int? CpuCount { get; set; }
    /// <summary>Kernel release (<c>6.1.0-56-amd64</c>) when the input records it.</summary>
    public string? KernelRelease { get; set; }
    public string? TraceClock { get; set; }
    public string? FormatVersion { get; set; }
    /// <summary>Free-form key/value facts (e.g. <c>entries-in-buffer</c>, hostname).</summary>
    public Dictionary<string, string> Properties { get; } = new(StringComparer.Ordinal);
}

/// <summary>Severity of a reader counter, as in Perfetto's stats table.</summary>
public enum StatSeverity { Info, DataLoss, Error }

/// <summary>
/// Named counters a reader keeps about recoverable problems and facts (lines read, lost events,
/// unparsed lines). Nothing is skipped silently: whatever is not turned into an event is counted.
/// </summary>
public sealed class ReadStats
{
    readonly Dictionary<string, (StatSeverity Severity, long Value)> _counters = new(StringComparer.Ordinal);

    public long Lines { get; set; }
    public long Events { get; set; }
    /// <summary>Non-comment, non-empty lines that were not understood. Must be 0 on a real capture.</summary>
    public long UnparsedLines { get; set; }
    /// <summary>Sum of events the kernel reported as lost (0 when only markers without counts).</summary>
    public long LostEvents { get; set; }
    /// <summary>Number of data-loss markers seen.</summary>
    public long DataLossMarkers { get; set; }

    public void Add(string name, StatSeverity severity, long delta = 1)
    {
        _counters.TryGetValue(name, out var c);
        _counters[name] = (severity, c.Value + delta);
    }

    public IReadOnlyDictionary<string, (StatSeverity Severity, long Value)> Counters => _counters;
}

/// <summary>
/// A streaming reader of one trace file. Events come in source order; wrap in
/// <c>TimeSorter</c> (Replayer.Formats) for timestamp order. Readers never know about the store.
/// Fatal problems throw <see cref="TraceInputException"/>.
/// </summary>
public interface ITraceReader : IDisposable
{
    TraceFormat Format { get; }
    /// <summary>Name used in error messages (usually the path).</summary>
    string SourceName { get; }
    CaptureHeader Header { get; }
    ReadStats Stats { get; }
    /// <summary>The next event in source order, or null at the end of input.</summary>
    TraceEvent? Read();

    /// <summary>
    /// Appends up to <paramref name="max"/> next events (source order) to <paramref name="block"/> and
    /// returns how many it appended; 0 only at the end of input. Readers that can decode straight into
    /// the block's columns override this to allocate nothing per event; the default goes through
    /// <see cref="Read"/>. Mixing both calls on one reader is allowed: each event is returned once.
    /// </summary>
    int ReadBlock(EventBlock block, int max)
    {
        int n = 0;
        while (n < max && Read() is { } e)
        {
            block.Add(e);
            n++;
        }
        return n;
    }
}
