namespace Replayer.Formats.Schema;

/// <summary>Where a schema came from; higher wins.</summary>
public enum SchemaOrigin { BuiltIn = 0, KprobeEvents = 1, CaptureFormat = 2, SelfDescribed = 3 }

/// <summary>What a reader needs to know about one event: its system and the print formats it may be printed with.</summary>
public sealed class EventSchema
{
    public string System { get; }
    public string Name { get; }
    public string FullName { get; }
    /// <summary>Print formats to try, most authoritative first.</summary>
    public IReadOnlyList<PrintTemplate> Templates { get; }
    public SchemaOrigin Origin { get; }

    public EventSchema(string system, string name, IReadOnlyList<PrintTemplate> templates, SchemaOrigin origin)
    {
        System = string.Intern(system);
        Name = string.Intern(name);
        FullName = string.Intern(system + ":" + name);
        Templates = templates;
        Origin = origin;
    }

    public override string ToString() => $"{FullName} ({Origin}, {Templates.Count} format(s))";
}

/// <summary>
/// Event schemas by full name (<c>kmem:mm_page_alloc</c>) and by short name (raw ftrace prints no system).
/// Capture formats override kprobe definitions, which override the built-in table; the overridden
/// formats stay as fallbacks for lines printed by another kernel.
/// </summary>
public sealed class SchemaRegistry
{
    readonly Dictionary<string, EventSchema> _byFull = new(StringComparer.Ordinal);
    readonly Dictionary<string, EventSchema> _byShort = new(StringComparer.Ordinal);

    public IEnumerable<EventSchema> All => _byFull.Values;

    /// <summary>A registry holding the built-in table only.</summary>
    public static SchemaRegistry CreateBuiltIn()
    {
        var r = new SchemaRegistry();
        foreach (var s in KnownFormats.All()) r.Add(s);
        return r;
    }

    public void Add(EventSchema s)
    {
        if (_byFull.TryGetValue(s.FullName, out var old))
        {
            if (old.Origin > s.Origin)
            {
                // keep the stronger one first, add the weaker formats as fallbacks
                s = new EventSchema(old.System, old.Name, old.Templates.Concat(s.Templates.Where(t => !old.Templates.Any(o => o.Format == t.Format))).ToList(), old.Origin);
            }
            else
                s = new EventSchema(s.System, s.Name, s.Templates.Concat(old.Templates.Where(t => !s.Templates.Any(o => o.Format == t.Format))).ToList(), s.Origin);
        }
        _byFull[s.FullName] = s;
        if (!_byShort.TryGetValue(s.Name, out var sh) || sh.Origin <= s.Origin || sh.FullName == s.FullName)
            _byShort[s.Name] = s;
    }

    /// <summary>Replaces any schema of that full name (self-describing inputs say exactly how they print).</summary>
    public void Replace(EventSchema s)
    {
        _byFull[s.FullName] = s;
        _byShort[s.Name] = s;
    }

    /// <summary>By full name (<c>sys:event</c>) or, without a colon, by short name.</summary>
    public EventSchema? Find(string name)
    {
        if (name.Contains(':')) return _byFull.GetValueOrDefault(name);
        return _byShort.GetValueOrDefault(name);
    }
}
