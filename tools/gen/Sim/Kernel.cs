using Replayer.Core;

namespace Replayer.Gen.Sim;

/// <summary>A finding the simulation knows it caused, from its own kernel state (never from a checker).</summary>
public sealed record ExpectedFinding(string Invariant, string Kind, ulong[] Pfns, long TimeNs, string Detail)
{
    /// <summary>Index of the violating event in the emitted events (-1 when read back from JSON).</summary>
    public int EventIndex { get; init; } = -1;
}

/// <summary>
/// A small model of the 2.6.34 / 2.6.35 kernel objects involved in page migration with memcg:
/// pages with page_cgroup flags, mapcount and mapping; memcgs with FILE_MAPPED; anon_vmas with
/// their external refcount; tasks with file and anon ptes. Kernel functions emit the pinned
/// 2.6.35-era events (capture-vocabulary.md) at entry, with the state at entry, and record the
/// invariant violations they cause in <see cref="Findings"/>.
/// </summary>
public sealed partial class Kernel
{
    public KernelModel Model { get; }
    public Rng Rng { get; }
    public List<TraceEvent> Events { get; } = [];
    public List<ExpectedFinding> Findings { get; } = [];
    public long Clock { get; private set; }
    /// <summary>The task whose code is running (events are attributed to it).</summary>
    public Task Current { get; set; }
    public bool MemcgEnabled { get; set; } = true;

    readonly Dictionary<int, Page> _swapCache = new();
    ulong _nextPfn;
    ulong _nextNewPfn;

    public Kernel(KernelModel model, Rng rng, Task initial, long startNs, ulong firstPfn, ulong firstNewPfn)
    {
        Model = model;
        Rng = rng;
        Current = initial;
        Clock = startNs;
        _nextPfn = firstPfn;
        _nextNewPfn = firstNewPfn;
    }

    public IReadOnlyDictionary<int, Page> SwapCacheMap => _swapCache;

    // ------------------------------------------------------------------ emission

    public void Tick(int minUs, int maxUs) => Clock += Rng.Range(minUs, maxUs) * 1000L;

    long Stamp()
    {
        Clock += Rng.Range(1, 3) * 1000L;
        return Clock;
    }

    static readonly Dictionary<string, string> ProbeSizes = new()
    {
        ["mem_cgroup_prepare_migration"] = "0x1a0", ["__mem_cgroup_commit_charge"] = "0x110",
        ["mem_cgroup_end_migration"] = "0x150", ["__mem_cgroup_uncharge_common"] = "0x1f0",
        ["mem_cgroup_uncharge_page"] = "0x40", ["mem_cgroup_update_file_mapped"] = "0xa0",
        ["page_add_file_rmap"] = "0x60", ["page_add_anon_rmap"] = "0x90", ["page_remove_rmap"] = "0xb0",
        ["try_to_unmap"] = "0x70", ["move_to_new_page"] = "0x1c0", ["remove_migration_ptes"] = "0x80",
        ["anon_vma_pin"] = "0x20", ["anon_vma_unpin"] = "0x40", ["anon_vma_free"] = "0x30",
        ["putback_lru_page"] = "0x90",
    };

    /// <summary>Return sites of the kretprobes inside <c>unmap_and_move</c>.</summary>
    static readonly Dictionary<string, string> ReturnSites = new()
    {
        ["mem_cgroup_prepare_migration"] = "unmap_and_move+0x16f/0x5e0",
        ["move_to_new_page"] = "unmap_and_move+0x2a4/0x5e0",
    };

    void Kprobe(string func, params EventField[] fields)
    {
        if (IsMemcgProbe(func) && !MemcgEnabled) return;
        Events.Add(new TraceEvent
        {
            Timestamp = Stamp(), Cpu = Current.Cpu, Pid = Current.Pid, Comm = Current.Comm,
            Name = "rt:" + func, Probe = func + "+0x0/" + ProbeSizes[func], Fields = fields, Flags = "...1",
        });
    }

    void Kretprobe(string func, string eventName, EventField field)
    {
        if (IsMemcgProbe(func) && !MemcgEnabled) return;
        Events.Add(new TraceEvent
        {
            Timestamp = Stamp(), Cpu = Current.Cpu, Pid = Current.Pid, Comm = Current.Comm,
            Name = "rt:" + eventName, Probe = ReturnSites[func] + " <- " + func, Fields = [field], Flags = "....",
        });
    }

    static bool IsMemcgProbe(string func) => func.Contains("cgroup", StringComparison.Ordinal);

    void Tracepoint(string name, params EventField[] fields) =>
        Events.Add(new TraceEvent
        {
            Timestamp = Stamp(), Cpu = Current.Cpu, Pid = Current.Pid, Comm = Current.Comm,
            Name = name, Fields = fields, Flags = "....",
        });

    public void Mark(string text) => Tracepoint("ftrace:print", EventField.Str("buf", text));

    void Found(string inv, string kind, string detail, params ulong[] pfns) =>
        Findings.Add(new ExpectedFinding(inv, kind, pfns, Clock, detail) { EventIndex = Events.Count - 1 });

    static EventField Hex(string n, ulong v) => EventField.U64(n, v, FieldStyle.Hex);
    static EventField Dec(string n, ulong v) => EventField.U64(n, v);
    static EventField Sgn(string n, long v) => EventField.S64(n, v);
    static ulong MemId(Memcg? m) => m?.Id ?? 0;

    /// <summary>x86_64 2.6.35: vmemmap at 0xffffea0000000000, sizeof(struct page) = 56.</summary>
    public static ulong PagePointer(ulong pfn) => 0xffffea0000000000UL + pfn * 56;

    // ------------------------------------------------------------------ page allocator

    public Page AllocPage(bool forMigration)
    {
        var p = new Page(forMigration ? _nextNewPfn++ : _nextPfn++);
        if (forMigration) _nextNewPfn += (ulong)Rng.Int(3);
        else _nextPfn += (ulong)Rng.Int(2);
        Tracepoint("kmem:mm_page_alloc", EventField.U64("page", PagePointer(p.Pfn), FieldStyle.Pointer), Dec("pfn", p.Pfn),
            Sgn("order", 0), Sgn("migratetype", forMigration ? 1 : 2),
            EventField.Str("gfp_flags", forMigration ? "GFP_HIGHUSER_MOVABLE" : "GFP_HIGHUSER_MOVABLE|GFP_COLD"));
        return p;
    }

    void FreePage(Page p, bool pagevec)
    {
        if (p.Freed) return;
        p.Freed = true;
        if ((p.Pc & Pcg.Migration) != 0)
            Found("I3", "freed-with-migration-flag", $"page {p.Pfn:x} freed while PCG_MIGRATION is set", p.Pfn);
        if (pagevec)
            Tracepoint("kmem:mm_pagevec_free", EventField.U64("page", PagePointer(p.Pfn), FieldStyle.Pointer), Dec("pfn", p.Pfn), Sgn("cold", 0)); // "order=0" is literal text of the format
        else
            Tracepoint("kmem:mm_page_free_direct", EventField.U64("page", PagePointer(p.Pfn), FieldStyle.Pointer), Dec("pfn", p.Pfn), Sgn("order", 0));
    }

    // ------------------------------------------------------------------ memcg

    /// <summary><c>__mem_cgroup_commit_charge(mem, pc, ctype)</c>.</summary>
    public void CommitCharge(Page p, Memcg mem, int ctype)
    {
        Kprobe("__mem_cgroup_commit_charge", Hex("page", p.Pfn), Hex("memcg", mem.Id), Dec("ctype", (ulong)ctype), Hex("pcflags", (ulong)p.Pc));
        if (!MemcgEnabled) return;
        if ((p.Pc & Pcg.Used) != 0) return; // already committed: cancel
        p.PcMem = mem;
        p.Pc |= Pcg.Used;
        if (ctype == CType.Mapped) p.Pc &= ~Pcg.Cache; else p.Pc |= Pcg.Cache;
        if (ctype != CType.Mapped && p.Mapped && (p.Pc & Pcg.FileMapped) == 0)
            Found("I1", "lost-increment",
                $"file page {p.Pfn:x} committed to memcg {mem.Id:x} while mapped (mapcount {p.MapCount}) without PCG_FILE_MAPPED: its 0->1 FILE_MAPPED +1 was dropped", p.Pfn);
        if (p.NewOf is { } m) m.NewCommitted = true;
    }

    /// <summary><c>__mem_cgroup_uncharge_common(page, ctype)</c>; true when it uncharged.</summary>
    public bool UnchargeCommon(Page p, int ctype)
    {
        Kprobe("__mem_cgroup_uncharge_common", Hex("page", p.Pfn), Dec("ctype", (ulong)ctype), Hex("pcflags", (ulong)p.Pc), Hex("memcg", MemId(p.PcMem)), Sgn("mapcount", p.MapCount));
        if (!MemcgEnabled || p.SwapCache || (p.Pc & Pcg.Used) == 0) return false;
        if ((ctype == CType.Mapped || ctype == CType.Drop) && (p.Mapped || (p.Pc & Pcg.Migration) != 0)) return false;
        p.Pc &= ~Pcg.Used;
        if (p.OldOf is { Open: true } m && ReferenceEquals(m.Old, p))
            Found("I3", "uncharged-during-migration",
                $"old page {p.Pfn:x} uncharged (ctype {ctype}) between mem_cgroup_prepare_migration and mem_cgroup_end_migration", p.Pfn);
        return true;
    }

    /// <summary><c>mem_cgroup_uncharge_page(page)</c>.</summary>
    public void UnchargePage(Page p)
    {
        Kprobe("mem_cgroup_uncharge_page", Hex("page", p.Pfn), Hex("pcflags", (ulong)p.Pc), Sgn("mapcount", p.MapCount));
        if (p.Mapped) return;
        if (p.Mapping != 0 && !p.IsAnon) return;
        UnchargeCommon(p, CType.Mapped);
    }

    /// <summary><c>mem_cgroup_update_file_mapped(page, val)</c>.</summary>
    void UpdateFileMapped(Page p, int val)
    {
        Kprobe("mem_cgroup_update_file_mapped", Hex("page", p.Pfn), Sgn("val", val), Hex("pcflags", (ulong)p.Pc), Hex("memcg", MemId(p.PcMem)));
        if (!MemcgEnabled) return;
        bool used = (p.Pc & Pcg.Used) != 0 && p.PcMem != null;
        if (val > 0)
        {
            if (used)
            {
                p.PcMem!.FileMapped++;
                p.Pc |= Pcg.FileMapped;
                p.LastPlusCountedTo = p.PcMem;
            }
            else p.LastPlusCountedTo = null; // dropped
            return;
        }
        if (!used) return;
        if (!ReferenceEquals(p.LastPlusCountedTo, p.PcMem))
            Found("I1", "unmatched-decrement",
                $"FILE_MAPPED -1 for page {p.Pfn:x} applied to memcg {p.PcMem!.Id:x} but its last +1 was not counted to it", p.Pfn);
        p.PcMem!.FileMapped--;
        p.Pc &= ~Pcg.FileMapped;
        p.LastPlusCountedTo = null;
    }

    // ------------------------------------------------------------------ rmap

    void CheckFirstAddOnNewPage(Page p)
    {
        if (p.NewOf is { } m && m.Mem != null && !m.NewCommitted && !m.I2Reported)
        {
            m.I2Reported = true;
            Found("I2", "remap-before-commit",
                $"new page {p.Pfn:x} (old {m.Old.Pfn:x}) gets its first rmap add before its charge is committed", p.Pfn, m.Old.Pfn);
        }
    }

    public void PageAddFileRmap(Page p)
    {
        Kprobe("page_add_file_rmap", Hex("page", p.Pfn), Sgn("mapcount", p.MapCount));
        CheckFirstAddOnNewPage(p);
        p.MapCount++;
        if (p.MapCount == 0) UpdateFileMapped(p, +1);
    }

    public void PageAddAnonRmap(Page p, AnonVma av)
    {
        Kprobe("page_add_anon_rmap", Hex("page", p.Pfn), Sgn("mapcount", p.MapCount), Hex("anon_vma", av.Addr));
        CheckFirstAddOnNewPage(p);
        p.MapCount++;
        if (p.MapCount == 0 && p.Mapping == 0)
        {
            p.Mapping = av.Addr | 1;
            p.Av = av;
        }
    }

    public void PageRemoveRmap(Page p)
    {
        Kprobe("page_remove_rmap", Hex("page", p.Pfn), Sgn("mapcount", p.MapCount), Dec("anon", p.IsAnon ? 1UL : 0UL));
        p.MapCount--;
        if (p.MapCount != -1) return;
        if (p.IsAnon) UnchargePage(p);
        else UpdateFileMapped(p, -1);
    }

    IEnumerable<Pte> PtesOf(Page p, PteKind kind, List<Task> tasks)
    {
        foreach (var t in tasks)
        {
            if (!t.Alive) continue;
            foreach (var pte in t.FilePtes.Values) if (pte.Kind == kind && ReferenceEquals(pte.Page, p)) yield return pte;
            foreach (var pte in t.AnonPtes.Values) if (pte.Kind == kind && ReferenceEquals(pte.Page, p)) yield return pte;
        }
    }

    public List<Task> Tasks { get; } = [];

    /// <summary><c>try_to_unmap(page, flags)</c>: migration entries (or swap entries for swapcache
    /// anon pages) replace the ptes, each followed by <c>page_remove_rmap</c>.</summary>
    public void TryToUnmap(Page p, bool migration)
    {
        ulong flags = migration ? 0x301UL : 0x0UL; // TTU_MIGRATION|TTU_IGNORE_MLOCK|TTU_IGNORE_ACCESS, or TTU_UNMAP
        if (Model.NullMapping == NullMappingPolicy.Unmap && migration) flags = 0x1; // 2.6.22: try_to_unmap(page, 1)
        Kprobe("try_to_unmap", Hex("page", p.Pfn), Hex("mapping", p.Mapping), EventField.U64("flags", flags, FieldStyle.Hex));
        if (p.Mapping == 0)
        {
            if (migration)
                Found("I4", "unmap-null-mapping", $"try_to_unmap on page {p.Pfn:x} whose mapping is NULL (swapcache read in, no rmap yet)", p.Pfn);
            return; // the real 2.6.22 kernel dereferences NULL here; the model walks nothing
        }
        foreach (var pte in PtesOf(p, PteKind.Present, Tasks).ToList())
        {
            if (p.IsAnon && p.SwapCache) { pte.Kind = PteKind.Swap; pte.Slot = p.SwapSlot; pte.Page = null; }
            else pte.Kind = migration ? PteKind.Migration : PteKind.Swap;
            PageRemoveRmap(p);
        }
    }

    /// <summary><c>remove_migration_ptes(old, new)</c>: <c>rmap_walk(new, remove_migration_pte, old)</c>.</summary>
    void RemoveMigrationPtes(Migration m, Page old, Page @new)
    {
        Kprobe("remove_migration_ptes", Hex("old", old.Pfn), Hex("new", @new.Pfn));
        if (m.Av != null)
        {
            if (m.Av.Freed)
            {
                Found("I5", "walk-freed-anon-vma",
                    $"remove_migration_ptes walks anon_vma {m.Av.Addr:x} of page {old.Pfn:x}, freed during the migration", old.Pfn);
                return; // a use-after-free in the kernel; the model finds nothing to remap
            }
            if (m.UnmappedAtStart && !m.Pinned)
                Found("I5", "remap-unpinned-swapcache",
                    $"remove_migration_ptes on unmapped swapcache page {old.Pfn:x} whose anon_vma {m.Av.Addr:x} is not pinned", old.Pfn);
        }
        else if (@new.Mapping == 0) return; // rmap_walk_file: no mapping, nothing to walk
        foreach (var pte in PtesOf(old, PteKind.Migration, Tasks).ToList())
        {
            pte.Kind = PteKind.Present;
            pte.Page = @new;
            if (@new.IsAnon) PageAddAnonRmap(@new, @new.Av!);
            else PageAddFileRmap(@new);
        }
    }

    // ------------------------------------------------------------------ anon_vma

    void AnonVmaPin(Page p, AnonVma av)
    {
        Kprobe("anon_vma_pin", Hex("page", p.Pfn), Hex("anon_vma", av.Addr));
        av.ExternalRef++;
    }

    void AnonVmaUnpin(Page p, AnonVma av)
    {
        Kprobe("anon_vma_unpin", Hex("page", p.Pfn), Hex("anon_vma", av.Addr));
        av.ExternalRef--;
        MaybeFreeAnonVma(av);
    }

    void MaybeFreeAnonVma(AnonVma av)
    {
        if (av.Freed || av.Users > 0 || av.ExternalRef > 0) return;
        Kprobe("anon_vma_free", Hex("anon_vma", av.Addr));
        av.Freed = true;
    }

    // ------------------------------------------------------------------ LRU

    public void PutbackLruPage(Page p)
    {
        Kprobe("putback_lru_page", Hex("page", p.Pfn));
        p.Isolated = false;
        if (!p.HasUsers) FreePage(p, pagevec: false);
        else if ((p.Pc & Pcg.Used) != 0) p.Pc |= Pcg.AcctLru;
    }

    public void Isolate(Page p)
    {
        p.Isolated = true;
        p.Pc &= ~Pcg.AcctLru;
    }

    // ------------------------------------------------------------------ setup helpers (faults outside the race)

    public Page NewFilePage(FileObj f, int index, Memcg mem)
    {
        var p = AllocPage(false);
        p.File = f;
        p.Index = index;
        p.Mapping = f.Addr;
        CommitCharge(p, mem, CType.Cache); // add_to_page_cache -> mem_cgroup_cache_charge
        f.Cache[index] = p;
        if (MemcgEnabled) p.Pc |= Pcg.AcctLru;
        return p;
    }

    public Page NewAnonPage(Task t, int index)
    {
        var p = AllocPage(false);
        p.Owner = t;
        CommitCharge(p, t.Memcg, CType.Mapped); // mem_cgroup_newpage_charge
        PageAddAnonRmap(p, t.Av!);
        t.AnonPtes[index] = new Pte(PteKind.Present, p);
        if (MemcgEnabled) p.Pc |= Pcg.AcctLru;
        return p;
    }

    /// <summary>Reclaim puts a mapped anon page in the swap cache and unmaps it (swap entries).</summary>
    public void SwapOut(Page p, int slot)
    {
        p.SwapCache = true;
        p.SwapSlot = slot;
        _swapCache[slot] = p;
        TryToUnmap(p, migration: false);
    }

    /// <summary>Reclaim drops an unmapped swapcache page, then swap readahead brings the slot back
    /// in a fresh page that has no rmap and no charge yet (page->mapping == NULL).</summary>
    public Page DropAndReadahead(Page p)
    {
        int slot = p.SwapSlot;
        p.SwapCache = false;
        _swapCache.Remove(slot);
        UnchargeCommon(p, CType.SwapOut);
        FreePage(p, pagevec: true);
        var n = AllocPage(false);
        n.SwapCache = true;
        n.SwapSlot = slot;
        n.Owner = p.Owner;
        _swapCache[slot] = n;
        return n;
    }
}
