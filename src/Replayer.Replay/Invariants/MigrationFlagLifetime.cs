using Replayer.Core.Domain;

namespace Replayer.Replay.Invariants;

/// <summary>
/// I3, 6.x analogues of the PCG_MIGRATION lifetime: <c>mem_cgroup_migrate</c> must find dst
/// uncharged; 6.12+ transfers the charge, so old must show memcg_data 0 afterwards (exactly one of
/// old/new charged); 6.1 force-charges and old keeps memcg_data until freed, so old must be
/// uncharged (<c>__mem_cgroup_uncharge</c>, or a batch uncharge) before <c>mm_page_free</c>;
/// a dst freed after a failed attempt must be uncharged.
/// </summary>
public sealed class MigrationFlagLifetime : IInvariant
{
    public string Id => "migration-flag-lifetime";
    public string Title => "PCG_MIGRATION lifetime / memcg_data ownership across migration (I3)";
    public bool AppliesTo(Era era) => era.IsModern();

    public IEnumerable<Requirement> Requires(Era era)
    {
        yield return new Requirement(DomainKind.MemcgMigrate, "mem_cgroup_migrate", "kprobe mem_cgroup_migrate");
        yield return new Requirement(DomainKind.MemcgUncharge, "__mem_cgroup_uncharge", "kprobe __mem_cgroup_uncharge");
        yield return new Requirement(DomainKind.PageFree, null, "kmem:mm_page_free");
    }

    /// <summary>Old pages after the commit, with their commit event.</summary>
    readonly Dictionary<ulong, MemcgMigrateEvent> _old = [];

    public void Before(DomainEvent e, ReplayContext ctx)
    {
        switch (e)
        {
            case DataLossEvent:
                foreach (var _ in _old) ctx.Skip(this);
                _old.Clear();
                break;
            case MemcgMigrateEvent m:
            {
                ctx.Checked(this);
                if (m.New.Memcg is { } nm && nm != 0)
                    ctx.Report(this, ReplayContext.MakeFinding(m, $"mem_cgroup_migrate: new pfn 0x{m.New.Pfn:x} is already charged (memcg_data 0x{nm:x})",
                        Pfns(m.Old, m.New), nm, [m]));
                if (m.Old.HasPfn && m.Old.Memcg is { } om && om != 0) _old[m.Old.Pfn] = m;
                break;
            }
            case MemcgUnchargeEvent u when u.Folio.HasPfn && _old.Remove(u.Folio.Pfn, out var commit):
                ctx.Checked(this);
                if (ctx.Era != Era.Linux61 && u.Folio.Memcg is { } still && still != 0)
                    ctx.Report(this, ReplayContext.MakeFinding(u,
                        $"old pfn 0x{u.Folio.Pfn:x} still charged (memcg_data 0x{still:x}) after mem_cgroup_migrate transferred its charge: both old and new charged",
                        Pfns(commit.Old, commit.New), still, [commit, u]));
                break;
            case MemcgUnchargeBatchEvent:
                // the batch's folios are not named: every old page may have been uncharged by it
                _old.Clear();
                break;
            case PageFreeEvent f when f.IsActualFree:
            {
                if (_old.Remove(f.Page.Pfn, out var c))
                {
                    ctx.Checked(this);
                    if (ctx.Era == Era.Linux61)
                        ctx.Report(this, ReplayContext.MakeFinding(f,
                            $"old pfn 0x{f.Page.Pfn:x} freed while still charged (6.1 keeps memcg_data on old until it is uncharged, and no uncharge was seen)",
                            Pfns(c.Old, c.New), c.Old.Memcg, [c, f], ctx.State.PageOrNull(f.Page.Pfn)?.ToString()));
                }
                var st = ctx.State.PageOrNull(f.Page.Pfn);
                if (st?.Attempt is { } at && at.DstPfn == st.Pfn && at.Outcome == MigrationOutcome.Failed)
                {
                    if (st.Memcg is null) { ctx.Skip(this); break; }
                    ctx.Checked(this);
                    if (st.Memcg != 0)
                        ctx.Report(this, ReplayContext.MakeFinding(f, $"dst pfn 0x{st.Pfn:x} of a failed migration freed while charged (memcg 0x{st.Memcg:x})",
                            [at.SrcPfn, st.Pfn], st.Memcg, [at.MoveEvent, at.OutcomeEvent, f], st.ToString()));
                }
                break;
            }
            case PageAllocEvent a:
                _old.Remove(a.Page.Pfn);
                break;
        }
    }

    static ulong[] Pfns(PageRef a, PageRef b) => new[] { a, b }.Where(p => p.HasPfn).Select(p => p.Pfn).ToArray();
}
