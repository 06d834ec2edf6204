using Replayer.Core.Domain;

namespace Replayer.Replay.Invariants;

/// <summary>
/// I6 (≥ 5.18): inside one <c>mm_migrate_pages_start</c> … <c>mm_migrate_pages</c> window of a task,
/// every <c>set_migration_pte(addr, src)</c> is matched by a <c>remove_migration_pte(addr, src|dst)</c>.
/// Removes without a set are legitimate (fork duplicates entries into the child) and not reported;
/// windows with data loss, or that started before the capture, are not checked.
/// </summary>
public sealed class MigrationEntryBalance : IInvariant
{
    public string Id => "migration-entry-balance";
    public string Title => "every migration entry set is removed (I6)";
    public bool AppliesTo(Era era) => era.IsModern();

    public IEnumerable<Requirement> Requires(Era era)
    {
        yield return new Requirement(DomainKind.SetMigrationPte, null, "migrate:set_migration_pte");
        yield return new Requirement(DomainKind.RemoveMigrationPte, null, "migrate:remove_migration_pte");
        yield return new Requirement(DomainKind.MigratePagesStart, null, "migrate:mm_migrate_pages_start");
        yield return new Requirement(DomainKind.MigratePagesEnd, null, "migrate:mm_migrate_pages");
    }

    public void Before(DomainEvent e, ReplayContext ctx)
    {
        if (e is not MigratePagesEndEvent end) return;
        if (!ctx.State.Windows.TryGetValue(end.Pid, out var w)) { ctx.Skip(this); return; }
        if (w.Tainted) { ctx.Skip(this); return; }
        ctx.Checked(this);
        foreach (var ((addr, pfn), (count, first)) in w.OpenEntries.OrderBy(kv => kv.Value.First.Source))
        {
            var st = ctx.State.PageOrNull(pfn);
            var at = st?.Attempt;
            ctx.Report(this, ReplayContext.MakeFinding(end,
                $"{count} migration entr{(count == 1 ? "y" : "ies")} for pfn 0x{pfn:x} at addr 0x{addr:x} set in this migrate_pages call never removed",
                at != null && at.DstPfn != PageRef.NoPfn ? [pfn, at.DstPfn] : [pfn], st?.Memcg,
                [w.Start, first, at?.MoveEvent, at?.OutcomeEvent, end], st?.ToString(), st?.ToString()));
        }
    }
}
