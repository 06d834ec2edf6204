using System.Collections.Frozen;

namespace Replayer.Core.Domain;

/// <summary>What a kprobe event probes: the function, whether it is a return probe, and for a
/// kretprobe the caller it returned to (when the source printed it).</summary>
public readonly record struct ProbeTarget(string Function, bool IsReturn, string? Caller);

/// <summary>
/// Identifies kprobe events by the probed function, never by the (locally chosen) event name:
/// 1. <see cref="TraceEvent.Probe"/> as raw ftrace prints it (<c>func+0x0/0x2f0</c>, kretprobe
///    <c>caller+0x24/0x70 &lt;- func</c>); 2. the capture's kprobe definitions
///    (<c>kprobe_events.txt</c>: <c>p:rt/file_rmap_add page_add_file_rmap …</c>, <c>r10:rt/x func …</c>);
/// 3. the event name itself when it is a function of the vocabulary (seed-era convention; a
/// <c>_ret</c> suffix marks the return probe).
/// </summary>
public sealed class ProbeResolver
{
    /// <summary>Functions of the migration vocabulary (6.x and 2.6.35).</summary>
    public static readonly FrozenSet<string> KnownFunctions = new[]
    {
        "mem_cgroup_migrate", "page_add_file_rmap", "page_remove_rmap", "folio_add_file_rmap_ptes",
        "folio_add_file_rmap_pmd", "folio_add_file_rmap_pte", "folio_remove_rmap_ptes", "folio_remove_rmap_pmd",
        "folio_remove_rmap_pte", "__mod_lruvec_page_state", "__lruvec_stat_mod_folio", "try_to_migrate", "try_to_unmap",
        "remove_migration_ptes", "folio_migrate_mapping", "__folio_migrate_mapping", "move_to_new_folio",
        "migrate_folio_move", "migrate_folio_undo_src", "__mem_cgroup_uncharge", "__mem_cgroup_uncharge_list",
        "__mem_cgroup_uncharge_folios", "mem_cgroup_prepare_migration", "__mem_cgroup_commit_charge",
        "mem_cgroup_end_migration", "__mem_cgroup_uncharge_common", "mem_cgroup_uncharge_page",
        "mem_cgroup_update_file_mapped", "page_add_anon_rmap", "move_to_new_page", "anon_vma_pin",
        "anon_vma_unpin", "anon_vma_free", "putback_lru_page", "folio_get_anon_vma", "__put_anon_vma", "put_anon_vma",
    }.ToFrozenSet(StringComparer.Ordinal);

    readonly Dictionary<string, ProbeTarget> _byEvent = new(StringComparer.Ordinal);
    readonly Dictionary<string, ProbeTarget?> _probeCache = new(StringComparer.Ordinal);

    /// <summary>Event names defined by the loaded kprobe definitions (<c>rt:file_rmap_add</c>).</summary>
    public IReadOnlyDictionary<string, ProbeTarget> Definitions => _byEvent;

    /// <summary>Changes whenever definitions are added: what was resolved before may resolve differently now.</summary>
    public int Version { get; private set; }

    /// <summary>Adds kprobe definitions in <c>kprobe_events</c> syntax (one per line; comments and
    /// blank lines ignored, unknown lines skipped).</summary>
    public void AddDefinitions(string text)
    {
        Version++;
        foreach (var raw in text.Split('\n'))
        {
            var line = raw.Trim();
            if (line.Length < 2 || line[0] == '#') continue;
            char kind = line[0];
            if (kind != 'p' && kind != 'r') continue;
            var parts = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (parts.Length < 2) continue;
            var head = parts[0];
            int colon = head.IndexOf(':');
            string group = kind == 'p' ? "kprobes" : "kprobes", ev;
            string sym = parts[1];
            int plus = sym.IndexOf('+');
            if (plus >= 0) sym = sym[..plus];
            sym = Normalize(sym);
            if (colon < 0) ev = (kind == 'p' ? "p_" : "r_") + sym + "_0";
            else
            {
                var name = head[(colon + 1)..];
                int slash = name.IndexOf('/');
                if (slash >= 0) { group = name[..slash]; ev = name[(slash + 1)..]; }
                else ev = name;
            }
            var t = new ProbeTarget(string.Intern(sym), kind == 'r', null);
            _byEvent[group + ":" + ev] = t;
            _byEvent.TryAdd(ev, t);
        }
    }

    /// <summary>Loads <c>kprobe_events.txt</c> from the trace's folder or its parent (capture folder) when present.</summary>
    public static ProbeResolver ForTrace(string tracePath)
    {
        var r = new ProbeResolver();
        var dir = Path.GetDirectoryName(Path.GetFullPath(tracePath));
        for (int i = 0; i < 2 && dir != null; i++, dir = Path.GetDirectoryName(dir))
        {
            var f = Path.Combine(dir, "kprobe_events.txt");
            if (File.Exists(f)) { r.AddDefinitions(File.ReadAllText(f)); break; }
        }
        return r;
    }

    /// <summary>The probed function of <paramref name="e"/>, or null when it is not a (known) probe.</summary>
    public ProbeTarget? Resolve(EventView e)
    {
        _byEvent.TryGetValue(e.Name, out var defined);
        if (e.Probe is { } probe)
        {
            if (!_probeCache.TryGetValue(probe, out var fromProbe))
                _probeCache[probe] = fromProbe = ParseProbe(probe);
            if (fromProbe is { } p)
            {
                if (defined.Function != null && defined.IsReturn)
                {
                    // Some printers write "func+0x0/… <- caller" instead of ftrace's "caller+off/… <- func":
                    // the definition says which side is the probed function.
                    if (p.IsReturn && p.Function != defined.Function && p.Caller == defined.Function)
                        return new ProbeTarget(defined.Function, true, p.Function);
                    return p.IsReturn ? p : defined;
                }
                return p;
            }
        }
        if (defined.Function != null) return defined;
        ProbeTarget def;
        var shortName = e.ShortName;
        var alt = _byEvent.GetAlternateLookup<ReadOnlySpan<char>>();
        if (e.Name.IndexOf(':') < 0 && alt.TryGetValue(shortName, out def)) return def;
        var known = KnownFunctions.GetAlternateLookup<ReadOnlySpan<char>>();
        if (known.TryGetValue(shortName, out var fn)) return new ProbeTarget(fn, false, null);
        if (shortName.EndsWith("_ret") && known.TryGetValue(shortName[..^4], out fn)) return new ProbeTarget(fn, true, null);
        return null;
    }

    /// <summary>Parses a probe location. Null for a bare address (resolve by definitions instead).</summary>
    public static ProbeTarget? ParseProbe(string probe)
    {
        var s = probe.AsSpan().Trim();
        if (s.Length > 1 && s[0] == '(' && s[^1] == ')') s = s[1..^1].Trim();
        int arrow = s.IndexOf("<-");
        if (arrow >= 0)
        {
            var left = s[..arrow].Trim();
            var right = s[(arrow + 2)..].Trim();
            // ftrace prints "caller+0x24/0x70 <- func"; the probed function is the side printed without
            // an offset, or failing that the side at offset 0.
            bool leftIsFunc = right.Contains('+') && (!left.Contains('+') || left.Contains("+0x0/", StringComparison.Ordinal) && !right.Contains("+0x0/", StringComparison.Ordinal));
            var fn = Symbol(leftIsFunc ? left : right);
            var caller = Symbol(leftIsFunc ? right : left);
            if (fn == null) return null;
            return new ProbeTarget(fn, true, caller);
        }
        var f = Symbol(s);
        return f == null ? null : new ProbeTarget(f, false, null);
    }

    static string? Symbol(ReadOnlySpan<char> s)
    {
        int plus = s.IndexOf('+');
        if (plus >= 0) s = s[..plus];
        if (s.IsEmpty) return null;
        bool hex = true;
        foreach (var c in s) if (!char.IsAsciiHexDigit(c)) { hex = false; break; }
        if ((hex && s.Length >= 8) || (s.StartsWith("0x") && s.Length > 2)) return null;
        return string.Intern(Normalize(s.ToString()));
    }

    /// <summary>Strips compiler clone suffixes (<c>.isra.0</c>, <c>.constprop.0</c>, <c>.part.0</c>).</summary>
    public static string Normalize(string sym)
    {
        int dot = sym.IndexOf('.');
        return dot > 0 ? sym[..dot] : sym;
    }
}
