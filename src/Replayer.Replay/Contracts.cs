using Replayer.Core.Domain;

namespace Replayer.Replay;

/// <summary>An event an invariant needs: a domain kind, optionally from a specific probed function
/// (alternatives separated by <c>|</c>: <c>page_add_file_rmap|folio_add_file_rmap_ptes</c>).</summary>
public readonly record struct Requirement(DomainKind Kind, string? Function, string Label);

/// <summary>
/// An era adapter maps domain events onto model transitions for the eras it serves. Exactly one
/// adapter runs per replay. Implementations have a public parameterless constructor and are found
/// by reflection (<see cref="Catalog"/>), so a new era plugs in without touching shared code.
/// </summary>
public interface IEraAdapter
{
    IReadOnlyCollection<Era> Eras { get; }
    /// <summary>Applies <paramref name="e"/> to <paramref name="s"/> (the fold step).</summary>
    void Apply(DomainEvent e, ReplayState s);
}

/// <summary>
/// One invariant (kernel-spec §4). A fresh instance is made per replay (public parameterless
/// constructor, found by reflection). The engine calls <see cref="Before"/> with the state before
/// the event's transition, then the adapter applies it, then <see cref="After"/>; <see cref="End"/>
/// at the end of input. Findings go through <see cref="ReplayContext.Report"/>. When a required
/// event is neither declared by the capture nor seen, the verdict is "not checkable: missing
/// events …" and any findings are discarded. State that is unknown (data loss, capture started
/// mid-migration) must be skipped and counted with <see cref="ReplayContext.Skip"/>, never reported.
/// </summary>
public interface IInvariant
{
    /// <summary>Stable id, e.g. <c>file-mapped-conservation</c>.</summary>
    string Id { get; }
    string Title { get; }
    bool AppliesTo(Era era);
    IEnumerable<Requirement> Requires(Era era);
    void Before(DomainEvent e, ReplayContext ctx) { }
    void After(DomainEvent e, ReplayContext ctx) { }
    void End(ReplayContext ctx) { }
}

/// <summary>What an invariant sees besides the event: the state, the era, and where to report.</summary>
public sealed class ReplayContext
{
    readonly Dictionary<string, (int Findings, long Checked, long Skipped)> _counts = new(StringComparer.Ordinal);
    readonly List<Finding> _findings = [];

    public ReplayContext(ReplayState state) => State = state;

    public ReplayState State { get; }
    public Era Era => State.Era;
    public IReadOnlyList<Finding> Findings => _findings;

    public void Report(IInvariant inv, Finding f)
    {
        _findings.Add(f with { InvariantId = inv.Id });
        var c = _counts.GetValueOrDefault(inv.Id);
        _counts[inv.Id] = (c.Findings + 1, c.Checked, c.Skipped);
    }

    public void Checked(IInvariant inv, long n = 1)
    {
        var c = _counts.GetValueOrDefault(inv.Id);
        _counts[inv.Id] = (c.Findings, c.Checked + n, c.Skipped);
    }

    public void Skip(IInvariant inv, long n = 1)
    {
        var c = _counts.GetValueOrDefault(inv.Id);
        _counts[inv.Id] = (c.Findings, c.Checked, c.Skipped + n);
    }

    public (int Findings, long Checked, long Skipped) Counts(string id) => _counts.GetValueOrDefault(id);

    /// <summary>Builds a finding at <paramref name="at"/> with evidence events and page states.</summary>
    public static Finding MakeFinding(DomainEvent at, string explanation, IEnumerable<ulong> pfns, ulong? memcg,
        IEnumerable<DomainEvent?> evidence, string? before = null, string? after = null, Severity severity = Severity.Error) => new()
    {
        Severity = severity, Timestamp = at.Timestamp, Cpu = at.Cpu, Pid = at.Pid, Pfns = pfns.ToArray(), Memcg = memcg,
        Explanation = explanation,
        Evidence = evidence.Where(x => x != null).Distinct().OrderBy(x => x!.Timestamp).ThenBy(x => x!.Source).Select(x => Evidence(x!)).ToArray(),
        StateBefore = before, StateAfter = after,
    };

    public static EvidenceEvent Evidence(DomainEvent e) => new()
    {
        Source = e.Source, Timestamp = e.Timestamp, Cpu = e.Cpu, Pid = e.Pid, Name = e.Name, Text = DomainFormat.Short(e),
    };
}

/// <summary>Finds adapters and invariants by reflection.</summary>
public static class Catalog
{
    static readonly Type[] _types = typeof(Catalog).Assembly.GetTypes()
        .Where(t => t is { IsAbstract: false, IsInterface: false } && t.GetConstructor(Type.EmptyTypes) != null).ToArray();

    public static IEraAdapter AdapterFor(Era era)
    {
        foreach (var t in _types.Where(t => typeof(IEraAdapter).IsAssignableFrom(t)).OrderBy(t => t.FullName, StringComparer.Ordinal))
        {
            var a = (IEraAdapter)Activator.CreateInstance(t)!;
            if (a.Eras.Contains(era)) return a;
        }
        throw new InvalidOperationException($"no era adapter for {era}");
    }

    /// <summary>Fresh instances of every invariant, ordered by id.</summary>
    public static List<IInvariant> Invariants() =>
        _types.Where(t => typeof(IInvariant).IsAssignableFrom(t))
            .Select(t => (IInvariant)Activator.CreateInstance(t)!)
            .OrderBy(i => i.Id, StringComparer.Ordinal).ToList();
}
