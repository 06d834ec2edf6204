using Replayer.Core.Domain;

namespace Replayer.Replay.SeedEra;

/// <summary>Shared helpers of the seed-era invariants.</summary>
static class Seed
{
    public static bool Used(ulong pcflags) => (pcflags & PcgFlags.Used) != 0;
    public static string Hex(ulong v) => "0x" + v.ToString("x");
    public static string PageText(ReplayState s, ulong pfn) => s.PageOrNull(pfn)?.ToString() ?? "pfn " + Hex(pfn) + " unknown";
}

/// <summary>
/// I1 (seed era): FILE_MAPPED conservation per memcg. Two sharp checks:
/// <list type="bullet">
/// <item><b>unmatched-decrement</b>: a −1 applied to memcg M for page p is illegal unless p's last +1
/// was counted to M (2.6.3x <c>mem_cgroup_update_file_mapped</c> does not check it).</item>
/// <item><b>lost-increment</b>: a file page whose charge is committed while it is mapped and without
/// PCG_FILE_MAPPED makes M.FILE_MAPPED miss a mapped page (its 0→1 +1 was dropped because the page
/// was not PCG_USED yet: interleavings A and B of kernel-spec §1.6).</item>
/// </list>
/// </summary>
public sealed class FileMappedConservationSeed : IInvariant
{
    public string Id => "file-mapped-conservation";
    public string Title => "FILE_MAPPED conservation per memcg (seed era: every −1 matches a +1 counted to the same memcg)";
    public bool AppliesTo(Era era) => era.IsSeed();

    public IEnumerable<Requirement> Requires(Era era) =>
    [
        new(DomainKind.UpdateFileMapped, "mem_cgroup_update_file_mapped", "rt:mem_cgroup_update_file_mapped"),
        new(DomainKind.RmapAdd, "page_add_file_rmap", "rt:page_add_file_rmap"),
        new(DomainKind.CommitCharge, "__mem_cgroup_commit_charge", "rt:__mem_cgroup_commit_charge"),
    ];

    public void Before(DomainEvent e, ReplayContext ctx)
    {
        var s = ctx.State;
        switch (e)
        {
            case UpdateFileMappedEvent { Val: < 0 } u when Seed.Used(u.PcFlags) && u.Memcg != 0 && u.Page.HasPfn:
            {
                var sp = SeedState.Of(s).Pages.GetValueOrDefault(u.Page.Pfn);
                var plus = sp?.Plus ?? LastPlus.Unknown;
                if (plus == LastPlus.Unknown) { ctx.Skip(this); return; }
                if (plus == LastPlus.Counted && sp!.PlusMemcg == u.Memcg) { ctx.Checked(this); return; }
                string why = plus switch
                {
                    LastPlus.Dropped => "its last +1 was dropped (page not PCG_USED at the 0->1 map)",
                    LastPlus.Counted => "its last +1 was counted to memcg " + Seed.Hex(sp!.PlusMemcg),
                    _ => "no +1 was counted since the page was allocated",
                };
                ctx.Checked(this);
                ctx.Report(this, ReplayContext.MakeFinding(u,
                    $"unmatched-decrement: FILE_MAPPED -1 for pfn {Seed.Hex(u.Page.Pfn)} applied to memcg {Seed.Hex(u.Memcg)} but {why}",
                    [u.Page.Pfn], u.Memcg, [sp?.PlusEvent, u], Seed.PageText(s, u.Page.Pfn)));
                break;
            }
            case CommitChargeEvent c when !Seed.Used(c.PcFlags) && c.Page.HasPfn
                                          && c.Ctype is SeedEraAdapter.CtypeCache or SeedEraAdapter.CtypeShmem:
            {
                var p = s.PageOrNull(c.Page.Pfn);
                if (p?.Mapcount is not { } mc) { ctx.Skip(this); return; }
                ctx.Checked(this);
                if (mc < 0 || (c.PcFlags & PcgFlags.FileMapped) != 0) return;
                var sp = SeedState.Of(s).Pages.GetValueOrDefault(c.Page.Pfn);
                ctx.Report(this, ReplayContext.MakeFinding(c,
                    $"lost-increment: file pfn {Seed.Hex(c.Page.Pfn)} committed to memcg {Seed.Hex(c.Memcg)} while mapped (mapcount {mc + 1}) without PCG_FILE_MAPPED: its 0->1 FILE_MAPPED +1 was dropped",
                    [c.Page.Pfn], c.Memcg, [sp?.PlusEvent, c], Seed.PageText(s, c.Page.Pfn)));
                break;
            }
        }
    }
}

/// <summary>
/// I2 (seed era): for a migration old→new that succeeds with a charged old page, the commit of new's
/// charge must precede the first rmap add on new (the remap, or a fault that finds new in the page
/// cache / swap cache), and must go to the old page's memcg.
/// </summary>
public sealed class CommitBeforeRemapSeed : IInvariant
{
    public string Id => "commit-before-remap";
    public string Title => "the new page's charge is committed before its first rmap add (seed era)";
    public bool AppliesTo(Era era) => era.IsSeed();

    public IEnumerable<Requirement> Requires(Era era) =>
    [
        new(DomainKind.PrepareMigration, "mem_cgroup_prepare_migration", "rt:mem_cgroup_prepare_migration"),
        new(DomainKind.CommitCharge, "__mem_cgroup_commit_charge", "rt:__mem_cgroup_commit_charge"),
        new(DomainKind.RmapAdd, "page_add_file_rmap", "rt:page_add_file_rmap"),
        new(DomainKind.EndMigration, "mem_cgroup_end_migration", "rt:mem_cgroup_end_migration"),
    ];

    public void Before(DomainEvent e, ReplayContext ctx)
    {
        var s = ctx.State;
        var x = SeedState.Of(s);
        switch (e)
        {
            case RmapAddEvent r when r.Page.HasPfn:
            {
                var at = s.AttemptOfDst(r.Page.Pfn);
                var sa = x.AttemptOrNull(at);
                if (sa == null || sa.Mem == 0 || !sa.PrepareOk || sa.NewCommitted || sa.FirstAddBeforeCommit != null) return;
                if (at!.Tainted) { ctx.Skip(this); return; }
                sa.FirstAddBeforeCommit = r;
                if (sa.Success == true) Report(ctx, at!, sa);
                break;
            }
            case CommitChargeEvent c when c.Page.HasPfn && !Seed.Used(c.PcFlags):
            {
                var at = s.AttemptOfDst(c.Page.Pfn);
                var sa = x.AttemptOrNull(at);
                if (sa == null || sa.Mem == 0 || sa.NewCommitted) return;
                if (c.Memcg != sa.Mem)
                    ctx.Report(this, ReplayContext.MakeFinding(c,
                        $"wrong-memcg: new pfn {Seed.Hex(c.Page.Pfn)} committed to memcg {Seed.Hex(c.Memcg)}, old pfn {Seed.Hex(at!.SrcPfn)} was charged to {Seed.Hex(sa.Mem)}",
                        [c.Page.Pfn, at.SrcPfn], c.Memcg, [sa.Prepare, c]));
                break;
            }
        }
    }

    public void After(DomainEvent e, ReplayContext ctx)
    {
        var s = ctx.State;
        var x = SeedState.Of(s);
        MigrationAttempt? at = e switch
        {
            FunctionReturnEvent { Function: "move_to_new_page" } => x.LastMoveReturned,
            EndMigrationEvent en when en.OldPage.HasPfn => s.AttemptOfSrc(en.OldPage.Pfn),
            _ => null,
        };
        var sa = x.AttemptOrNull(at);
        if (sa == null || sa.Mem == 0 || !sa.PrepareOk || sa.Success != true || sa.I2Reported) return;
        if (at!.Tainted) { sa.I2Reported = true; ctx.Skip(this); return; }
        if (sa.FirstAddBeforeCommit != null) Report(ctx, at, sa);
        else if (e is EndMigrationEvent) ctx.Checked(this);
    }

    void Report(ReplayContext ctx, MigrationAttempt at, SeedAttempt sa)
    {
        sa.I2Reported = true;
        ctx.Checked(this);
        var r = sa.FirstAddBeforeCommit!;
        ctx.Report(this, ReplayContext.MakeFinding(r,
            $"remap-before-commit: new pfn {Seed.Hex(at.DstPfn)} (old {Seed.Hex(at.SrcPfn)}) gets its first rmap add ({r.Function}) before its charge to memcg {Seed.Hex(sa.Mem)} is committed",
            [at.DstPfn, at.SrcPfn], sa.Mem, [sa.Prepare, r, at.OutcomeEvent]));
    }
}

/// <summary>
/// I3 (seed era): while a migration holds the old page (after a successful prepare, before
/// <c>mem_cgroup_end_migration</c>) no uncharge of the old page may take effect (2.6.35 holds
/// PCG_MIGRATION on anon pages for that); a page must not be freed with PCG_MIGRATION set.
/// Whether an uncharge took effect is read from the page's next <c>pcflags</c> (swap-cache pages
/// return early and stay PCG_USED).
/// </summary>
public sealed class MigrationFlagLifetimeSeed : IInvariant
{
    readonly Dictionary<ulong, (UnchargeCommonEvent Event, SeedAttempt Attempt)> _pending = [];
    /// <summary>Migrations whose end_migration ran: checked at the next event on either page.</summary>
    readonly Dictionary<ulong, (EndMigrationEvent End, bool Anon)> _ended = [];

    public string Id => "migration-flag-lifetime";
    public string Title => "no uncharge of the old page between prepare and end_migration; PCG_MIGRATION cleared before free (seed era)";
    public bool AppliesTo(Era era) => era.IsSeed();

    public IEnumerable<Requirement> Requires(Era era) =>
    [
        new(DomainKind.PrepareMigration, "mem_cgroup_prepare_migration", "rt:mem_cgroup_prepare_migration"),
        new(DomainKind.EndMigration, "mem_cgroup_end_migration", "rt:mem_cgroup_end_migration"),
        new(DomainKind.UnchargeCommon, "__mem_cgroup_uncharge_common", "rt:__mem_cgroup_uncharge_common"),
    ];

    public void Before(DomainEvent e, ReplayContext ctx)
    {
        var s = ctx.State;
        // a later pcflags observation tells whether a suspicious uncharge took effect
        (ulong pfn, ulong flags)? seen = e switch
        {
            CommitChargeEvent c when c.Page.HasPfn => (c.Page.Pfn, c.PcFlags),
            UnchargeCommonEvent u when u.Page.HasPfn => (u.Page.Pfn, u.PcFlags),
            UnchargePageEvent u when u.Page.HasPfn => (u.Page.Pfn, u.PcFlags),
            UpdateFileMappedEvent u when u.Page.HasPfn => (u.Page.Pfn, u.PcFlags),
            PrepareMigrationEvent p when p.Page.HasPfn => (p.Page.Pfn, p.PcFlags),
            _ => null,
        };
        if (e is DataLossEvent)
        {
            // the events that would explain a later pcflags change may be among the lost ones
            if (_pending.Count > 0) ctx.Skip(this, _pending.Count);
            _pending.Clear();
            _ended.Clear();
            return;
        }
        if (seen is { } o && _pending.Remove(o.pfn, out var pend))
        {
            var un = pend.Event;
            // registered while prepare had not returned (no kretprobe yet): only a prepare that succeeded opens the window
            if (!pend.Attempt.PrepareOk) return;
            ctx.Checked(this);
            if (!Seed.Used(o.flags))
                ctx.Report(this, ReplayContext.MakeFinding(un,
                    $"uncharged-during-migration: old pfn {Seed.Hex(o.pfn)} uncharged (ctype {un.Ctype}) between mem_cgroup_prepare_migration and mem_cgroup_end_migration",
                    [o.pfn], un.Memcg, [pend.Attempt.Prepare, un, e]));
        }

        if (_ended.Count > 0)
        {
            ulong? touched = e switch
            {
                PutbackLruPageEvent pb when pb.Page.HasPfn => pb.Page.Pfn,
                PageFreeEvent f when f.Page.HasPfn => f.Page.Pfn,
                PrepareMigrationEvent p when p.Page.HasPfn => p.Page.Pfn,
                _ => null,
            };
            if (touched is { } t && _ended.TryGetValue(t, out var done)) CheckAfterEnd(ctx, done.End, done.Anon, e);
        }

        switch (e)
        {
            case UnchargeCommonEvent u when u.Page.HasPfn && Seed.Used(u.PcFlags):
            {
                var at = s.AttemptOfSrc(u.Page.Pfn);
                var x = SeedState.Of(s);
                var sa = x.AttemptOrNull(at);
                if (sa == null) return;
                // inside the window, or prepare has not returned yet (decided when it is known)
                bool preparing = !sa.PrepareOk && sa.End == null && sa.Mem != 0 && x.PrepareInFlight.TryGetValue(at!.Pid, out var inflight) && ReferenceEquals(inflight, at);
                if (!sa.Open && !preparing) return;
                if (at!.Tainted) { ctx.Skip(this); return; }
                bool mappedCheck = u.Ctype is SeedEraAdapter.CtypeMapped or SeedEraAdapter.CtypeDrop;
                if (mappedCheck && ((u.PcFlags & PcgFlags.Migration) != 0 || u.Mapcount >= 0)) { ctx.Checked(this); return; }
                _pending[u.Page.Pfn] = (u, sa);
                break;
            }
            case PageFreeEvent f when f.IsActualFree && f.Page.HasPfn:
            {
                _pending.Remove(f.Page.Pfn);
                var p = s.PageOrNull(f.Page.Pfn);
                if (p?.PcgFlags is not { } pf) { ctx.Skip(this); return; }
                ctx.Checked(this);
                if ((pf & PcgFlags.Migration) != 0)
                    ctx.Report(this, ReplayContext.MakeFinding(f,
                        $"freed-with-migration-flag: pfn {Seed.Hex(f.Page.Pfn)} freed while PCG_MIGRATION is set",
                        [f.Page.Pfn], p.Memcg, [f], p.ToString()));
                break;
            }
        }
    }

    public void After(DomainEvent e, ReplayContext ctx)
    {
        if (e is not EndMigrationEvent { Mem: not 0 } en || !en.OldPage.HasPfn || !en.NewPage.HasPfn) return;
        var sa = SeedState.Of(ctx.State).AttemptOrNull(ctx.State.AttemptOfSrc(en.OldPage.Pfn));
        bool? anon = sa?.Prepare?.Anon ?? ctx.State.PageOrNull(en.OldPage.Pfn)?.Anon;
        if (anon is not { } a) { ctx.Skip(this); return; }
        _ended[en.OldPage.Pfn] = (en, a);
        _ended[en.NewPage.Pfn] = (en, a);
    }

    /// <summary>After end_migration: a file migration leaves exactly one of old/new PCG_USED, an anon one at most one.</summary>
    void CheckAfterEnd(ReplayContext ctx, EndMigrationEvent en, bool anon, DomainEvent at)
    {
        _ended.Remove(en.OldPage.Pfn);
        _ended.Remove(en.NewPage.Pfn);
        var s = ctx.State;
        if (s.PageOrNull(en.OldPage.Pfn)?.PcgFlags is not { } of || s.PageOrNull(en.NewPage.Pfn)?.PcgFlags is not { } nf) { ctx.Skip(this); return; }
        ctx.Checked(this);
        bool uo = Seed.Used(of), un = Seed.Used(nf);
        if (anon ? !(uo && un) : uo != un) return;
        string what = uo && un ? "both old and new are" : "neither old nor new is";
        ctx.Report(this, ReplayContext.MakeFinding(at,
            $"used-after-end: after mem_cgroup_end_migration {what} PCG_USED ({(anon ? "anon: at most one" : "file: exactly one")} must be)",
            [en.OldPage.Pfn, en.NewPage.Pfn], en.Mem, [en, at], Seed.PageText(s, en.OldPage.Pfn), Seed.PageText(s, en.NewPage.Pfn)));
    }

    public void End(ReplayContext ctx)
    {
        if (_pending.Count > 0) ctx.Skip(this, _pending.Count);
        _pending.Clear();
        if (_ended.Count > 0) ctx.Skip(this, _ended.Count / 2);
        _ended.Clear();
    }
}

/// <summary>I4 (seed era, commit 003): <c>try_to_unmap</c> from the migration path (TTU_MIGRATION)
/// must not see <c>page-&gt;mapping == NULL</c> (swap cache read in, no rmap yet).</summary>
public sealed class UnmapNullMappingSeed : IInvariant
{
    public string Id => "unmap-null-mapping";
    public string Title => "try_to_unmap is never called on a page whose mapping is NULL (seed era)";
    public bool AppliesTo(Era era) => era.IsSeed();

    public IEnumerable<Requirement> Requires(Era era) => [new(DomainKind.Unmap, "try_to_unmap", "rt:try_to_unmap")];

    public void Before(DomainEvent e, ReplayContext ctx)
    {
        if (e is not UnmapEvent { Function: "try_to_unmap" } u || (u.TtuFlags & 0xff) != SeedEraAdapter.TtuMigration || !u.Page.HasPfn) return;
        if (u.Page.Mapping is not { } mapping) { ctx.Skip(this); return; }
        ctx.Checked(this);
        if (mapping != 0) return;
        ctx.Report(this, ReplayContext.MakeFinding(u,
            $"unmap-null-mapping: try_to_unmap (flags {Seed.Hex(u.TtuFlags)}) on pfn {Seed.Hex(u.Page.Pfn)} whose mapping is NULL",
            [u.Page.Pfn], null, [SeedState.Of(ctx.State).AttemptOrNull(ctx.State.AttemptOfSrc(u.Page.Pfn))?.Prepare, u], Seed.PageText(ctx.State, u.Page.Pfn)));
    }
}

/// <summary>
/// I5 (seed era): the anon_vma of an anon page under migration must stay alive until its
/// <c>remove_migration_ptes</c> walk: a walk of an anon_vma freed meanwhile is a use-after-free
/// (2.6.22 without RCU, 2.6.34 without the external refcount); an anon_vma must not be freed while
/// pinned; an unmapped swap-cache page (anon_vma not pinned) must not be remapped at all.
/// </summary>
public sealed class AnonVmaLifetimeSeed : IInvariant
{
    public string Id => "anon-vma-lifetime";
    public string Title => "anon_vma alive (pinned) from unmap until the last remove_migration_ptes (seed era)";
    public bool AppliesTo(Era era) => era.IsSeed();

    public IEnumerable<Requirement> Requires(Era era) =>
    [
        new(DomainKind.RemoveMigrationPtes, "remove_migration_ptes", "rt:remove_migration_ptes"),
        new(DomainKind.AnonVma, "anon_vma_free", "rt:anon_vma_free"),
    ];

    public void Before(DomainEvent e, ReplayContext ctx)
    {
        var s = ctx.State;
        var x = SeedState.Of(s);
        switch (e)
        {
            case AnonVmaEvent { Op: AnonVmaOp.Free } f:
            {
                ulong av = f.AnonVmaPtr & ~1UL;
                if (x.AnonVmaTainted) { ctx.Skip(this); return; }
                ctx.Checked(this);
                if (x.Pins.GetValueOrDefault(av) <= 0) return;
                var pfns = x.Pages.Where(kv => kv.Value.AnonVma == av && s.AttemptOfSrc(kv.Key) != null).Select(kv => kv.Key).OrderBy(p => p).ToArray();
                ctx.Report(this, ReplayContext.MakeFinding(f,
                    $"freed-while-pinned: anon_vma {Seed.Hex(av)} freed while {x.Pins[av]} migration pin(s) hold it",
                    pfns, null, [f]));
                break;
            }
            case RemoveMigrationPtesEvent r when r.Src.HasPfn:
            {
                var sp = x.Pages.GetValueOrDefault(r.Src.Pfn);
                if (sp?.AnonVma is not { } av)
                {
                    if (s.PageOrNull(r.Src.Pfn)?.Anon == true) ctx.Skip(this);
                    return;
                }
                var sa = x.AttemptOrNull(s.AttemptOfSrc(r.Src.Pfn));
                if (x.FreedAnonVmas.Contains(av))
                {
                    if (x.AnonVmaTainted) { ctx.Skip(this); return; }
                    ctx.Checked(this);
                    ctx.Report(this, ReplayContext.MakeFinding(r,
                        $"walk-freed-anon-vma: remove_migration_ptes walks anon_vma {Seed.Hex(av)} of old pfn {Seed.Hex(r.Src.Pfn)}, freed during the migration",
                        [r.Src.Pfn], null, [sa?.Prepare, r], Seed.PageText(s, r.Src.Pfn)));
                    return;
                }
                if (x.AnonVmaTainted || sa?.UnmappedAtStart is not { } unmapped) { ctx.Skip(this); return; }
                ctx.Checked(this);
                if (unmapped && !sa.Pinned)
                    ctx.Report(this, ReplayContext.MakeFinding(r,
                        $"remap-unpinned-swapcache: remove_migration_ptes on old pfn {Seed.Hex(r.Src.Pfn)}, unmapped swap-cache page whose anon_vma {Seed.Hex(av)} is not pinned",
                        [r.Src.Pfn], null, [sa.Prepare, r], Seed.PageText(s, r.Src.Pfn)));
                break;
            }
        }
    }
}

/// <summary>I6 in the seed era: 2.6.34/2.6.35 have no migrate tracepoints (no migration-pte events),
/// so the verdict is "not checkable" unless a capture declares or shows them.</summary>
public sealed class MigrationEntryBalanceSeed : IInvariant
{
    public string Id => "migration-entry-balance";
    public string Title => "every set_migration_pte is matched by one remove_migration_pte (needs ≥ 5.18 tracepoints)";
    public bool AppliesTo(Era era) => era.IsSeed();

    public IEnumerable<Requirement> Requires(Era era) =>
    [
        new(DomainKind.SetMigrationPte, null, "migrate:set_migration_pte"),
        new(DomainKind.RemoveMigrationPte, null, "migrate:remove_migration_pte"),
    ];
}

/// <summary>I7 in the seed era: no <c>mm_migrate_pages</c> tracepoint exists in 2.6.35: not checkable.</summary>
public sealed class MigrateSummaryConsistencySeed : IInvariant
{
    public string Id => "migrate-summary-consistency";
    public string Title => "mm_migrate_pages totals match per-page outcomes (needs the migrate tracepoints)";
    public bool AppliesTo(Era era) => era.IsSeed();

    public IEnumerable<Requirement> Requires(Era era) =>
    [
        new(DomainKind.MigratePagesStart, null, "migrate:mm_migrate_pages_start"),
        new(DomainKind.MigratePagesEnd, null, "migrate:mm_migrate_pages"),
    ];
}
