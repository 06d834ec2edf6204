using Replayer.Formats.Schema;

namespace Replayer.Formats;

/// <summary>How <see cref="TraceOpener"/> opens an input.</summary>
public sealed record TraceOpenOptions
{
    public static TraceOpenOptions Default { get; } = new();

    /// <summary>The first line that is not understood throws <see cref="Replayer.Core.TraceInputException"/>
    /// instead of being counted in <c>UnparsedLines</c>.</summary>
    public bool Strict { get; init; }

    /// <summary>Capture metadata to use; null: discover it beside the file (paths) or use none (streams).</summary>
    public CaptureContext? Capture { get; init; }

    /// <summary>Look for <c>formats/</c>, <c>kprobe_events.txt</c>… beside a trace file opened by path.</summary>
    public bool DiscoverCapture { get; init; } = true;

    /// <summary>Name used in messages; defaults to the path.</summary>
    public string? SourceName { get; init; }
}
