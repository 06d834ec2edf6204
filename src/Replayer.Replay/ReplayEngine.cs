using Replayer.Core.Domain;

namespace Replayer.Replay;

/// <summary>
/// The replay fold: for each domain event, invariants see the state before, the era adapter applies
/// the transition, invariants see the state after. <see cref="Finish"/> produces the serializable
/// <see cref="AuditResult"/>.
/// </summary>
public sealed class ReplayEngine
{
    readonly IEraAdapter _adapter;
    readonly IInvariant[] _invariants;
    readonly HashSet<(DomainKind, string?)> _seen = [];
    readonly HashSet<string> _declaredFunctions;
    readonly HashSet<string> _declaredEvents;
    DomainKind _lastKind = (DomainKind)(-1);
    string? _lastFunction;

    public ReplayEngine(Era era, IEraAdapter? adapter = null, IEnumerable<IInvariant>? invariants = null,
        IEnumerable<string>? declaredFunctions = null, IEnumerable<string>? declaredEvents = null)
    {
        Era = era;
        State = new ReplayState { Era = era };
        Context = new ReplayContext(State);
        _adapter = adapter ?? Catalog.AdapterFor(era);
        _invariants = (invariants ?? Catalog.Invariants()).Where(i => i.AppliesTo(era)).ToArray();
        _declaredFunctions = new HashSet<string>(declaredFunctions ?? [], StringComparer.Ordinal);
        _declaredEvents = new HashSet<string>(declaredEvents ?? [], StringComparer.Ordinal);
    }

    public Era Era { get; }
    public ReplayState State { get; }
    public ReplayContext Context { get; }
    public IReadOnlyList<IInvariant> Invariants => _invariants;

    /// <summary>Raised after each event is applied (for <c>state</c>/<c>history</c>).</summary>
    public Action<DomainEvent, ReplayState>? Applied { get; set; }

    public void Feed(DomainEvent e)
    {
        State.Events++;
        var kind = e.Kind;
        var fn = (e as ProbeEvent)?.Function;
        if (kind != _lastKind || !ReferenceEquals(fn, _lastFunction))
        {
            _seen.Add((kind, fn));
            _seen.Add((kind, null));
            _lastKind = kind; _lastFunction = fn;
        }
        var inv = _invariants;
        for (int i = 0; i < inv.Length; i++) inv[i].Before(e, Context);
        _adapter.Apply(e, State);
        for (int i = 0; i < inv.Length; i++) inv[i].After(e, Context);
        Applied?.Invoke(e, State);
    }

    public void FeedAll(IEnumerable<DomainEvent> events)
    {
        foreach (var e in events) Feed(e);
    }

    bool Available(Requirement r)
    {
        if (r.Function == null ? _seen.Contains((r.Kind, null)) : r.Function.Split('|').Any(f => _seen.Contains((r.Kind, f)) || _declaredFunctions.Contains(f)))
            return true;
        if (r.Function == null && _declaredEvents.Contains(r.Label)) return true;
        if (r.Function == null && r.Label.IndexOf(':') is var c && c >= 0 && _declaredEvents.Contains(r.Label[(c + 1)..])) return true;
        return false;
    }

    public AuditResult Finish(string source = "", bool eraForced = false, string? release = null)
    {
        foreach (var i in _invariants) i.End(Context);
        var verdicts = new List<InvariantVerdict>();
        var findings = new List<Finding>();
        foreach (var group in _invariants.GroupBy(i => i.Id, StringComparer.Ordinal).OrderBy(g => g.Key, StringComparer.Ordinal))
        {
            var missing = group.SelectMany(i => i.Requires(Era)).Where(r => !Available(r)).Select(r => r.Label).Distinct().ToList();
            var (nf, chk, skip) = Context.Counts(group.Key);
            var mine = Context.Findings.Where(f => f.InvariantId == group.Key).ToList();
            if (missing.Count > 0)
            {
                verdicts.Add(new InvariantVerdict { InvariantId = group.Key, Status = VerdictStatus.NotCheckable, Reason = "missing events " + string.Join(", ", missing), Checked = chk, SkippedUnknown = skip });
                continue;
            }
            findings.AddRange(mine);
            string? reason = null;
            if (chk == 0 && skip > 0) { verdicts.Add(new InvariantVerdict { InvariantId = group.Key, Status = VerdictStatus.NotCheckable, Reason = $"state unknown for all {skip} cases (data loss or capture started mid-migration)", SkippedUnknown = skip }); continue; }
            if (skip > 0) reason = $"{skip} cases skipped: state unknown";
            if (chk == 0 && nf == 0) reason = "nothing to check in this capture";
            verdicts.Add(new InvariantVerdict { InvariantId = group.Key, Status = nf > 0 ? VerdictStatus.Fail : VerdictStatus.Pass, Reason = reason, Findings = nf, Checked = chk, SkippedUnknown = skip });
        }
        foreach (var id in Catalog.Invariants().Where(i => !i.AppliesTo(Era)).Select(i => i.Id).Distinct())
            if (!verdicts.Any(v => v.InvariantId == id))
                verdicts.Add(new InvariantVerdict { InvariantId = id, Status = VerdictStatus.NotApplicable, Reason = $"does not apply to {Era}" });
        return new AuditResult
        {
            Source = source, Era = Era, EraForced = eraForced, KernelRelease = release, Events = State.Events, DataLossEvents = State.DataLoss,
            Findings = findings.OrderBy(f => f.Timestamp).ThenBy(f => f.Evidence.Length > 0 ? f.Evidence[^1].Source : 0).ToArray(),
            Verdicts = verdicts.OrderBy(v => v.InvariantId, StringComparer.Ordinal).ToArray(),
            Memcgs = State.Memcgs.Values.Where(m => m.Updates != 0 || m.CounterDelta != 0 || m.ImpliedDelta != 0)
                .OrderBy(m => m.Id).Select(m => new MemcgSummary { Memcg = m.Id, CounterDelta = m.CounterDelta, ImpliedDelta = m.ImpliedDelta, Tainted = m.Tainted }).ToArray(),
        };
    }
}
