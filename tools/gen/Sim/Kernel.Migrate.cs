namespace Replayer.Gen.Sim;

/// <summary>Probabilities of the failure modes the scenario injects.</summary>
public sealed record FailurePlan(double AllocFail = 0.03, double ChargeFail = 0.05, double MoveEagain = 0.10, double MoveEbusy = 0.04);

public sealed partial class Kernel
{
    public const int EAGAIN = 11, ENOMEM = 12, EBUSY = 16;

    public FailurePlan Failures { get; set; } = new();

    sealed class Attempt
    {
        public int Rc;
        public bool OffList;
    }

    /// <summary><c>migrate_pages(from, get_new_page, private, offlining)</c>: up to 10 passes,
    /// -EAGAIN retried, -ENOMEM stops, anything else is a permanent failure.</summary>
    public IEnumerable<Func<bool>?> MigratePages(List<Page> from, bool offlining)
    {
        bool stop = false;
        for (int pass = 0; pass < 10 && !stop; pass++)
        {
            int retry = 0;
            foreach (var page in from.ToList())
            {
                var a = new Attempt();
                foreach (var w in UnmapAndMove(page, force: pass > 2, offlining, a)) yield return w;
                if (a.OffList) from.Remove(page);
                if (a.Rc == -ENOMEM) { stop = true; break; }
                if (a.Rc == -EAGAIN) retry++;
                yield return null;
            }
            if (retry == 0) break;
        }
        foreach (var page in from) PutbackLruPage(page);
        from.Clear();
    }

    /// <summary><c>unmap_and_move()</c> as in kernel-spec.md §1.3 (2.6.35) / §1.6 (2.6.34) /
    /// seed 003 (2.6.22 style), depending on <see cref="Model"/>.</summary>
    IEnumerable<Func<bool>?> UnmapAndMove(Page page, bool force, bool offlining, Attempt a)
    {
        _ = offlining;
        if (Rng.Chance(Failures.AllocFail)) { a.Rc = -ENOMEM; yield break; } // get_new_page failed
        var newpage = AllocPage(forMigration: true);
        var m = new Migration(page, newpage);
        int rc = 0;
        int charge = -1; // -1: prepare not called
        bool locked = false;

        if (!page.HasUsers) goto move_newpage; // page_count == 1: freed under us, rc = 0

        rc = -EAGAIN;
        if (page.Locked)
        {
            if (!force) goto move_newpage;
            while (page.Locked) yield return () => !page.Locked;
        }
        page.Locked = locked = true;

        if (MemcgEnabled)
        {
            charge = PrepareMigration(page, newpage, m);
            if (charge != 0) { rc = -ENOMEM; goto unlock; }
        }
        yield return null;

        bool remapSwapcache = true;
        if (page.IsAnon)
        {
            m.Av = page.Av;
            m.UnmappedAtStart = !page.Mapped;
            if (Model.GuardUnmappedAnon)
            {
                if (!page.Mapped)
                {
                    if (!page.SwapCache) goto rcu_unlock;
                    remapSwapcache = false;
                }
                else if (Model.PinAnonVma)
                {
                    AnonVmaPin(page, page.Av!);
                    m.Pinned = true;
                }
            }
        }

        bool skipUnmap = false;
        if (page.Mapping == 0)
        {
            if (Model.NullMapping == NullMappingPolicy.SkipAll) goto rcu_unlock;
            if (Model.NullMapping == NullMappingPolicy.SkipUnmap) skipUnmap = true;
        }
        if (!skipUnmap)
        {
            TryToUnmap(page, migration: true);
            yield return null;
        }

        if (!page.Mapped)
        {
            rc = MoveToNewPage(newpage, page, remapSwapcache, m);
            yield return null; // newpage is unlocked here: 2.6.34's window before the commit
        }
        if (rc != 0 && remapSwapcache) RemoveMigrationPtes(m, page, page);

    rcu_unlock:
        if (m.Pinned) AnonVmaUnpin(page, m.Av!);
        if (charge == 0) EndMigration(m, page, newpage);

    unlock:
        if (locked) page.Locked = false;
        page.OldOf = null;
        if (rc != -EAGAIN)
        {
            a.OffList = true;
            PutbackLruPage(page);
        }

    move_newpage:
        PutbackLruPage(newpage);
        a.Rc = rc;
    }

    /// <summary><c>mem_cgroup_prepare_migration</c>: 0 or -ENOMEM.</summary>
    int PrepareMigration(Page page, Page newpage, Migration m)
    {
        Kprobe("mem_cgroup_prepare_migration", Hex("page", page.Pfn), Hex("newpage", newpage.Pfn),
            Dec("anon", page.IsAnon ? 1UL : 0UL), Hex("pcflags", (ulong)page.Pc), Hex("memcg", MemId(page.PcMem)));
        Memcg? mem = null;
        if ((page.Pc & Pcg.Used) != 0)
        {
            mem = page.PcMem;
            if (page.IsAnon && Model.CommitInPrepare) page.Pc |= Pcg.Migration;
        }
        m.Mem = mem;
        newpage.NewOf = m;
        page.OldOf = m;
        if (mem == null)
        {
            Kretprobe("mem_cgroup_prepare_migration", "mem_cgroup_prepare_migration_ret", Sgn("ret", 0));
            return 0;
        }
        if (Rng.Chance(Failures.ChargeFail))
        {
            if (Model.CommitInPrepare && page.IsAnon)
            {
                page.Pc &= ~Pcg.Migration;
                UnchargePage(page);
            }
            m.Mem = null;
            Kretprobe("mem_cgroup_prepare_migration", "mem_cgroup_prepare_migration_ret", Sgn("ret", -ENOMEM));
            return -ENOMEM;
        }
        if (Model.CommitInPrepare)
            CommitCharge(newpage, mem, page.IsAnon ? CType.Mapped : CType.Cache);
        Kretprobe("mem_cgroup_prepare_migration", "mem_cgroup_prepare_migration_ret", Sgn("ret", 0));
        m.Open = true;
        return 0;
    }

    /// <summary><c>mem_cgroup_end_migration(mem, oldpage, newpage)</c>.</summary>
    void EndMigration(Migration m, Page old, Page @new)
    {
        Kprobe("mem_cgroup_end_migration", Hex("mem", MemId(m.Mem)), Hex("oldpage", old.Pfn), Hex("newpage", @new.Pfn), Hex("oldmapping", old.Mapping));
        m.Open = false;
        var mem = m.Mem;
        if (mem == null) return;
        bool success = old.Mapping == 0;
        if (Model.CommitInPrepare)
        {
            var used = success ? @new : old;
            var unused = success ? old : @new;
            old.Pc &= ~Pcg.Migration;
            UnchargeCommon(unused, CType.Force);
            if (used.IsAnon) UnchargePage(used);
        }
        else
        {
            var target = success ? @new : old;
            int ctype = target.IsAnon ? CType.Mapped : CType.Cache;
            if (success) UnchargeCommon(old, ctype);
            CommitCharge(target, mem, ctype);
            if (ctype == CType.Mapped) UnchargePage(target);
        }
    }

    /// <summary><c>move_to_new_page(newpage, page[, remap_swapcache])</c>; the outcome of the
    /// address-space callback is drawn from <see cref="Failures"/>.</summary>
    int MoveToNewPage(Page newpage, Page page, bool remapSwapcache, Migration m)
    {
        Kprobe("move_to_new_page", Hex("newpage", newpage.Pfn), Hex("page", page.Pfn));
        newpage.Locked = true;
        newpage.Index = page.Index;
        newpage.Mapping = page.Mapping;
        newpage.File = page.File;
        newpage.Av = page.Av;
        newpage.Owner = page.Owner;
        int rc = Rng.Chance(Failures.MoveEagain) ? -EAGAIN : Rng.Chance(Failures.MoveEbusy) ? -EBUSY : 0;
        if (rc == 0)
        {
            // migrate_page_move_mapping: the radix tree (page cache or swap cache) now holds newpage
            if (page.InPageCache) page.File!.Cache[page.Index] = newpage;
            if (page.SwapCache)
            {
                newpage.SwapCache = true;
                newpage.SwapSlot = page.SwapSlot;
                _swapCache[page.SwapSlot] = newpage;
            }
            // migrate_page_copy
            page.SwapCache = false;
            page.SwapSlot = -1;
            page.Mapping = 0;
            if (remapSwapcache) RemoveMigrationPtes(m, page, newpage);
        }
        else
        {
            newpage.Mapping = 0;
            newpage.File = null;
        }
        newpage.Locked = false;
        Kretprobe("move_to_new_page", "move_to_new_page_ret", Sgn("rc", rc));
        return rc;
    }

    // ------------------------------------------------------------------ the other tasks

    /// <summary>A file fault (<c>filemap_fault</c> + <c>__do_fault</c>): waits on migration entries
    /// and on the page lock, maps the page-cache page under its lock.</summary>
    public IEnumerable<Func<bool>?> FileFault(Task t, FileObj f, int idx)
    {
        for (int guard = 0; guard < 64; guard++)
        {
            if (!t.Alive || !t.FileVma) yield break;
            if (t.FilePtes.TryGetValue(idx, out var pte))
            {
                if (pte.Kind == PteKind.Present) yield break;
                if (pte.Kind == PteKind.Migration)
                {
                    var mp = pte.Page!;
                    if (!mp.Locked) yield break; // stale entry: not produced by this model
                    yield return () => !mp.Locked;
                    continue;
                }
            }
            if (!f.Cache.TryGetValue(idx, out var page)) yield break;
            if (page.Locked) { yield return () => !page.Locked; continue; }
            page.Locked = true;
            PageAddFileRmap(page);
            t.FilePtes[idx] = new Pte(PteKind.Present, page);
            yield return null;
            page.Locked = false;
            yield break;
        }
    }

    /// <summary><c>do_swap_page</c> on a swap entry whose page is in the swap cache.</summary>
    public IEnumerable<Func<bool>?> SwapInFault(Task t, int idx)
    {
        for (int guard = 0; guard < 64; guard++)
        {
            if (!t.Alive || !t.AnonVmaMapped) yield break;
            if (!t.AnonPtes.TryGetValue(idx, out var pte) || pte.Kind == PteKind.Present) yield break;
            if (pte.Kind == PteKind.Migration)
            {
                var mp = pte.Page!;
                if (!mp.Locked) yield break;
                yield return () => !mp.Locked;
                continue;
            }
            if (!_swapCache.TryGetValue(pte.Slot, out var page)) yield break; // would read from disk: not modelled
            if (page.Locked) { yield return () => !page.Locked; continue; }
            page.Locked = true;
            if (!page.SwapCache || page.SwapSlot != pte.Slot) { page.Locked = false; continue; }
            PageAddAnonRmap(page, t.Av!);
            page.Owner ??= t;
            pte.Kind = PteKind.Present;
            pte.Page = page;
            if (MemcgEnabled && (page.Pc & Pcg.Used) == 0) CommitCharge(page, t.Memcg, CType.Mapped); // commit_charge_swapin
            yield return null;
            page.Locked = false;
            yield break;
        }
    }

    public void MunmapFile(Task t)
    {
        if (!t.FileVma) return;
        foreach (var pte in t.FilePtes.Values)
            if (pte.Kind == PteKind.Present) PageRemoveRmap(pte.Page!);
        t.FilePtes.Clear();
        t.FileVma = false;
    }

    public void MunmapAnon(Task t)
    {
        if (!t.AnonVmaMapped) return;
        var toFree = new List<Page>();
        foreach (var pte in t.AnonPtes.Values)
        {
            if (pte.Kind != PteKind.Present) continue; // migration / swap entries are zapped silently
            var p = pte.Page!;
            PageRemoveRmap(p);
            if (!p.HasUsers && !p.Isolated && !p.Locked) toFree.Add(p);
        }
        t.AnonPtes.Clear();
        t.AnonVmaMapped = false;
        foreach (var p in toFree) FreePage(p, pagevec: true);
        var av = t.Av!;
        av.Users--;
        MaybeFreeAnonVma(av);
    }

    public void Exit(Task t)
    {
        Mark(t.Comm + ": exit");
        MunmapFile(t);
        MunmapAnon(t);
        t.Alive = false;
    }

    // ------------------------------------------------------------------ scheduler

    sealed class Proc(Task task, IEnumerator<Func<bool>?> body)
    {
        public Task Task { get; } = task;
        public IEnumerator<Func<bool>?> Body { get; } = body;
        public Func<bool>? Wait { get; set; }
    }

    /// <summary>Runs the processes to completion, interleaving their steps at random (seeded): each
    /// step runs one process until its next preemption point or wait.</summary>
    public void Run(IEnumerable<(Task Task, IEnumerable<Func<bool>?> Body)> procs, int maxSteps = 100_000)
    {
        var live = procs.Select(p => new Proc(p.Task, p.Body.GetEnumerator())).ToList();
        for (int step = 0; live.Count > 0; step++)
        {
            if (step > maxSteps) throw new InvalidOperationException("simulation did not finish");
            var runnable = live.Where(p => p.Wait == null || p.Wait()).ToList();
            if (runnable.Count == 0) throw new InvalidOperationException("simulation deadlocked");
            var p = Rng.Pick(runnable);
            p.Wait = null;
            Current = p.Task;
            Tick(0, 4);
            if (!p.Body.MoveNext()) { live.Remove(p); continue; }
            p.Wait = p.Body.Current;
        }
    }
}
