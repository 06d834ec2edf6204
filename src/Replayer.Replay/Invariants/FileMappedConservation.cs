using Replayer.Core.Domain;
using Replayer.Replay.Modern;

namespace Replayer.Replay.Invariants;

/// <summary>
/// I1 (6.x): every NR_FILE_MAPPED counter change equals the 0↔1 mapcount transitions of file pages
/// at the time of the rmap call, counted to the page's memcg. Checked locally: each rmap call on a
/// small file folio whose mapcount goes −1→0 (+1) or 0→−1 (−1) must be followed, in the same task,
/// by exactly one lruvec stat update (idx 18) of that value for that page, and no stat update may
/// appear without such a transition. Sharp check: a −1 for a page whose last +1 went to another
/// memcg. At the end, per memcg: counter delta = implied delta.
/// </summary>
public sealed class FileMappedConservation : IInvariant
{
    public string Id => "file-mapped-conservation";
    public string Title => "FILE_MAPPED conservation per memcg (I1)";
    public bool AppliesTo(Era era) => era.IsModern();

    public IEnumerable<Requirement> Requires(Era era)
    {
        yield return new Requirement(DomainKind.RmapAdd, "page_add_file_rmap|folio_add_file_rmap_ptes|folio_add_file_rmap_pte", "kprobe page_add_file_rmap / folio_add_file_rmap_ptes");
        yield return new Requirement(DomainKind.RmapRemove, "page_remove_rmap|folio_remove_rmap_ptes|folio_remove_rmap_pte", "kprobe page_remove_rmap / folio_remove_rmap_ptes");
        if (era == Era.Linux613Plus) yield return new Requirement(DomainKind.MemcgStat, null, "memcg:mod_memcg_lruvec_state");
        else yield return new Requirement(DomainKind.LruvecStat, "__mod_lruvec_page_state|__lruvec_stat_mod_folio", "kprobe __mod_lruvec_page_state / __lruvec_stat_mod_folio (idx 18)");
    }

    sealed class Expect
    {
        public DomainEvent Event = null!;
        public ulong Pfn, Ptr;
        public long Val;          // expected value from the fetched mapcount (0 = none expected)
        public long AltVal;       // an alternative accepted value (same as Val unless a caller widens it)
        public bool Racy;         // overlapped another task's rmap call on the same page
        public bool Optional;     // large folio / unknown mapcount: a matching-sign update of at most |Nr| or none
        public int Nr;
        public int Dir;
        public ulong? Memcg;
        public PageView? Before;
    }

    readonly Dictionary<int, Expect> _pending = [];
    /// <summary>One reusable expectation per task (the hot path allocates nothing).</summary>
    readonly Dictionary<int, Expect> _pool = [];

    Expect Rent(DomainEvent e)
    {
        if (!_pool.TryGetValue(e.Pid, out var x)) _pool[e.Pid] = x = new Expect();
        x.Event = e; x.Val = x.AltVal = 0; x.Racy = x.Optional = false;
        return x;
    }
    readonly HashSet<int> _seenPids = [];
    readonly HashSet<ulong> _memcgsWithFindings = [];
    /// <summary>memcgs with updates the local check could not pin down (large folios, skipped): no delta comparison.</summary>
    readonly HashSet<ulong> _uncertain = [];
    bool _dataLoss;
    bool _sawLruvec;

    public void Before(DomainEvent e, ReplayContext ctx)
    {
        // The stat update runs inside the rmap call: it is the task's very next event.
        bool isStat = e is LruvecStatEvent { Item: ModernAdapter.NrFileMapped } or MemcgStatEvent { Class: MemcgStatClass.ModMemcgLruvecState, Item: ModernAdapter.NrFileMapped };
        if (_pending.Count > 0 && !isStat && _pending.ContainsKey(e.Pid)) Resolve(ctx, e.Pid);
        switch (e)
        {
            case DataLossEvent:
                _dataLoss = true;
                _pending.Clear();
                break;
            case RmapAddEvent r:
                OnRmap(ctx, r, r.Page, r.Nr, r.Compound, +1, r.AnonFunction);
                break;
            case RmapRemoveEvent r:
                OnRmap(ctx, r, r.Page, r.Nr, r.Compound, -1, r.Anon == true);
                break;
            case LruvecStatEvent l when l.Item == ModernAdapter.NrFileMapped:
                _sawLruvec = true;
                OnStat(ctx, l, l.Page, l.Val, l.Page.Memcg);
                break;
            // 6.13+: the memcg tracepoint fires inside the same call, only for a charged page, and names
            // the cgroup id, not the page: pair it by task and value when no lruvec probe is recorded.
            case MemcgStatEvent { Class: MemcgStatClass.ModMemcgLruvecState, Item: ModernAdapter.NrFileMapped } ms when !_sawLruvec:
                OnStat(ctx, ms, new PageRef { Pfn = PageRef.NoPfn }, ms.Val, null);
                break;
        }
        _seenPids.Add(e.Pid);
    }

    void OnRmap(ReplayContext ctx, DomainEvent e, PageRef page, int nr, bool compound, int dir, bool anonHint)
    {
        Resolve(ctx, e.Pid);
        bool? anon = anonHint ? true : page.IsAnon;
        var st = page.HasPfn ? ctx.State.PageOrNull(page.Pfn) : null;
        anon ??= st?.Anon;
        if (anon == true) return;
        var x = Rent(e); x.Pfn = page.Pfn; x.Ptr = page.Ptr; x.Nr = Math.Max(1, nr); x.Dir = dir; x.Memcg = page.Memcg; x.Before = st?.View();
        if (anon == null || page.Mapping == 0 || nr != 1 || compound || page.Mapcount is not { } m) { x.Optional = true; x.Val = x.AltVal = dir; }
        else
        {
            x.Val = x.AltVal = Transition(m, dir);
            // the 6.13+ memcg tracepoint is not emitted for an uncharged page (memcg_data 0)
            if (!_sawLruvec && ctx.Era == Era.Linux613Plus && page.Memcg == 0) x.Val = x.AltVal = 0;
        }
        // Another task's rmap call on the same page still in flight: the two atomic updates may land in
        // either order, so which of them makes the 0↔1 transition is unknown (the totals are checked at the end).
        if (page.HasPfn)
            foreach (var other in _pending.Values)
                if (other.Pfn == page.Pfn && other.Event.Pid != e.Pid)
                {
                    other.Racy = true; x.Racy = true;
                    if (page.Memcg is { } rm) _uncertain.Add(rm);
                }
        _pending[e.Pid] = x;
    }

    static long Transition(int mapcountBefore, int dir) => dir > 0 ? (mapcountBefore == -1 ? 1 : 0) : (mapcountBefore == 0 ? -1 : 0);

    void Resolve(ReplayContext ctx, int pid)
    {
        if (!_pending.Remove(pid, out var x)) return;
        if (x.Racy || _dataLoss && x.Val != 0) { ctx.Skip(this); return; }
        if (x.Optional || x.Val == 0 || x.AltVal == 0) { if (!x.Optional) ctx.Checked(this); return; }
        ctx.Checked(this);
        Report(ctx, x.Event, $"mapcount {(x.Val > 0 ? "0→1" : "1→0")} of file page with no FILE_MAPPED {(x.Val > 0 ? "+1" : "−1")} (lruvec stat idx 18) for it",
            x.Pfn, x.Memcg, [x.Event], x.Before?.ToString());
    }

    void OnStat(ReplayContext ctx, DomainEvent e, PageRef page, long val, ulong? memcg)
    {
        bool firstOfPid = !_seenPids.Contains(e.Pid);
        if (!_pending.Remove(e.Pid, out var x))
        {
            if (firstOfPid || _dataLoss) { if (memcg is { } um) _uncertain.Add(um); ctx.Skip(this); return; }
            ctx.Checked(this);
            Report(ctx, e, $"FILE_MAPPED {val:+#;-#;0} with no mapcount 0↔1 transition before it in this task", page.Pfn, memcg, [e], null);
            return;
        }
        bool samePage = e is MemcgStatEvent || (x.Ptr != 0 && x.Ptr == page.Ptr) || (x.Pfn != PageRef.NoPfn && x.Pfn == page.Pfn);
        bool ok = samePage && (x.Optional ? Math.Sign(val) == Math.Sign(x.Val) && Math.Abs(val) <= x.Nr
            : val == x.Val || val == x.AltVal || (x.Racy && val == x.Dir));
        if (x.Racy && ok) { ctx.Skip(this); return; }
        ctx.Checked(this);
        if (ok && x.Optional && memcg is { } om) _uncertain.Add(om);
        if (!ok)
        {
            string want = x.Val == 0 ? "no FILE_MAPPED update (no 0↔1 mapcount transition)" : $"FILE_MAPPED {x.Val:+#;-#} for pfn 0x{x.Pfn:x}";
            Report(ctx, e, $"FILE_MAPPED {val:+#;-#;0} for pfn 0x{page.Pfn:x} but the rmap call before it implies {want}", page.Pfn, memcg, [x.Event, e], x.Before?.ToString());
            return;
        }
        // Sharp check: a −1 must go to the memcg that got the page's last +1.
        if (val < 0 && page.HasPfn && ctx.State.PageOrNull(page.Pfn) is { CountedMemcg: { } counted } st && memcg is { } mm && counted != mm)
            Report(ctx, e, $"FILE_MAPPED −1 to memcg 0x{mm:x} but the page's last +1 was counted to memcg 0x{counted:x}", page.Pfn, memcg, [x.Event, e], st.ToString());
    }

    void Report(ReplayContext ctx, DomainEvent at, string why, ulong pfn, ulong? memcg, IEnumerable<DomainEvent> ev, string? before)
    {
        if (memcg is { } m) _memcgsWithFindings.Add(m);
        var after = pfn != PageRef.NoPfn ? ctx.State.PageOrNull(pfn)?.ToString() : null;
        ctx.Report(this, ReplayContext.MakeFinding(at, why, pfn != PageRef.NoPfn ? [pfn] : [], memcg, ev, before, after));
    }

    public void End(ReplayContext ctx)
    {
        _pending.Clear(); // a transition whose update fell past the end of the capture is unknown, not missing
        foreach (var m in ctx.State.Memcgs.Values)
        {
            if (m.IsCgroupId || m.Tainted || _dataLoss || _memcgsWithFindings.Contains(m.Id) || _uncertain.Contains(m.Id) || m.CounterDelta == m.ImpliedDelta) continue;
            ctx.Report(this, new Finding
            {
                Memcg = m.Id, Explanation = $"memcg 0x{m.Id:x}: FILE_MAPPED counter changed by {m.CounterDelta} pages but page states imply {m.ImpliedDelta}",
            });
        }
    }
}
