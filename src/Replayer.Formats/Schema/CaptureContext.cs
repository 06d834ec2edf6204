using System.Globalization;
using Replayer.Core;

namespace Replayer.Formats.Schema;

/// <summary>
/// What a capture folder says about the trace beside it: the kernel's <c>formats/</c>, <c>kprobe_events.txt</c>,
/// <c>uname.txt</c>, <c>kallsyms_bases.txt</c>, looked up beside the trace file and in its parent folder.
/// Optional: readers work on a bare file with the built-in table.
/// </summary>
public sealed class CaptureContext
{
    public static CaptureContext None { get; } = new();

    public string? FormatsDirectory { get; private init; }
    public string? KprobeEventsPath { get; private init; }
    public string? KernelRelease { get; private init; }
    public IReadOnlyDictionary<string, ulong> KallsymsBases { get; private init; } = new Dictionary<string, ulong>();
    public IReadOnlyList<EventFormat> Formats { get; private init; } = [];
    public IReadOnlyList<KprobeDefinition> Kprobes { get; private init; } = [];
    /// <summary>Files that were found but could not be parsed (message per file); readers count them.</summary>
    public IReadOnlyList<string> Problems { get; private init; } = [];

    /// <summary>Looks beside <paramref name="tracePath"/> and in its parent folder.</summary>
    public static CaptureContext Discover(string tracePath)
    {
        var full = Path.GetFullPath(tracePath);
        var dir = Path.GetDirectoryName(full);
        if (dir == null) return None;
        var dirs = new List<string> { dir };
        if (Path.GetDirectoryName(dir) is { } parent) dirs.Add(parent);
        string? Find(string name, bool isDir) =>
            dirs.Select(d => Path.Combine(d, name)).FirstOrDefault(p => isDir ? Directory.Exists(p) : File.Exists(p));
        return FromFiles(Find("formats", true), Find("kprobe_events.txt", false), Find("uname.txt", false), Find("kallsyms_bases.txt", false));
    }

    public static CaptureContext FromFiles(string? formatsDir, string? kprobeEvents, string? uname, string? kallsymsBases)
    {
        var problems = new List<string>();
        var formats = new List<EventFormat>();
        if (formatsDir != null)
        {
            foreach (var f in Directory.EnumerateFiles(formatsDir, "*format", SearchOption.AllDirectories).Order(StringComparer.Ordinal))
            {
                var rel = Path.GetRelativePath(formatsDir, f).Split(Path.DirectorySeparatorChar);
                string? system = rel.Length >= 3 ? rel[^3] : null;
                if (rel.Length == 1)
                {
                    int us = rel[0].IndexOf('_');
                    system = us > 0 ? rel[0][..us] : null;
                }
                try { formats.Add(EventFormat.Load(f, system)); }
                catch (TraceInputException e) { problems.Add(e.Message); }
            }
        }
        var kprobes = new List<KprobeDefinition>();
        if (kprobeEvents != null)
        {
            try { kprobes = KprobeDefinition.ParseFile(kprobeEvents); }
            catch (TraceInputException e) { problems.Add(e.Message); }
        }
        string? release = null;
        if (uname != null)
        {
            var tok = File.ReadAllText(uname).Split((char[])[' ', '\t', '\n', '\r'], StringSplitOptions.RemoveEmptyEntries);
            if (tok.Length >= 3 && tok[0] == "Linux") release = tok[2];
            else if (tok.Length >= 1) release = tok[0];
        }
        var bases = new Dictionary<string, ulong>(StringComparer.Ordinal);
        if (kallsymsBases != null)
        {
            foreach (var line in File.ReadLines(kallsymsBases))
            {
                var tok = line.Split((char[])[' ', '\t'], StringSplitOptions.RemoveEmptyEntries);
                if (tok.Length >= 3 && ulong.TryParse(tok[0], NumberStyles.HexNumber, CultureInfo.InvariantCulture, out var addr))
                    bases[tok[2]] = addr;
            }
        }
        return new CaptureContext
        {
            FormatsDirectory = formatsDir,
            KprobeEventsPath = kprobeEvents,
            KernelRelease = release,
            KallsymsBases = bases,
            Formats = formats,
            Kprobes = kprobes,
            Problems = problems,
        };
    }

    /// <summary>Built-in table, overridden by the kprobe definitions, overridden by the capture's format files.</summary>
    public SchemaRegistry BuildRegistry()
    {
        var r = SchemaRegistry.CreateBuiltIn();
        foreach (var k in Kprobes)
            r.Add(new EventSchema(k.Group, k.Event, [k.Template], SchemaOrigin.KprobeEvents));
        foreach (var f in Formats)
            r.Add(new EventSchema(f.System, f.Name, [f.Template], SchemaOrigin.CaptureFormat));
        return r;
    }
}
