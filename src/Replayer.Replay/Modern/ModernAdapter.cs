using Replayer.Core.Domain;

namespace Replayer.Replay.Modern;

/// <summary>
/// 6.x adapter (6.1, 6.12, 6.13+): maps tracepoints and the capture-vocabulary kprobes onto the
/// model. Differences handled here: 6.1 force-charges the new folio and old keeps memcg_data until
/// freed; 6.12+ transfers it (old's becomes 0). Page-cache identity moves src→dst on a successful
/// move (no filemap event is emitted for it).
/// </summary>
public sealed class ModernAdapter : IEraAdapter
{
    public const int NrFileMapped = 18;

    public IReadOnlyCollection<Era> Eras => Replay.Eras.Modern;

    public void Apply(DomainEvent e, ReplayState s)
    {
        switch (e)
        {
            case DataLossEvent:
                s.DataLoss++;
                s.ForgetAll();
                break;
            case PageAllocEvent a:
            {
                if (s.Pages.TryGetValue(a.Page.Pfn, out var old) && old.Attempt is { } stale) s.EndAttempt(stale);
                var p = new PageState(a.Page.Pfn) { Alloc = AllocState.Allocated, Order = a.Order, Mapcount = -1, CountedMapped = false };
                s.Pages[a.Page.Pfn] = p;
                break;
            }
            case PageFreeEvent f when f.IsActualFree:
            {
                // every attempt of an open window that used this pfn as its dst has had it freed, whichever
                // attempt used it last (its page's attempt is only the latest, and may have ended already)
                foreach (var win in s.Windows.Values)
                    if (win.UnfreedDsts.Remove(f.Page.Pfn, out var users))
                        foreach (var u in users) u.DstFreed = true;
                if (s.Pages.TryGetValue(f.Page.Pfn, out var p))
                {
                    if (p.Attempt is { } named && named.DstPfn == p.Pfn) named.DstFreed = true;
                    if (p.Attempt is { } at && at.Outcome != MigrationOutcome.Pending) s.EndAttempt(at);
                    else if (p.Attempt is { } at2 && at2.DstPfn == p.Pfn) { at2.Outcome = MigrationOutcome.Failed; s.EndAttempt(at2); }
                    else if (p.Attempt is { } at3 && at3.Window == null) { at3.Outcome = MigrationOutcome.Unknown; s.EndAttempt(at3); } // no window will close it
                    s.Pages.Remove(f.Page.Pfn);
                }
                break;
            }
            case PageCacheEvent c:
            {
                var p = s.Page(c.Page.Pfn);
                if (c.Add) { p.File = new FileId(c.DevMajor, c.DevMinor, c.Ino, c.Index); p.Anon = false; if (p.Alloc == AllocState.Unknown) p.Alloc = AllocState.Allocated; }
                else p.File = null;
                break;
            }
            case MigratePagesStartEvent st:
                if (s.Windows.TryGetValue(st.Pid, out var prev)) CloseWindow(s, prev);
                s.Windows[st.Pid] = new MigrationWindow { Pid = st.Pid, Start = st };
                break;
            case MigratePagesEndEvent end:
                if (s.Windows.TryGetValue(end.Pid, out var w)) { w.End = end; CloseWindow(s, w); }
                break;
            case RmapAddEvent r:
                Rmap(s, r.Page, r.Nr, r.Compound, +1, r.AnonFunction);
                break;
            case RmapRemoveEvent r:
                Rmap(s, r.Page, r.Nr, r.Compound, -1, false);
                break;
            case LruvecStatEvent l:
            {
                var p = Learn(s, l.Page);
                if (l.Item == NrFileMapped && l.Page.Memcg is { } m && m != 0) { var mc = s.Memcg(m); mc.CounterDelta += l.Val; mc.Updates++; }
                if (l.Item == NrFileMapped && p != null && l.Val > 0) p.CountedMemcg = l.Page.Memcg;
                break;
            }
            case MemcgStatEvent ms when ms.Class == MemcgStatClass.ModMemcgLruvecState && ms.Item == NrFileMapped:
                { var mc = s.Memcg(ms.MemcgId); mc.CounterDelta += ms.Val; mc.Updates++; mc.IsCgroupId = true; }
                break;
            case UnmapEvent u:
            {
                var p = Learn(s, u.Page);
                if (u.ForMigration && p != null) s.BeginAttempt(u.Pid, p.Pfn, u);
                break;
            }
            case MigrationPteEvent pte:
                Pte(s, pte);
                break;
            case MoveToNewFolioEvent mv:
            {
                var at = Move(s, mv, mv.Src, mv.Dst);
                if (at != null) s.InFlight[mv.Pid] = at;
                break;
            }
            case MigrateFolioMoveEvent fm:
                Move(s, fm, fm.Src, fm.Dst);
                break;
            case MigrateMappingEvent mm:
                Learn(s, mm.Old);
                break;
            case FunctionReturnEvent ret when ret.Function is "move_to_new_folio":
                if (s.InFlight.Remove(ret.Pid, out var inflight)) Outcome(s, inflight, ret.Ret == 0, ret);
                break;
            case FunctionReturnEvent ret when ret.Function is "folio_migrate_mapping" or "__folio_migrate_mapping":
                if (ret.Ret != 0 && s.InFlight.TryGetValue(ret.Pid, out var att)) { att.Outcome = MigrationOutcome.Failed; att.OutcomeEvent = ret; }
                break;
            case MemcgMigrateEvent cm:
            {
                var oldP = Learn(s, cm.Old);
                var newP = cm.New.HasPfn ? s.Page(cm.New.Pfn) : null;
                MigrationAttempt? at = oldP?.Attempt ?? s.InFlight.GetValueOrDefault(cm.Pid);
                if (at != null && (oldP == null || at.SrcPfn == oldP.Pfn)) at.CommitEvent = cm;
                ulong? memcg = cm.Old.Memcg ?? oldP?.Memcg;
                if (newP != null) newP.Memcg = memcg;
                if (oldP != null && s.Era != Era.Linux61 && memcg is not null) oldP.Memcg = 0;
                break;
            }
            case MemcgUnchargeEvent un:
            {
                var p = Learn(s, un.Folio);
                if (p != null) p.Memcg = 0;
                break;
            }
            case MigrateFolioUndoSrcEvent undo:
            {
                var p = Learn(s, undo.Src);
                if (p?.Attempt is { } at && at.SrcPfn == p.Pfn && at.Outcome == MigrationOutcome.Pending) { at.Outcome = MigrationOutcome.Failed; at.OutcomeEvent = undo; }
                break;
            }
        }
    }

    static void CloseWindow(ReplayState s, MigrationWindow w)
    {
        foreach (var a in w.Attempts)
        {
            if (a.Outcome == MigrationOutcome.Pending) a.Outcome = MigrationOutcome.Unknown;
            s.EndAttempt(a);
        }
        s.Windows.Remove(w.Pid);
        foreach (var kv in s.InFlight.Where(kv => kv.Value.Window == w).ToList()) s.InFlight.Remove(kv.Key);
    }

    /// <summary>Updates a page from the struct-page fields a probe fetched. Null when the pfn is unknown.</summary>
    static PageState? Learn(ReplayState s, in PageRef r)
    {
        if (!r.HasPfn) return null;
        var p = s.Page(r.Pfn);
        if (p.Alloc == AllocState.Unknown) p.Alloc = AllocState.Allocated;
        if (r.Mapping is { } m && m != 0) p.Anon = (m & 1) != 0;
        if (r.Memcg is { } g) p.Memcg = g;
        return p;
    }

    static void Rmap(ReplayState s, in PageRef r, int nr, bool compound, int dir, bool anonFn)
    {
        var p = Learn(s, r);
        if (p == null) return;
        if (anonFn) p.Anon = true;
        bool small = nr == 1 && !compound;
        // The fetched _mapcount is the kernel's own view (the model cannot count: fork duplicates file
        // mappings with no rmap call); only small folios have one count.
        if (!small || r.Mapcount is not { } before) { p.Mapcount = null; return; }
        p.Mapcount = before + dir;
        bool file = p.Anon == false || (r.Mapping is { } m && m != 0 && (m & 1) == 0);
        if (!file) return;
        // Implied FILE_MAPPED follows the page's mapped-ness. Two rmap calls racing on other CPUs can
        // both read the same count; tracking mapped-ness (not transitions) re-converges on the next call.
        bool wasCounted = p.CountedMapped ?? before >= 0;
        bool nowMapped = before + dir >= 0;
        p.CountedMapped = nowMapped;
        ulong memcg = r.Memcg ?? p.Memcg ?? 0;
        if (memcg == 0 || wasCounted == nowMapped) return;
        s.Memcg(memcg).ImpliedDelta += nowMapped ? 1 : -1;
    }

    static void Pte(ReplayState s, MigrationPteEvent pte)
    {
        s.Windows.TryGetValue(pte.Pid, out var w);
        if (pte.Set)
        {
            ulong pfn = pte.Pfn;
            var at = s.AttemptOfSrc(pfn);
            // A kernel without 5-level paging configured has SWP_PFN_BITS = 34: its SWP_MIG young/dirty
            // bits sit at 34/35, inside the 40 bits the decoder keeps. The src of the attempt disambiguates.
            if (at == null && pfn >> 34 != 0 && s.AttemptOfSrc(pfn & ((1UL << 34) - 1)) is { } narrow) { at = narrow; pfn = narrow.SrcPfn; }
            if (at != null) at.SetEntries++;
            if (w != null)
            {
                var key = (pte.Addr, pfn);
                w.OpenEntries[key] = w.OpenEntries.TryGetValue(key, out var c) ? (c.Count + 1, c.First) : (1, pte);
            }
            return;
        }
        var bySrc = s.AttemptOfSrc(pte.Pfn);
        var byDst = s.AttemptOfDst(pte.Pfn);
        var attempt = byDst ?? bySrc;
        if (attempt != null) attempt.RemoveEntries++;
        if (w == null) return;
        ulong src = attempt?.SrcPfn ?? pte.Pfn;
        var k = (pte.Addr, src);
        if (!w.OpenEntries.TryGetValue(k, out var cur) && bySrc != null) { k = (pte.Addr, bySrc.SrcPfn); w.OpenEntries.TryGetValue(k, out cur); }
        if (cur.Count > 1) w.OpenEntries[k] = (cur.Count - 1, cur.First);
        else if (cur.Count == 1) w.OpenEntries.Remove(k);
        else w.UnmatchedRemoves++;
    }

    static MigrationAttempt? Move(ReplayState s, DomainEvent e, in PageRef src, in PageRef dst)
    {
        if (!src.HasPfn) return null;
        var sp = Learn(s, src);
        var at = s.AttemptOfSrc(src.Pfn);
        if (at == null || at.Pid != e.Pid || at.Outcome != MigrationOutcome.Pending || (at.DstPfn != PageRef.NoPfn && dst.HasPfn && at.DstPfn != dst.Pfn))
            at = s.BeginAttempt(e.Pid, src.Pfn, e);
        at.MoveEvent = e;
        if (dst.HasPfn)
        {
            if (at.DstPfn != dst.Pfn && at.Window is { } w)
            {
                if (!w.UnfreedDsts.TryGetValue(dst.Pfn, out var users)) w.UnfreedDsts[dst.Pfn] = users = [];
                users.Add(at);
            }
            at.DstPfn = dst.Pfn;
            var dp = s.Page(dst.Pfn);
            if (dp.Alloc == AllocState.Unknown) dp.Alloc = AllocState.Allocated;
            dp.Attempt = at;
        }
        return at;
    }

    static void Outcome(ReplayState s, MigrationAttempt at, bool success, DomainEvent e)
    {
        if (at.Outcome == MigrationOutcome.Failed && success) { /* mapping failed but move reports 0: keep failure */ return; }
        at.Outcome = success ? MigrationOutcome.Success : MigrationOutcome.Failed;
        at.OutcomeEvent = e;
        if (!success || at.DstPfn == PageRef.NoPfn) return;
        var src = s.Page(at.SrcPfn);
        var dst = s.Page(at.DstPfn);
        if (src.File != null) { dst.File = src.File; dst.Anon = false; src.File = null; }
        else if (src.Anon == true) dst.Anon = true;
        dst.Order = src.Order;
    }
}
