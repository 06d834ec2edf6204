using System.Globalization;
using System.Text.Json;
using Replayer.Core;
using Replayer.Store;

namespace Replayer.Cli.Commands;

/// <summary>
/// A capture stream of the event store named on the command line (<c>capture-&lt;id&gt;</c> or the bare 16-hex id)
/// instead of a file: its events, the header and reader counters recorded at ingest, the ground-truth files
/// stored with it, and the folder it was ingested from (kprobe definitions, uname) when that still exists.
/// Shared by every command that takes FILE or a stored capture.
/// </summary>
public sealed class StoredCapture : IDisposable
{
    readonly IEventStore _store;
    readonly bool _ownsStore;

    public string StreamName { get; }
    public string Id => StreamName[IngestCommand.StreamPrefix.Length..];
    public string? SourcePath { get; }
    /// <summary><see cref="SourcePath"/> when its folder still exists (to find kprobe_events.txt, uname.txt, formats/).</summary>
    public string? TracePath { get; }
    public string? KernelRelease { get; }
    public TraceFormat Format { get; } = TraceFormat.Unknown;
    public CaptureHeader Header { get; } = new();
    public ReadStats Stats { get; } = new();
    public ulong EventCount { get; }
    /// <summary>Capture context stored at ingest (kprobe_events.txt, uname.txt, kallsyms_bases.txt, formats/; metadata
    /// <c>context</c>); null for captures ingested before it was stored. Audits prefer it to the source folder.</summary>
    public Replayer.Replay.CaptureFiles? Context { get; }
    /// <summary>Ground-truth files stored with the capture (name → content).</summary>
    public Dictionary<string, string> GroundTruthFiles { get; } = new(StringComparer.Ordinal);

    /// <summary>True when <paramref name="arg"/> names a stored capture rather than a file: no such file, and it is
    /// <c>capture-&lt;hex&gt;</c> or a bare 16-digit hex id.</summary>
    public static bool Names(string arg) =>
        !File.Exists(arg) && (arg.StartsWith(IngestCommand.StreamPrefix, StringComparison.Ordinal) || IsHexId(arg));

    static bool IsHexId(string s) => s.Length == 16 && s.All(char.IsAsciiHexDigitLower);

    /// <summary>The stream name for <c>capture-&lt;id&gt;</c> or a bare id.</summary>
    public static string StreamNameOf(string arg) => IsHexId(arg) ? IngestCommand.StreamPrefix + arg : arg;

    /// <summary>Opens the capture in the store <paramref name="storeSpec"/> (read-only).</summary>
    public static StoredCapture Open(string? storeSpec, string arg)
    {
        var store = LsCommand.OpenForReading(storeSpec)
            ?? throw new UsageException($"{arg}: no such file, and there is no event store yet (ingest the capture first)");
        try { return new StoredCapture(store, arg, ownsStore: true); }
        catch { store.Dispose(); throw; }
    }

    /// <summary>A capture of an already open store (the store stays the caller's).</summary>
    public static StoredCapture Open(IEventStore store, string arg) => new(store, arg, ownsStore: false);

    StoredCapture(IEventStore store, string arg, bool ownsStore)
    {
        _store = store;
        _ownsStore = ownsStore;
        StreamName = StreamNameOf(arg);
        var info = store.GetStreamInfoAsync(new StreamName(StreamName)).GetAwaiter().GetResult()
            ?? throw new UsageException($"{arg}: no such file, and no capture {StreamName} in {store.Description}");
        EventCount = info.EventCount;
        if (info.Metadata is not { } meta) return;
        using var doc = JsonDocument.Parse(meta);
        var root = doc.RootElement;
        string? Str(JsonElement e, string name) => e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;
        SourcePath = Str(root, "sourcePath");
        KernelRelease = Str(root, "kernelRelease");
        Header.KernelRelease = KernelRelease;
        if (Str(root, "format") is { } f && Enum.TryParse<TraceFormat>(f, out var fmt)) Format = fmt;
        if (root.TryGetProperty("header", out var h) && h.ValueKind == JsonValueKind.Object)
            foreach (var p in h.EnumerateObject())
            {
                if (p.Name == "cpuCount" && p.Value.TryGetInt32(out int n)) Header.CpuCount = n;
                else if (p.Name == "traceClock") Header.TraceClock = p.Value.GetString();
                else if (p.Name == "formatVersion") Header.FormatVersion = p.Value.GetString();
                else if (p.Value.ValueKind == JsonValueKind.String) Header.Properties[p.Name] = p.Value.GetString()!;
            }
        if (root.TryGetProperty("readStats", out var rs) && rs.ValueKind == JsonValueKind.Object)
        {
            long L(string name) => rs.TryGetProperty(name, out var v) && v.TryGetInt64(out long x) ? x : 0;
            Stats.Lines = L("lines");
            Stats.UnparsedLines = L("unparsedLines");
            Stats.LostEvents = L("lostEvents");
            Stats.DataLossMarkers = L("dataLossMarkers");
            if (rs.TryGetProperty("counters", out var cs) && cs.ValueKind == JsonValueKind.Object)
                foreach (var c in cs.EnumerateObject())
                    if (c.Value.TryGetProperty("value", out var v) && v.TryGetInt64(out long x)
                        && Enum.TryParse<StatSeverity>(Str(c.Value, "severity") ?? "Info", out var sev))
                        Stats.Add(c.Name, sev, x);
        }
        if (root.TryGetProperty("groundTruth", out var gt) && gt.ValueKind == JsonValueKind.Object)
            foreach (var p in gt.EnumerateObject())
                if (p.Value.ValueKind == JsonValueKind.String) GroundTruthFiles[p.Name] = p.Value.GetString()!;
        if (root.TryGetProperty("context", out var ctx)) Context = Replayer.Replay.CaptureFiles.FromJson(ctx);
        TracePath = SourcePath != null && Directory.Exists(Path.GetDirectoryName(SourcePath)) ? SourcePath : null;
    }

    /// <summary>The stored events in the store's blocks, in order. A block is valid until the enumeration moves on.</summary>
    public IEnumerable<EventBlock> Blocks()
    {
        var it = _store.ReadStreamBlocksAsync(new StreamName(StreamName), StreamRevision.Start).GetAsyncEnumerator();
        try
        {
            while (it.MoveNextAsync().AsTask().GetAwaiter().GetResult())
                yield return it.Current.Block;
        }
        finally { it.DisposeAsync().AsTask().GetAwaiter().GetResult(); }
    }

    /// <summary>The stored events as views of the store's blocks (no object per event): each view is valid until
    /// the enumeration moves past it; <see cref="EventView.ToTraceEvent"/> keeps one.</summary>
    public IEnumerable<EventView> Views()
    {
        foreach (var b in Blocks())
            for (int i = 0; i < b.Count; i++) yield return new EventView(b, i);
    }

    /// <summary>The stored events, in order, as objects.</summary>
    public IEnumerable<TraceEvent> Events()
    {
        foreach (var b in Blocks())
            for (int i = 0; i < b.Count; i++) yield return b.ToTraceEvent(i);
    }

    /// <summary>The stored events as a reader (format, header and counters as recorded at ingest). It reads
    /// blocks natively: <see cref="ITraceReader.ReadBlock"/> copies rows without an object per event.</summary>
    public ITraceReader OpenReader() => new Reader(this);

    sealed class Reader(StoredCapture c) : IBlockTraceReader
    {
        readonly IEnumerator<EventBlock> _it = c.Blocks().GetEnumerator();
        EventBlock? _current;
        int _row;

        public TraceFormat Format => c.Format;
        public string SourceName => c.StreamName;
        public CaptureHeader Header => c.Header;
        public ReadStats Stats => c.Stats;

        /// <summary>The store's block with a row left, or null at the end.</summary>
        EventBlock? Current()
        {
            while (_current == null || _row >= _current.Count)
            {
                if (!_it.MoveNext()) return _current = null;
                _current = _it.Current;
                _row = 0;
            }
            return _current;
        }

        public TraceEvent? Read() => Current() is { } b ? b.ToTraceEvent(_row++) : null;

        public int ReadBlock(EventBlock block, int max)
        {
            int n = 0;
            while (n < max && Current() is { } b)
            {
                int take = Math.Min(max - n, b.Count - _row);
                for (int i = 0; i < take; i++) block.Add(b, _row + i);
                _row += take;
                n += take;
            }
            return n;
        }

        public void Dispose() => _it.Dispose();
    }

    public override string ToString() => StreamName + " (" + EventCount.ToString(CultureInfo.InvariantCulture) + " events)";

    public void Dispose()
    {
        if (_ownsStore) _store.Dispose();
    }
}
