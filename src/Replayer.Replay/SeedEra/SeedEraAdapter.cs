using Replayer.Core.Domain;

namespace Replayer.Replay.SeedEra;

/// <summary>
/// 2.6.34 / 2.6.35 adapter: maps the pinned 2.6.35-era vocabulary (capture-vocabulary.md) onto the
/// model. Pages are pfns; memcgs are opaque ids. page_cgroup flags are taken from every probe that
/// fetches them (<c>pcflags</c>, the value at entry) and advanced by the transitions whose effect is
/// certain (commit sets PCG_USED; an applied FILE_MAPPED update sets/clears PCG_FILE_MAPPED).
/// An attempt (one <c>unmap_and_move</c>) begins at <c>mem_cgroup_prepare_migration</c> (or at the
/// first <c>try_to_unmap</c>/<c>move_to_new_page</c> when memcg is off) and ends when the new page is
/// put back (<c>putback_lru_page(newpage)</c> ends every path of <c>unmap_and_move</c>) or freed.
/// </summary>
public sealed class SeedEraAdapter : IEraAdapter
{
    public const int CtypeMapped = 0, CtypeCache = 1, CtypeShmem = 2, CtypeForce = 3, CtypeSwapout = 4, CtypeDrop = 5;
    /// <summary><c>TTU_MIGRATION</c> in <c>enum ttu_flags</c> (action mask 0xff).</summary>
    public const ulong TtuMigration = 1;

    public IReadOnlyCollection<Era> Eras => Replay.Eras.Seed;

    public void Apply(DomainEvent e, ReplayState s)
    {
        var x = SeedState.Of(s);
        switch (e)
        {
            case DataLossEvent:
                s.DataLoss++;
                s.ForgetAll();
                foreach (var p in x.Pages.Values) { p.Plus = LastPlus.Unknown; p.AnonVma = null; }
                foreach (var a in x.Attempts.Values) { a.UnmappedAtStart = null; }
                x.FreedAnonVmas.Clear();
                x.Pins.Clear();
                x.AnonVmaTainted = true;
                x.PrepareInFlight.Clear();
                break;

            case PageAllocEvent al:
            {
                if (s.Pages.TryGetValue(al.Page.Pfn, out var old) && old.Attempt is { } stale) End(s, x, stale);
                s.Pages[al.Page.Pfn] = new PageState(al.Page.Pfn) { Alloc = AllocState.Allocated, Order = al.Order, Mapcount = -1, Memcg = 0, PcgFlags = 0 };
                x.Pages[al.Page.Pfn] = new SeedPage { Plus = LastPlus.None };
                break;
            }
            case PageFreeEvent f when f.IsActualFree:
                if (s.Pages.TryGetValue(f.Page.Pfn, out var freed))
                {
                    if (freed.Attempt is { } at) End(s, x, at);
                    s.Pages.Remove(f.Page.Pfn);
                }
                x.Pages.Remove(f.Page.Pfn);
                break;

            case PrepareMigrationEvent p:
            {
                var page = Known(s, p.Page);
                if (page == null) break;
                Observe(page, p.PcFlags);
                page.Anon ??= p.Anon;
                var at = s.BeginAttempt(p.Pid, page.Pfn, p);
                bool used = (p.PcFlags & PcgFlags.Used) != 0;
                at.SrcMemcg = used ? p.Memcg : 0;
                var sa = x.Attempt(at);
                sa.Mem = used ? p.Memcg : 0;
                sa.Anon = p.Anon;
                sa.Prepare = p;
                if (p.NewPage is { HasPfn: true } np) SetDst(s, at, np.Pfn);
                if (used && p.Anon && s.Era == Era.Seed2635) page.PcgFlags |= PcgFlags.Migration;
                x.PrepareInFlight[p.Pid] = at;
                break;
            }
            case FunctionReturnEvent r when r.Function == "mem_cgroup_prepare_migration":
            {
                if (!x.PrepareInFlight.Remove(r.Pid, out var at)) break;
                var sa = x.Attempt(at);
                if (r.Ret == 0)
                {
                    sa.PrepareOk = true;
                    sa.Open = sa.Mem != 0;
                }
                else
                {
                    at.Outcome = MigrationOutcome.Failed;
                    at.OutcomeEvent = r;
                    if (s.PageOrNull(at.SrcPfn) is { PcgFlags: { } pf } src) src.PcgFlags = pf & ~PcgFlags.Migration;
                }
                break;
            }
            case CommitChargeEvent c:
            {
                var page = Known(s, c.Page);
                if (page == null) break;
                bool wasUsed = (c.PcFlags & PcgFlags.Used) != 0;
                Observe(page, c.PcFlags);
                if (!wasUsed)
                {
                    page.PcgFlags = (c.PcFlags | PcgFlags.Used) & ~PcgFlags.Lock;
                    if (c.Ctype == CtypeMapped) page.PcgFlags &= ~PcgFlags.Cache; else page.PcgFlags |= PcgFlags.Cache;
                    page.Memcg = c.Memcg;
                    if (c.Ctype == CtypeMapped) page.Anon ??= true;
                    else if (c.Ctype is CtypeCache or CtypeShmem) x.Page(page.Pfn).NotSwapCache = true;
                    // a file page committed while mapped: the memcg now owns a mapped page
                    if (c.Ctype != CtypeMapped && page.IsMapped) s.Memcg(c.Memcg).ImpliedDelta += 1;
                }
                // 2.6.35 commits the new page inside prepare: without a newpage argument, that commit names it
                if (x.PrepareInFlight.TryGetValue(c.Pid, out var preparing) && preparing.SrcPfn != page.Pfn && preparing.DstPfn == PageRef.NoPfn)
                    SetDst(s, preparing, page.Pfn);
                if (s.AttemptOfDst(page.Pfn) is { } at && x.AttemptOrNull(at) is { } sa)
                {
                    sa.NewCommitted = true;
                    at.CommitEvent ??= c;
                }
                break;
            }
            case EndMigrationEvent en:
            {
                var at = en.OldPage.HasPfn ? s.AttemptOfSrc(en.OldPage.Pfn) : null;
                if (at != null && x.AttemptOrNull(at) is { } sa)
                {
                    sa.Open = false;
                    sa.End = en;
                    if (en.Mem != 0 && en.OldPage.HasPfn)
                    {
                        bool success = en.OldMapping == 0;
                        sa.Success ??= success;
                        if (at.Outcome == MigrationOutcome.Pending) { at.Outcome = success ? MigrationOutcome.Success : MigrationOutcome.Failed; at.OutcomeEvent = en; }
                    }
                }
                if (en.OldPage.HasPfn && s.PageOrNull(en.OldPage.Pfn) is { PcgFlags: { } pf } old) old.PcgFlags = pf & ~PcgFlags.Migration;
                // migrate_page_copy clears PageSwapCache on the old page; a failed new page never entered the swap cache
                if (en.OldPage.HasPfn && en.NewPage.HasPfn)
                    x.Page(en.OldMapping == 0 ? en.OldPage.Pfn : en.NewPage.Pfn).NotSwapCache = true;
                break;
            }
            case UnchargeCommonEvent u:
            {
                var page = Known(s, u.Page);
                if (page == null) break;
                Observe(page, u.PcFlags);
                page.Mapcount = u.Mapcount;
                if ((u.PcFlags & PcgFlags.Used) == 0) break;
                bool refused = u.Ctype is CtypeMapped or CtypeDrop && (u.Mapcount >= 0 || (u.PcFlags & PcgFlags.Migration) != 0);
                if (refused) break;
                // takes effect unless the page is in the swap cache (returns early): unknown until the next pcflags
                if (x.Pages.TryGetValue(page.Pfn, out var sp) && sp.NotSwapCache) page.PcgFlags &= ~PcgFlags.Used;
                else page.PcgFlags = null;
                break;
            }
            case UnchargePageEvent u:
            {
                var page = Known(s, u.Page);
                if (page == null) break;
                Observe(page, u.PcFlags);
                page.Mapcount = u.Mapcount;
                break;
            }
            case UpdateFileMappedEvent u:
            {
                var page = Known(s, u.Page);
                if (page == null) break;
                Observe(page, u.PcFlags);
                var sp = x.Page(page.Pfn);
                bool used = (u.PcFlags & PcgFlags.Used) != 0 && u.Memcg != 0;
                if (used)
                {
                    s.Memcg(u.Memcg).CounterDelta += u.Val;
                    if (u.Val > 0)
                    {
                        page.PcgFlags |= PcgFlags.FileMapped;
                        page.CountedMemcg = u.Memcg;
                        sp.Plus = LastPlus.Counted; sp.PlusMemcg = u.Memcg; sp.PlusEvent = u;
                    }
                    else
                    {
                        page.PcgFlags &= ~PcgFlags.FileMapped;
                        page.CountedMemcg = null;
                        sp.Plus = LastPlus.None; sp.PlusEvent = u;
                    }
                }
                else if (u.Val > 0) { sp.Plus = LastPlus.Dropped; sp.PlusEvent = u; page.CountedMemcg = null; }
                break;
            }
            case RmapAddEvent r:
            {
                var page = Known(s, r.Page);
                if (page == null) break;
                if (r.AnonFunction) page.Anon = true; else { page.Anon ??= false; x.Page(page.Pfn).NotSwapCache = true; }
                if (r.AnonVma is { } av && av != 0)
                {
                    x.Page(page.Pfn).AnonVma = av & ~1UL;
                    x.FreedAnonVmas.Remove(av & ~1UL);
                }
                if (r.Page.Mapcount is { } before)
                {
                    page.Mapcount = before + 1;
                    if (!r.AnonFunction && before == -1 && (page.PcgFlags & PcgFlags.Used) != 0 && page.Memcg is { } m && m != 0)
                        s.Memcg(m).ImpliedDelta += 1;
                }
                else page.Mapcount = null;
                break;
            }
            case RmapRemoveEvent r:
            {
                var page = Known(s, r.Page);
                if (page == null) break;
                if (r.Anon is { } an) page.Anon = an;
                if (r.Page.Mapcount is { } before)
                {
                    page.Mapcount = before - 1;
                    if (r.Anon == false && before == 0 && (page.PcgFlags & PcgFlags.Used) != 0 && page.Memcg is { } m && m != 0)
                        s.Memcg(m).ImpliedDelta -= 1;
                }
                else page.Mapcount = null;
                break;
            }
            case UnmapEvent u:
            {
                var page = Known(s, u.Page);
                if (page == null) break;
                if (u.Page.Mapping is { } mapping)
                {
                    if ((mapping & 1) != 0) { page.Anon = true; x.Page(page.Pfn).AnonVma = mapping & ~1UL; }
                    else if (mapping != 0) page.Anon = false;
                }
                if ((u.TtuFlags & 0xff) != TtuMigration) break;
                PreparedBy(x, u.Pid, page.Pfn);
                var at = s.AttemptOfSrc(page.Pfn);
                if (at == null || at.Pid != u.Pid || at.Outcome != MigrationOutcome.Pending) at = s.BeginAttempt(u.Pid, page.Pfn, u);
                var sa = x.Attempt(at);
                sa.UnmappedAtStart ??= page.Mapcount is { } mc ? mc < 0 : null;
                break;
            }
            case AnonVmaEvent av:
            {
                ulong ptr = av.AnonVmaPtr & ~1UL;
                switch (av.Op)
                {
                    case AnonVmaOp.Pin:
                        x.Pins[ptr] = x.Pins.GetValueOrDefault(ptr) + 1;
                        x.FreedAnonVmas.Remove(ptr);
                        if (av.Page is { HasPfn: true } pg)
                        {
                            PreparedBy(x, av.Pid, pg.Pfn);
                            x.Page(pg.Pfn).AnonVma = ptr;
                            if (s.AttemptOfSrc(pg.Pfn) is { } at)
                            {
                                var sa = x.Attempt(at);
                                sa.Pinned = true;
                                sa.UnmappedAtStart ??= false; // 2.6.35 pins only a mapped page
                            }
                        }
                        break;
                    case AnonVmaOp.Unpin:
                        if (x.Pins.TryGetValue(ptr, out var n)) { if (n <= 1) x.Pins.Remove(ptr); else x.Pins[ptr] = n - 1; }
                        break;
                    case AnonVmaOp.Free:
                        x.Pins.Remove(ptr);
                        x.FreedAnonVmas.Add(ptr);
                        break;
                }
                break;
            }
            case MoveToNewPageEvent mv:
            {
                if (!mv.Page.HasPfn) break;
                PreparedBy(x, mv.Pid, mv.Page.Pfn);
                var at = s.AttemptOfSrc(mv.Page.Pfn);
                if (at == null || at.Pid != mv.Pid || at.Outcome != MigrationOutcome.Pending) at = s.BeginAttempt(mv.Pid, mv.Page.Pfn, mv);
                at.MoveEvent = mv;
                if (mv.NewPage.HasPfn) SetDst(s, at, mv.NewPage.Pfn);
                s.InFlight[mv.Pid] = at;
                break;
            }
            case FunctionReturnEvent r when r.Function == "move_to_new_page":
            {
                x.LastMoveReturned = null;
                if (!s.InFlight.Remove(r.Pid, out var at)) break;
                x.LastMoveReturned = at;
                bool ok = r.Ret == 0;
                var sa = x.Attempt(at);
                sa.Success = ok;
                if (at.Outcome == MigrationOutcome.Pending || ok) { at.Outcome = ok ? MigrationOutcome.Success : MigrationOutcome.Failed; at.OutcomeEvent = r; }
                if (ok && at.DstPfn != PageRef.NoPfn)
                {
                    var src = s.Page(at.SrcPfn);
                    var dst = s.Page(at.DstPfn);
                    dst.Anon = src.Anon;
                    dst.File = src.File;
                    if (x.Pages.TryGetValue(at.SrcPfn, out var ss) && ss.AnonVma is { } av) x.Page(at.DstPfn).AnonVma = av;
                }
                break;
            }
            case PutbackLruPageEvent pb:
                if (pb.Page.HasPfn && s.AttemptOfDst(pb.Page.Pfn) is { } done) End(s, x, done);
                break;
        }
    }

    /// <summary>Without the kretprobe on <c>mem_cgroup_prepare_migration</c>: the migration going on
    /// to unmap or move the page means prepare returned 0 (on -ENOMEM unmap_and_move unlocks and stops).</summary>
    static void PreparedBy(SeedState x, int pid, ulong src)
    {
        if (!x.PrepareInFlight.TryGetValue(pid, out var at) || at.SrcPfn != src) return;
        x.PrepareInFlight.Remove(pid);
        var sa = x.Attempt(at);
        sa.PrepareOk = true;
        sa.Open = sa.Mem != 0;
    }

    static PageState? Known(ReplayState s, in PageRef r)
    {
        if (!r.HasPfn) return null;
        var p = s.Page(r.Pfn);
        if (p.Alloc == AllocState.Unknown) p.Alloc = AllocState.Allocated;
        return p;
    }

    /// <summary>pcflags at probe entry are authoritative for that moment (the LOCK bit is the probe's own lock).</summary>
    static void Observe(PageState p, ulong pcflags) => p.PcgFlags = pcflags & ~PcgFlags.Lock;

    static void SetDst(ReplayState s, MigrationAttempt at, ulong dst)
    {
        at.DstPfn = dst;
        var dp = s.Page(dst);
        if (dp.Alloc == AllocState.Unknown) dp.Alloc = AllocState.Allocated;
        dp.Attempt = at;
    }

    static void End(ReplayState s, SeedState x, MigrationAttempt at)
    {
        if (at.Outcome == MigrationOutcome.Pending) at.Outcome = MigrationOutcome.Unknown;
        s.EndAttempt(at);
        x.Attempts.Remove(at.Id);
        foreach (var kv in s.InFlight.Where(kv => ReferenceEquals(kv.Value, at)).ToList()) s.InFlight.Remove(kv.Key);
    }
}
