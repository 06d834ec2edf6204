using Replayer.Core.Domain;

namespace Replayer.Replay.Invariants;

/// <summary>
/// I7 (≥ 5.13): the <c>mm_migrate_pages</c> totals agree with the per-folio outcomes seen in the
/// window: <c>nr_succeeded</c> ≥ pages of folios whose last attempt succeeded, and <c>nr_failed</c> ≥
/// pages of folios whose last attempt failed (folios freed under us succeed without any event, so
/// only lower bounds are checkable). Every dst allocated for a failed attempt must be freed before
/// the call returns (once, after any retries that reuse it).
/// </summary>
public sealed class MigrateSummaryConsistency : IInvariant
{
    public string Id => "migrate-summary-consistency";
    public string Title => "mm_migrate_pages totals match per-folio outcomes (I7)";
    public bool AppliesTo(Era era) => era.IsModern();

    public IEnumerable<Requirement> Requires(Era era)
    {
        yield return new Requirement(DomainKind.MigratePagesStart, null, "migrate:mm_migrate_pages_start");
        yield return new Requirement(DomainKind.MigratePagesEnd, null, "migrate:mm_migrate_pages");
        yield return new Requirement(DomainKind.MoveToNewFolio, "move_to_new_folio", "kprobe move_to_new_folio");
        yield return new Requirement(DomainKind.FunctionReturn, "move_to_new_folio", "kretprobe move_to_new_folio");
    }

    public void Before(DomainEvent e, ReplayContext ctx)
    {
        if (e is not MigratePagesEndEvent end) return;
        if (!ctx.State.Windows.TryGetValue(end.Pid, out var w) || w.Tainted) { ctx.Skip(this); return; }
        var last = new Dictionary<ulong, MigrationAttempt>();
        foreach (var a in w.Attempts) last[a.SrcPfn] = a;
        ulong ok = 0, failed = 0;
        var okEv = new List<DomainEvent?>();
        var failEv = new List<DomainEvent?>();
        foreach (var a in last.Values)
        {
            ulong pages = 1UL << Math.Clamp(a.Order, 0, 20);
            if (a.Outcome == MigrationOutcome.Success) { ok += pages; if (okEv.Count < 4) okEv.Add(a.OutcomeEvent); }
            else if (a.Outcome == MigrationOutcome.Failed) { failed += pages; if (failEv.Count < 4) failEv.Add(a.OutcomeEvent); }
        }
        ctx.Checked(this);
        if (end.Succeeded < ok)
            ctx.Report(this, ReplayContext.MakeFinding(end, $"mm_migrate_pages reports nr_succeeded={end.Succeeded} but {ok} pages were seen to migrate successfully in this call",
                [], null, [w.Start, .. okEv, end]));
        // every dst allocated for a failed attempt goes back to the allocator before migrate_pages returns;
        // retries of one src may reuse the dst (6.12 -EAGAIN), so a leak is reported once per dst pfn, for
        // the last failed attempt that used it
        var leaked = new Dictionary<ulong, MigrationAttempt>();
        foreach (var a in w.Attempts)
        {
            if (a.Outcome != MigrationOutcome.Failed || a.DstPfn == PageRef.NoPfn || a.DstFreed || a.Tainted) continue;
            leaked[a.DstPfn] = a;
        }
        foreach (var a in leaked.Values)
        {
            ctx.Report(this, ReplayContext.MakeFinding(end, $"dst pfn 0x{a.DstPfn:x} of a failed migration of pfn 0x{a.SrcPfn:x} was never freed in this migrate_pages call",
                [a.SrcPfn, a.DstPfn], a.SrcMemcg, [a.MoveEvent, a.OutcomeEvent, end]));
        }
        if (end.Failed < failed)
            ctx.Report(this, ReplayContext.MakeFinding(end, $"mm_migrate_pages reports nr_failed={end.Failed} but {failed} pages were seen to fail their last attempt in this call",
                [], null, [w.Start, .. failEv, end]));
    }
}
