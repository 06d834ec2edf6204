using Replayer.Core.Domain;

namespace Replayer.Replay.Invariants;

/// <summary>
/// I2 (6.x): for a migration src→dst, the commit of dst's charge (<c>mem_cgroup_migrate</c>) must
/// precede the first rmap add / <c>remove_migration_pte</c> on dst, and must use src's memcg. An
/// uncharged src (memcg_data 0) leaves dst uncharged: consistent, not a violation.
/// </summary>
public sealed class CommitBeforeRemap : IInvariant
{
    public string Id => "commit-before-remap";
    public string Title => "commit of the new page's charge before its remap (I2)";
    public bool AppliesTo(Era era) => era.IsModern();

    public IEnumerable<Requirement> Requires(Era era)
    {
        yield return new Requirement(DomainKind.MemcgMigrate, "mem_cgroup_migrate", "kprobe mem_cgroup_migrate");
        yield return new Requirement(DomainKind.RemoveMigrationPte, null, "migrate:remove_migration_pte");
        yield return new Requirement(DomainKind.MoveToNewFolio, "move_to_new_folio", "kprobe move_to_new_folio");
    }

    const uint Done = 1u << 2;

    public void Before(DomainEvent e, ReplayContext ctx)
    {
        switch (e)
        {
            case MigrationPteEvent { Set: false } pte:
                Check(ctx, e, pte.Pfn, null);
                break;
            case RmapAddEvent r when r.Page.HasPfn:
                Check(ctx, e, r.Page.Pfn, r.Page.Memcg);
                break;
        }
    }

    void Check(ReplayContext ctx, DomainEvent e, ulong pfn, ulong? fetchedMemcg)
    {
        var at = ctx.State.AttemptOfDst(pfn);
        if (at == null || at.SrcPfn == pfn || (at.Marks & Done) != 0) return;
        if (at.Tainted) { at.Marks |= Done; ctx.Skip(this); return; }
        var srcMemcg = at.SrcMemcg ?? ctx.State.PageOrNull(at.SrcPfn)?.Memcg;
        if (!at.Committed)
        {
            if (srcMemcg is null) { ctx.Skip(this); at.Marks |= Done; return; }
            at.Marks |= Done;
            ctx.Checked(this);
            if (srcMemcg == 0) return;
            var dst = ctx.State.PageOrNull(pfn);
            ctx.Report(this, ReplayContext.MakeFinding(e,
                $"dst pfn 0x{pfn:x} of migration from pfn 0x{at.SrcPfn:x} is mapped before mem_cgroup_migrate committed its charge (memcg 0x{srcMemcg:x})",
                [at.SrcPfn, pfn], srcMemcg, [at.StartEvent, at.MoveEvent, e], dst?.ToString(), dst?.ToString()));
            return;
        }
        // Committed before the remap: the order holds. A file page's remap shows its rmap add first (checked
        // below with the memcg it was charged to); an anon page's shows only the migration PTE.
        at.Marks |= Done;
        ctx.Checked(this);
        if (e is not RmapAddEvent) return;
        var committed = (at.CommitEvent as MemcgMigrateEvent)?.Old.Memcg ?? srcMemcg;
        if (fetchedMemcg is { } got && committed is { } want && got != want)
            ctx.Report(this, ReplayContext.MakeFinding(e,
                $"dst pfn 0x{pfn:x} was committed to memcg 0x{got:x}, not src pfn 0x{at.SrcPfn:x}'s memcg 0x{want:x}",
                [at.SrcPfn, pfn], want, [at.CommitEvent, e]));
    }
}
