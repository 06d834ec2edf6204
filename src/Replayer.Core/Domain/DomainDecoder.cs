using System.Collections.Frozen;
using System.Runtime.CompilerServices;

namespace Replayer.Core.Domain;

/// <summary>
/// An event (a <see cref="TraceEvent"/> or a block row, as an <see cref="EventView"/>) → DomainEvent. Stateful only in what it learns about the capture: the vmemmap base
/// (from a probe's <c>vm=@vmemmap_base</c> fetcharg, or from raw-ftrace <c>mm_page_alloc page=/pfn=</c>
/// pairs) used to map <c>struct page</c> pointers to pfns (<c>pfn = (ptr − vm) / 64</c>).
/// Anything outside the vocabulary, or a vocabulary event missing a field, becomes a
/// <see cref="GenericEvent"/>: nothing is dropped.
/// </summary>
public sealed class DomainDecoder
{
    /// <summary><c>sizeof(struct page)</c> on x86_64.</summary>
    public const ulong StructPageSize = 64;
    /// <summary>Low bits of <c>memcg_data</c> that are flags (OBJCGS, KMEM, …), not pointer bits.</summary>
    public const ulong MemcgDataFlagMask = 0x7;

    readonly ProbeResolver _probes;
    ulong _allocCandidate;

    public DomainDecoder(ProbeResolver? probes = null) => _probes = probes ?? new ProbeResolver();

    public ProbeResolver Probes => _probes;
    /// <summary>The vmemmap base, once known (settable to force it).</summary>
    public ulong? VmemmapBase { get; set; }
    /// <summary>Events that became <see cref="GenericEvent"/>, by event name.</summary>
    public Dictionary<string, long> GenericCounts { get; } = new(StringComparer.Ordinal);

    static readonly FrozenSet<string> Tracepoints = new[]
    {
        "mm_page_alloc", "mm_page_free", "mm_page_free_batched", "mm_page_free_direct", "mm_pagevec_free",
        "mm_filemap_add_to_page_cache", "mm_filemap_delete_from_page_cache", "mm_migrate_pages_start",
        "mm_migrate_pages", "set_migration_pte", "remove_migration_pte", "set_migration_pmd", "remove_migration_pmd",
        "mod_memcg_state", "mod_memcg_lruvec_state", "count_memcg_events", "print", "tracing_mark_write", "data_loss",
    }.ToFrozenSet(StringComparer.Ordinal);

    /// <summary>Kernel addresses live in the upper half (0xff00… with 5-level paging, 0xffff8… with 4-level).</summary>
    static bool IsKernelPointer(ulong v) => v >= 0x8000_0000_0000_0000UL;

    /// <summary>Maps a page argument to a pfn: kernel pointers via the vmemmap base; smaller values
    /// are pfns already (seed-era convention, perf's <c>page=</c>).</summary>
    public PageRef Page(ulong value)
    {
        if (!IsKernelPointer(value)) return new PageRef { Ptr = 0, Pfn = value };
        ulong pfn = PageRef.NoPfn;
        if (VmemmapBase is { } vm && value >= vm && (value - vm) % StructPageSize == 0)
            pfn = (value - vm) / StructPageSize;
        return new PageRef { Ptr = value, Pfn = pfn };
    }

    static ulong MaskMemcg(ulong v) => IsKernelPointer(v) ? v & ~MemcgDataFlagMask : v;

    PageRef PageWithFields(EventView e, ulong value, string prefix)
    {
        var p = Page(value);
        int? I(string n) => e.TryGet(n, out var f) && f.IsInteger ? (int)f.AsS64 : null;
        ulong? U(string n) => e.TryGet(n, out var f) && f.IsInteger ? f.Bits : null;
        ulong? memcg = U(prefix + "memcg");
        return p with
        {
            Flags = U(prefix + "flags"),
            Mapping = U(prefix + "mapping"),
            Index = U(prefix + "index"),
            Mapcount = I(prefix + "mapcount"),
            Refcount = I(prefix + "refcount"),
            Memcg = memcg is { } m ? MaskMemcg(m) : null,
        };
    }

    public DomainEvent Decode(TraceEvent e) => Decode(new EventView(e));

    /// <summary>Decodes one event; a block row is read in place (only a <see cref="GenericEvent"/> copies it).</summary>
    public DomainEvent Decode(EventView e)
    {
        if (e.Name == SyntheticEvents.DataLoss)
            return Fill(new DataLossEvent { Lost = e.U64("lost") ?? 0 }, e);
        if (e.TryGet("vm", out var vmf) && vmf.IsInteger && vmf.Bits != 0) VmemmapBase = vmf.Bits;
        try
        {
            // What the name and probe column say is the same for every event with that name and probe:
            // looked up once per distinct (name, probe) pair, not per event.
            var c = Classify(e);
            var probe = c.Probe;
            if (!c.ProbeFirst && c.Tracepoint && !c.ProbeSystem)
            {
                var tp = DecodeTracepoint(e, c.ShortName);
                if (tp != null) return tp;
            }
            if (probe is { } pt)
            {
                var d = DecodeProbe(e, pt);
                if (d != null) return d;
                return Generic(e, "probe on " + pt.Function + " lacks its fields");
            }
            if (c.Tracepoint) return Generic(e, "tracepoint lacks its fields");
        }
        catch (MissingFieldException m)
        {
            return Generic(e, m.Message);
        }
        return Generic(e, null);
    }

    /// <summary>How an event with a given name and probe column is decoded.</summary>
    sealed class Classification
    {
        public required string Name;
        public required string? ProbeColumn;
        public required int Version;
        public required string ShortName;
        /// <summary>The probed function, if the event is a (known) probe.</summary>
        public required ProbeTarget? Probe;
        /// <summary>A probe column or a kprobe definition resolved to a function: decode as that probe first.</summary>
        public required bool ProbeFirst;
        public required bool Tracepoint;
        public required bool ProbeSystem;
    }

    const int ClassSlots = 256;
    readonly Classification?[] _classes = new Classification?[ClassSlots];

    Classification Classify(EventView e)
    {
        string name = e.Name;
        string? probeColumn = e.Probe;
        int slot = (RuntimeHelpers.GetHashCode(name) * 31 + (probeColumn == null ? 0 : RuntimeHelpers.GetHashCode(probeColumn))) & (ClassSlots - 1);
        var c = _classes[slot];
        // Readers intern names and probe columns, so a hit is two reference comparisons; a miss (another pair
        // in the slot, strings not interned, new definitions) classifies again.
        if (c != null && ReferenceEquals(c.Name, name) && ReferenceEquals(c.ProbeColumn, probeColumn) && c.Version == _probes.Version) return c;
        ProbeTarget? first = probeColumn != null || _probes.Definitions.ContainsKey(name) ? _probes.Resolve(e) : null;
        var shortName = e.ShortName.ToString();
        c = new Classification
        {
            Name = name, ProbeColumn = probeColumn, Version = _probes.Version, ShortName = shortName,
            Probe = first ?? _probes.Resolve(e), ProbeFirst = first != null,
            Tracepoint = Tracepoints.Contains(shortName), ProbeSystem = IsProbeSystem(name),
        };
        _classes[slot] = c;
        return c;
    }

    static bool IsProbeSystem(string name) => name.StartsWith("rt:", StringComparison.Ordinal) || name.StartsWith("kprobes:", StringComparison.Ordinal);

    GenericEvent Generic(EventView e, string? note)
    {
        GenericCounts[e.Name] = GenericCounts.GetValueOrDefault(e.Name) + 1;
        return Fill(new GenericEvent { Raw = e.ToTraceEvent(), Note = note }, e);
    }

    static T Fill<T>(T d, EventView e) where T : DomainEvent
    {
        d.SetHeader(e.Timestamp, e.Cpu, e.Pid, e.Comm, e.Source, e.Name);
        return d;
    }

    sealed class MissingFieldException(string m) : Exception(m);

    static ulong Req(EventView e, string name)
    {
        if (e.TryGet(name, out var f) && f.IsInteger) return f.Bits;
        throw new MissingFieldException($"{e.Name}: field '{name}' missing or not an integer");
    }
    static ulong Req(EventView e, string name, string alt)
    {
        if (e.TryGet(name, out var f) && f.IsInteger) return f.Bits;
        return Req(e, alt);
    }
    static long ReqS(EventView e, string name) => unchecked((long)Req(e, name));
    static ulong Opt(EventView e, string name, ulong dflt = 0) => e.TryGet(name, out var f) && f.IsInteger ? f.Bits : dflt;
    static string OptStr(EventView e, string name) => e.Str(name) ?? "";

    DomainEvent? DecodeTracepoint(EventView e, string n)
    {
        switch (n)
        {
            case "mm_page_alloc":
            {
                ulong pfn = Req(e, "pfn");
                var page = e.TryGet("page", out var pf) && pf.IsInteger ? pf.Bits : 0;
                LearnFromAlloc(page, pfn);
                return Fill(new PageAllocEvent
                {
                    Page = new PageRef { Ptr = IsKernelPointer(page) ? page : 0, Pfn = pfn },
                    Order = (int)Opt(e, "order"), Migratetype = (int)Opt(e, "migratetype"), GfpFlags = e.Str("gfp_flags"),
                }, e);
            }
            case "mm_page_free" or "mm_page_free_batched" or "mm_page_free_direct" or "mm_pagevec_free":
            {
                ulong pfn = Req(e, "pfn");
                var page = Opt(e, "page");
                return Fill(new PageFreeEvent
                {
                    Page = new PageRef { Ptr = IsKernelPointer(page) ? page : 0, Pfn = pfn },
                    Order = (int)Opt(e, "order"),
                    Free = n switch
                    {
                        "mm_page_free_batched" => FreeKind.FreeBatched,
                        "mm_page_free_direct" => FreeKind.FreeDirect,
                        "mm_pagevec_free" => FreeKind.PagevecFree,
                        _ => FreeKind.Free,
                    },
                }, e);
            }
            case "mm_filemap_add_to_page_cache" or "mm_filemap_delete_from_page_cache":
            {
                var (maj, min) = Dev(e);
                ulong index = e.TryGet("ofs", out var ofs) && ofs.IsInteger ? ofs.Bits >> 12 : Req(e, "index");
                return Fill(new PageCacheEvent
                {
                    Add = n == "mm_filemap_add_to_page_cache", Page = PageRef.FromPfn(Req(e, "pfn")),
                    DevMajor = maj, DevMinor = min, Ino = Req(e, "ino", "i_ino"), Index = index, Order = (int)Opt(e, "order"),
                }, e);
            }
            case "mm_migrate_pages_start":
                return Fill(new MigratePagesStartEvent { Mode = OptStr(e, "mode"), Reason = OptStr(e, "reason") }, e);
            case "mm_migrate_pages":
                return Fill(new MigratePagesEndEvent
                {
                    Succeeded = Req(e, "nr_succeeded", "succeeded"), Failed = Req(e, "nr_failed", "failed"),
                    ThpSucceeded = Opt(e, "nr_thp_succeeded", Opt(e, "thp_succeeded")),
                    ThpFailed = Opt(e, "nr_thp_failed", Opt(e, "thp_failed")),
                    ThpSplit = Opt(e, "nr_thp_split", Opt(e, "thp_split")),
                    Split = e.U64("nr_split") ?? e.U64("large_folio_split"),
                    Mode = OptStr(e, "mode"), Reason = OptStr(e, "reason"),
                }, e);
            case "set_migration_pte" or "remove_migration_pte" or "set_migration_pmd" or "remove_migration_pmd":
            {
                bool set = n.StartsWith("set", StringComparison.Ordinal), pmd = n.EndsWith("pmd", StringComparison.Ordinal);
                ulong pte = pmd ? Req(e, "pmd") : Req(e, "pte");
                return Fill(new MigrationPteEvent
                {
                    Set = set, Pmd = pmd, Addr = Req(e, "addr"), Pte = pte, Order = (int)Opt(e, "order"),
                    Pfn = set ? MigrationPteEvent.SwapPtePfn(pte) : MigrationPteEvent.PresentPtePfn(pte),
                }, e);
            }
            case "mod_memcg_state" or "mod_memcg_lruvec_state" or "count_memcg_events":
                return Fill(new MemcgStatEvent
                {
                    Class = n switch { "mod_memcg_state" => MemcgStatClass.ModMemcgState, "mod_memcg_lruvec_state" => MemcgStatClass.ModMemcgLruvecState, _ => MemcgStatClass.CountMemcgEvents },
                    MemcgId = Req(e, "memcg_id", "id"), Item = (int)ReqS(e, "item"), Val = ReqS(e, "val"),
                }, e);
            case "print" or "tracing_mark_write":
            {
                string? text = e.Str("buf");
                if (text == null)
                    foreach (var f in e.Fields) if (f.Type == FieldType.Str) { text = f.Text; break; }
                return Fill(new MarkerEvent { Text = (text ?? "").TrimEnd('\n') }, e);
            }
        }
        return null;
    }

    void LearnFromAlloc(ulong page, ulong pfn)
    {
        if (VmemmapBase != null || !IsKernelPointer(page) || pfn == 0) return;
        ulong cand = page - pfn * StructPageSize;
        // Only a base that two allocations agree on: trace-cmd prints a wrong page= (symbol address + pfn).
        if (cand == _allocCandidate) VmemmapBase = cand;
        else _allocCandidate = cand;
    }

    static (uint, uint) Dev(EventView e)
    {
        if (e.TryGet("dev_major", out var maj0) && maj0.IsInteger && e.TryGet("dev_minor", out var min0) && min0.IsInteger)
            return ((uint)maj0.Bits, (uint)min0.Bits);
        if (!e.TryGet("dev", out var f) && !e.TryGet("s_dev", out f))
            throw new MissingFieldException($"{e.Name}: field 'dev' missing");
        if (f.IsInteger) return ((uint)(f.Bits >> 20), (uint)(f.Bits & 0xfffff));
        var s = f.Text ?? "";
        int c = s.IndexOf(':');
        if (c > 0 && uint.TryParse(s.AsSpan(0, c), out var maj) && uint.TryParse(s.AsSpan(c + 1), out var min)) return (maj, min);
        throw new MissingFieldException($"{e.Name}: dev '{s}' is not MAJOR:MINOR");
    }

    DomainEvent? DecodeProbe(EventView e, ProbeTarget pt)
    {
        var fn = pt.Function;
        if (pt.IsReturn)
        {
            long ret = e.TryGet("ret", out var rf) && rf.IsInteger ? rf.AsS64
                : e.TryGet("rc", out rf) && rf.IsInteger ? rf.AsS64
                : FirstInt(e) ?? throw new MissingFieldException($"{e.Name}: return value missing");
            return Fill(new FunctionReturnEvent { Function = fn, Ret = ret, Caller = pt.Caller }, e);
        }
        switch (fn)
        {
            case "mem_cgroup_migrate":
                return Fill(new MemcgMigrateEvent { Function = fn, Old = PageWithFields(e, Req(e, "old"), ""), New = PageWithFields(e, Req(e, "new"), "n") }, e);
            case "page_add_file_rmap" or "page_add_anon_rmap":
                return Fill(new RmapAddEvent
                {
                    Function = fn, Page = PageWithFields(e, Req(e, "page"), ""), Compound = Opt(e, "compound") != 0,
                    AnonFunction = fn == "page_add_anon_rmap", AnonVma = e.U64("anon_vma"), Nr = 1,
                }, e);
            case "folio_add_file_rmap_ptes" or "folio_add_file_rmap_pte" or "folio_add_file_rmap_pmd":
            {
                bool pmd = fn.EndsWith("pmd", StringComparison.Ordinal);
                return Fill(new RmapAddEvent
                {
                    Function = fn, Page = PageWithFields(e, Req(e, "folio"), ""), SubPagePtr = Opt(e, "page"),
                    Nr = pmd ? 512 : (int)Opt(e, "nr", 1), Compound = pmd,
                }, e);
            }
            case "page_remove_rmap":
                return Fill(new RmapRemoveEvent
                {
                    Function = fn, Page = PageWithFields(e, Req(e, "page"), ""), Compound = Opt(e, "compound") != 0,
                    Anon = e.U64("anon") is { } a ? a != 0 : null, Nr = 1,
                }, e);
            case "folio_remove_rmap_ptes" or "folio_remove_rmap_pte" or "folio_remove_rmap_pmd":
            {
                bool pmd = fn.EndsWith("pmd", StringComparison.Ordinal);
                return Fill(new RmapRemoveEvent
                {
                    Function = fn, Page = PageWithFields(e, Req(e, "folio"), ""), SubPagePtr = Opt(e, "page"),
                    Nr = pmd ? 512 : (int)Opt(e, "nr", 1), Compound = pmd,
                }, e);
            }
            case "__mod_lruvec_page_state" or "__lruvec_stat_mod_folio":
            {
                ulong ptr = e.TryGet("ptr", out var pf) && pf.IsInteger ? pf.Bits : Req(e, fn == "__lruvec_stat_mod_folio" ? "folio" : "page");
                return Fill(new LruvecStatEvent { Function = fn, Page = PageWithFields(e, ptr, ""), Item = (int)ReqS(e, "idx"), Val = ReqS(e, "val") }, e);
            }
            case "try_to_migrate" or "try_to_unmap":
            {
                bool modern = e.IndexOf("ttu_flags") >= 0;
                ulong ptr = e.TryGet("folio", out var ff) && ff.IsInteger ? ff.Bits : Req(e, "page");
                var page = PageWithFields(e, ptr, "");
                if (!modern) page = page with { Flags = null };
                return Fill(new UnmapEvent { Function = fn, Page = page, TtuFlags = modern ? Opt(e, "ttu_flags") : Opt(e, "flags") }, e);
            }
            case "move_to_new_folio":
                return Fill(new MoveToNewFolioEvent { Function = fn, Dst = Page(Req(e, "dst")), Src = Page(Req(e, "src")), Mode = (uint)Opt(e, "mode") }, e);
            case "folio_migrate_mapping" or "__folio_migrate_mapping":
                return Fill(new MigrateMappingEvent
                {
                    Function = fn, MappingPtr = Opt(e, "mapping"), New = Page(Req(e, "newf")),
                    Old = PageWithFields(e, Req(e, "oldf"), "o"), Extra = (int)Opt(e, "extra"),
                }, e);
            case "migrate_folio_move":
                return Fill(new MigrateFolioMoveEvent { Function = fn, Src = Page(Req(e, "src")), Dst = Page(Req(e, "dst")), Mode = (uint)Opt(e, "mode"), Reason = (uint)Opt(e, "reason") }, e);
            case "migrate_folio_undo_src":
                return Fill(new MigrateFolioUndoSrcEvent { Function = fn, Src = PageWithFields(e, Req(e, "src"), ""), PageWasMapped = (int)Opt(e, "page_was_mapped") }, e);
            case "remove_migration_ptes":
                return Fill(new RemoveMigrationPtesEvent
                {
                    Function = fn,
                    Src = PageWithFields(e, e.TryGet("src", out var sf) && sf.IsInteger ? sf.Bits : Req(e, "old"), ""),
                    Dst = PageWithFields(e, e.TryGet("dst", out var df) && df.IsInteger ? df.Bits : Req(e, "new"), "n"),
                }, e);
            case "__mem_cgroup_uncharge":
                return Fill(new MemcgUnchargeEvent { Function = fn, Folio = PageWithFields(e, Req(e, "folio"), "") }, e);
            case "__mem_cgroup_uncharge_list" or "__mem_cgroup_uncharge_folios":
                return Fill(new MemcgUnchargeBatchEvent { Function = fn, Arg = Opt(e, "arg") }, e);
            case "mem_cgroup_prepare_migration":
                return Fill(new PrepareMigrationEvent
                {
                    Function = fn, Page = Page(Req(e, "page")), NewPage = e.U64("newpage") is { } np ? Page(np) : null,
                    Anon = Opt(e, "anon") != 0, PcFlags = Opt(e, "pcflags"), Memcg = Opt(e, "memcg"),
                }, e);
            case "__mem_cgroup_commit_charge":
                return Fill(new CommitChargeEvent { Function = fn, Page = Page(Req(e, "page")), Memcg = Req(e, "memcg"), Ctype = (int)Opt(e, "ctype"), PcFlags = Opt(e, "pcflags") }, e);
            case "mem_cgroup_end_migration":
                return Fill(new EndMigrationEvent { Function = fn, Mem = Opt(e, "mem"), OldPage = Page(Req(e, "oldpage")), NewPage = Page(Req(e, "newpage")), OldMapping = Opt(e, "oldmapping") }, e);
            case "__mem_cgroup_uncharge_common":
                return Fill(new UnchargeCommonEvent { Function = fn, Page = Page(Req(e, "page")), Ctype = (int)Opt(e, "ctype"), PcFlags = Opt(e, "pcflags"), Memcg = Opt(e, "memcg"), Mapcount = (int)(long)Opt(e, "mapcount", unchecked((ulong)-1L)) }, e);
            case "mem_cgroup_uncharge_page":
                return Fill(new UnchargePageEvent { Function = fn, Page = Page(Req(e, "page")), PcFlags = Opt(e, "pcflags"), Mapcount = (int)(long)Opt(e, "mapcount", unchecked((ulong)-1L)) }, e);
            case "mem_cgroup_update_file_mapped":
                return Fill(new UpdateFileMappedEvent { Function = fn, Page = Page(Req(e, "page")), Val = (int)ReqS(e, "val"), PcFlags = Opt(e, "pcflags"), Memcg = Opt(e, "memcg") }, e);
            case "anon_vma_pin" or "anon_vma_unpin":
                return Fill(new AnonVmaEvent { Function = fn, Op = fn == "anon_vma_pin" ? AnonVmaOp.Pin : AnonVmaOp.Unpin, Page = Page(Req(e, "page")), AnonVmaPtr = Req(e, "anon_vma") }, e);
            case "__put_anon_vma" or "put_anon_vma":
            {
                ulong av = e.TryGet("anon_vma", out var avf) && avf.IsInteger ? avf.Bits : (ulong)(FirstInt(e) ?? throw new MissingFieldException($"{e.Name}: anon_vma missing"));
                return Fill(new AnonVmaEvent { Function = fn, Op = AnonVmaOp.Unpin, AnonVmaPtr = av }, e);
            }
            case "anon_vma_free":
                return Fill(new AnonVmaEvent { Function = fn, Op = AnonVmaOp.Free, AnonVmaPtr = Req(e, "anon_vma") }, e);
            case "putback_lru_page":
                return Fill(new PutbackLruPageEvent { Function = fn, Page = Page(Req(e, "page")) }, e);
            case "move_to_new_page":
                return Fill(new MoveToNewPageEvent { Function = fn, NewPage = Page(Req(e, "newpage")), Page = Page(Req(e, "page")) }, e);
        }
        return null;
    }

    static long? FirstInt(EventView e)
    {
        foreach (var f in e.Fields) if (f.IsInteger) return f.AsS64;
        return null;
    }
}
