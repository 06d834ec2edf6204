using System.Text;
using System.Text.Json;
using Replayer.Core.Domain;

namespace Replayer.Replay;

/// <summary>
/// The capture context a trace's audit reads from disk beside it (<c>kprobe_events.txt</c>,
/// <c>uname.txt</c>, <c>kallsyms_bases.txt</c>, <c>formats/</c>, in the trace's folder or its parent, and
/// <c>../sysinfo/uname.txt</c>), as text keyed by the path relative to the trace's folder ('/'-separated,
/// <c>../</c> for the parent). Stored with an ingested capture so its audit never depends on the disk.
/// </summary>
public sealed class CaptureFiles
{
    /// <summary>Files larger than this, or past this total, are not collected.</summary>
    public const int MaxBytes = 4 << 20;

    static readonly string[] Names = ["kprobe_events.txt", "uname.txt", "kallsyms_bases.txt"];

    public IReadOnlyDictionary<string, string> Files { get; }

    public CaptureFiles(IReadOnlyDictionary<string, string> files) => Files = files;

    /// <summary>Reads the context files beside <paramref name="tracePath"/> and in its parent folder.</summary>
    public static CaptureFiles Collect(string tracePath)
    {
        var files = new SortedDictionary<string, string>(StringComparer.Ordinal);
        var dir = Path.GetDirectoryName(Path.GetFullPath(tracePath));
        if (dir == null) return new CaptureFiles(files);
        long total = 0;
        void Add(string key, string file)
        {
            var len = new FileInfo(file).Length;
            if (len > MaxBytes || total + len > MaxBytes) return;
            total += len;
            files[key] = Encoding.UTF8.GetString(File.ReadAllBytes(file));
        }
        var parent = Path.GetDirectoryName(dir);
        foreach (var (folder, prefix) in new[] { (dir, ""), (parent, "../") })
        {
            if (folder == null) continue;
            foreach (var n in Names)
                if (File.Exists(Path.Combine(folder, n))) Add(prefix + n, Path.Combine(folder, n));
            var formats = Path.Combine(folder, "formats");
            if (Directory.Exists(formats))
                foreach (var f in Directory.EnumerateFiles(formats, "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal))
                    Add(prefix + "formats/" + Path.GetRelativePath(formats, f).Replace(Path.DirectorySeparatorChar, '/'), f);
        }
        if (parent != null && File.Exists(Path.Combine(parent, "sysinfo", "uname.txt"))) Add("../sysinfo/uname.txt", Path.Combine(parent, "sysinfo", "uname.txt"));
        return new CaptureFiles(files);
    }

    string? First(params string[] keys) => keys.Select(k => Files.GetValueOrDefault(k)).FirstOrDefault(v => v != null);

    /// <summary>The kprobe definitions (the trace's folder first, then its parent), as <see cref="ProbeResolver.ForTrace"/> finds them.</summary>
    public string? KprobeEvents => First("kprobe_events.txt", "../kprobe_events.txt");

    /// <summary>The <c>uname</c> text, as <see cref="Eras.ReleaseFor"/> finds it.</summary>
    public string? Uname => First("uname.txt", "../sysinfo/uname.txt")?.Trim();

    public ProbeResolver Resolver()
    {
        var r = new ProbeResolver();
        if (KprobeEvents is { } k) r.AddDefinitions(k);
        return r;
    }

    /// <summary><c>system:event</c> of the trace folder's <c>formats/SYSTEM/EVENT/format</c> files.</summary>
    public IEnumerable<string> DeclaredEvents() =>
        Files.Keys.Where(k => k.StartsWith("formats/", StringComparison.Ordinal))
            .Select(k => k.Split('/'))
            .Where(p => p.Length >= 4)
            .Select(p => p[1] + ":" + p[2])
            .Distinct(StringComparer.Ordinal);

    public void WriteJson(Utf8JsonWriter w)
    {
        w.WriteStartObject();
        foreach (var (k, v) in Files) w.WriteString(k, v);
        w.WriteEndObject();
    }

    /// <summary>From <see cref="WriteJson"/>'s object; null when <paramref name="e"/> is not one.</summary>
    public static CaptureFiles? FromJson(JsonElement e)
    {
        if (e.ValueKind != JsonValueKind.Object) return null;
        var files = new SortedDictionary<string, string>(StringComparer.Ordinal);
        foreach (var p in e.EnumerateObject())
            if (p.Value.ValueKind == JsonValueKind.String) files[p.Name] = p.Value.GetString()!;
        return new CaptureFiles(files);
    }
}
