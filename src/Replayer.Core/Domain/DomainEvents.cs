using MessagePack;

namespace Replayer.Core.Domain;

/// <summary>A page (or folio) argument of an event: the raw pointer as the kernel passed it, the pfn
/// it maps to, and the <c>struct page</c> fields the probe fetched (null when not fetched).</summary>
[MessagePackObject]
public readonly record struct PageRef
{
    /// <summary>Sentinel for "pfn unknown" (pointer seen before the vmemmap base was known).</summary>
    public const ulong NoPfn = ulong.MaxValue;

    /// <summary>The raw <c>struct page *</c> value, 0 when the source gave a pfn directly (seed era, tracepoints).</summary>
    [Key(0)] public ulong Ptr { get; init; }
    [Key(1)] public ulong Pfn { get; init; }
    [Key(2)] public ulong? Flags { get; init; }
    /// <summary><c>page-&gt;mapping</c> (bit 0 set = anon: the anon_vma).</summary>
    [Key(3)] public ulong? Mapping { get; init; }
    [Key(4)] public ulong? Index { get; init; }
    /// <summary>Raw <c>_mapcount</c> at probe entry (−1 = unmapped).</summary>
    [Key(5)] public int? Mapcount { get; init; }
    [Key(6)] public int? Refcount { get; init; }
    /// <summary><c>memcg_data</c> with the low flag bits masked off (0 = uncharged), or the seed-era memcg id.</summary>
    [Key(7)] public ulong? Memcg { get; init; }

    [IgnoreMember] public bool HasPfn => Pfn != NoPfn;
    [IgnoreMember] public bool? IsAnon => Mapping is { } m ? (m & 1) != 0 : null;
    public static PageRef FromPfn(ulong pfn) => new() { Pfn = pfn };
    public override string ToString() => HasPfn ? "pfn 0x" + Pfn.ToString("x") : "page 0x" + Ptr.ToString("x");
}

/// <summary>Every domain event type, for fast switches and "required events" lists.</summary>
public enum DomainKind
{
    Generic, DataLoss, Marker,
    PageAlloc, PageFree, PageCacheAdd, PageCacheDelete,
    MigratePagesStart, MigratePagesEnd, SetMigrationPte, RemoveMigrationPte,
    MemcgStat,
    MemcgMigrate, RmapAdd, RmapRemove, LruvecStat, Unmap, MoveToNewFolio, MigrateMapping,
    MigrateFolioMove, MigrateFolioUndoSrc, RemoveMigrationPtes, MemcgUncharge, MemcgUnchargeBatch,
    FunctionReturn,
    // seed era (2.6.34/2.6.35)
    PrepareMigration, CommitCharge, EndMigration, UnchargeCommon, UnchargePage, UpdateFileMapped,
    AnonVma, PutbackLruPage, MoveToNewPage,
}

/// <summary>
/// A trace event decoded into the migration vocabulary (kernel-spec §3, capture-vocabulary.md).
/// Common header: time, cpu, pid, comm, and <see cref="Source"/> (line number or offset of the
/// TraceEvent it came from). Kprobe events carry the probed <see cref="ProbeEvent.Function"/>.
/// </summary>
[Union(0, typeof(GenericEvent))]
[Union(1, typeof(DataLossEvent))]
[Union(2, typeof(MarkerEvent))]
[Union(3, typeof(PageAllocEvent))]
[Union(4, typeof(PageFreeEvent))]
[Union(5, typeof(PageCacheEvent))]
[Union(6, typeof(MigratePagesStartEvent))]
[Union(7, typeof(MigratePagesEndEvent))]
[Union(8, typeof(MigrationPteEvent))]
[Union(9, typeof(MemcgStatEvent))]
[Union(10, typeof(MemcgMigrateEvent))]
[Union(11, typeof(RmapAddEvent))]
[Union(12, typeof(RmapRemoveEvent))]
[Union(13, typeof(LruvecStatEvent))]
[Union(14, typeof(UnmapEvent))]
[Union(15, typeof(MoveToNewFolioEvent))]
[Union(16, typeof(MigrateMappingEvent))]
[Union(17, typeof(MigrateFolioMoveEvent))]
[Union(18, typeof(MigrateFolioUndoSrcEvent))]
[Union(19, typeof(RemoveMigrationPtesEvent))]
[Union(20, typeof(MemcgUnchargeEvent))]
[Union(21, typeof(MemcgUnchargeBatchEvent))]
[Union(22, typeof(FunctionReturnEvent))]
[Union(23, typeof(PrepareMigrationEvent))]
[Union(24, typeof(CommitChargeEvent))]
[Union(25, typeof(EndMigrationEvent))]
[Union(26, typeof(UnchargeCommonEvent))]
[Union(27, typeof(UnchargePageEvent))]
[Union(28, typeof(UpdateFileMappedEvent))]
[Union(29, typeof(AnonVmaEvent))]
[Union(30, typeof(PutbackLruPageEvent))]
[Union(31, typeof(MoveToNewPageEvent))]
[MessagePackObject]
public abstract record DomainEvent
{
    // Explicit fields so the decoder can stamp the header onto the event it just built (SetHeader) instead
    // of copying the whole record with `with`; to everyone else these are init-only as before.
    long _timestamp;
    int _cpu;
    int _pid;
    string _comm = "";
    long _source;
    string _name = "";

    [Key(0)] public long Timestamp { get => _timestamp; init => _timestamp = value; }
    [Key(1)] public int Cpu { get => _cpu; init => _cpu = value; }
    [Key(2)] public int Pid { get => _pid; init => _pid = value; }
    [Key(3)] public string Comm { get => _comm; init => _comm = value; }
    /// <summary>The originating TraceEvent's <see cref="TraceEvent.Source"/> (line or byte offset).</summary>
    [Key(4)] public long Source { get => _source; init => _source = value; }
    /// <summary>The originating TraceEvent's name (<c>rt:file_rmap_add</c>).</summary>
    [Key(5)] public string Name { get => _name; init => _name = value; }

    /// <summary>Sets the header of an event the decoder has just built and not yet handed out.</summary>
    internal void SetHeader(long timestamp, int cpu, int pid, string comm, long source, string name)
    {
        _timestamp = timestamp;
        _cpu = cpu;
        _pid = pid;
        _comm = comm;
        _source = source;
        _name = name;
    }

    [IgnoreMember] public abstract DomainKind Kind { get; }
}

/// <summary>An event outside the vocabulary (or one that did not decode): kept whole, never dropped.</summary>
[MessagePackObject]
public sealed record GenericEvent : DomainEvent
{
    [Key(10)] public TraceEvent Raw { get; init; } = new();
    /// <summary>Why it is generic when it looked like vocabulary (missing field…); null otherwise.</summary>
    [Key(11)] public string? Note { get; init; }
    [IgnoreMember] public override DomainKind Kind => DomainKind.Generic;
}

[MessagePackObject]
public sealed record DataLossEvent : DomainEvent
{
    /// <summary>Events lost (0 = unknown count).</summary>
    [Key(10)] public ulong Lost { get; init; }
    [IgnoreMember] public override DomainKind Kind => DomainKind.DataLoss;
}

/// <summary><c>ftrace:print</c> / <c>tracing_mark_write</c> text written by a user-space task.</summary>
[MessagePackObject]
public sealed record MarkerEvent : DomainEvent
{
    [Key(10)] public string Text { get; init; } = "";
    [IgnoreMember] public override DomainKind Kind => DomainKind.Marker;
}

[MessagePackObject]
public sealed record PageAllocEvent : DomainEvent
{
    [Key(10)] public PageRef Page { get; init; }
    [Key(11)] public int Order { get; init; }
    [Key(12)] public int Migratetype { get; init; }
    [Key(13)] public string? GfpFlags { get; init; }
    [IgnoreMember] public override DomainKind Kind => DomainKind.PageAlloc;
}

public enum FreeKind : byte { Free = 0, FreeBatched = 1, FreeDirect = 2, PagevecFree = 3 }

/// <summary><c>mm_page_free</c>, <c>mm_page_free_batched</c> (fires in addition to mm_page_free in
/// 6.x: not a second free), 2.6.35 <c>mm_page_free_direct</c> / <c>mm_pagevec_free</c>.</summary>
[MessagePackObject]
public sealed record PageFreeEvent : DomainEvent
{
    [Key(10)] public PageRef Page { get; init; }
    [Key(11)] public int Order { get; init; }
    [Key(12)] public FreeKind Free { get; init; }
    /// <summary>Whether this event is the page's actual free (false for 6.x <c>mm_page_free_batched</c>).</summary>
    [IgnoreMember] public bool IsActualFree => Free != FreeKind.FreeBatched;
    [IgnoreMember] public override DomainKind Kind => DomainKind.PageFree;
}

/// <summary><c>filemap:mm_filemap_add_to_page_cache</c> / <c>mm_filemap_delete_from_page_cache</c>.</summary>
[MessagePackObject]
public sealed record PageCacheEvent : DomainEvent
{
    [Key(10)] public bool Add { get; init; }
    [Key(11)] public PageRef Page { get; init; }
    [Key(12)] public uint DevMajor { get; init; }
    [Key(13)] public uint DevMinor { get; init; }
    [Key(14)] public ulong Ino { get; init; }
    /// <summary>Page index in the file (<c>ofs &gt;&gt; 12</c>).</summary>
    [Key(15)] public ulong Index { get; init; }
    [Key(16)] public int Order { get; init; }
    [IgnoreMember] public override DomainKind Kind => Add ? DomainKind.PageCacheAdd : DomainKind.PageCacheDelete;
}

[MessagePackObject]
public sealed record MigratePagesStartEvent : DomainEvent
{
    [Key(10)] public string Mode { get; init; } = "";
    [Key(11)] public string Reason { get; init; } = "";
    [IgnoreMember] public override DomainKind Kind => DomainKind.MigratePagesStart;
}

[MessagePackObject]
public sealed record MigratePagesEndEvent : DomainEvent
{
    [Key(10)] public ulong Succeeded { get; init; }
    [Key(11)] public ulong Failed { get; init; }
    [Key(12)] public ulong ThpSucceeded { get; init; }
    [Key(13)] public ulong ThpFailed { get; init; }
    [Key(14)] public ulong ThpSplit { get; init; }
    /// <summary>6.12 <c>nr_split</c>; null before.</summary>
    [Key(15)] public ulong? Split { get; init; }
    [Key(16)] public string Mode { get; init; } = "";
    [Key(17)] public string Reason { get; init; } = "";
    [IgnoreMember] public override DomainKind Kind => DomainKind.MigratePagesEnd;
}

/// <summary><c>migrate:set_migration_pte</c> (pte is an x86_64 swap entry) or
/// <c>remove_migration_pte</c> (present pte); also the PMD variants.</summary>
[MessagePackObject]
public sealed record MigrationPteEvent : DomainEvent
{
    [Key(10)] public bool Set { get; init; }
    [Key(11)] public ulong Addr { get; init; }
    [Key(12)] public ulong Pte { get; init; }
    [Key(13)] public int Order { get; init; }
    /// <summary>The decoded pfn (spec §3).</summary>
    [Key(14)] public ulong Pfn { get; init; }
    [Key(15)] public bool Pmd { get; init; }
    [IgnoreMember] public override DomainKind Kind => Set ? DomainKind.SetMigrationPte : DomainKind.RemoveMigrationPte;

    /// <summary>Bits of a migration entry's swap offset that hold the pfn (<c>SWP_PFN_BITS</c> =
    /// MAX_PHYSMEM_BITS − PAGE_SHIFT = 52 − 12 on x86_64 kernels built with 5-level paging, as Debian's);
    /// the bits above are the SWP_MIG young/dirty flags.</summary>
    public const int SwpPfnBits = 40;
    /// <summary>x86_64: pfn of a migration swap entry (<c>offset = (~pte &lt;&lt; 5) &gt;&gt; 14</c>, masked to <see cref="SwpPfnBits"/>).</summary>
    public static ulong SwapPtePfn(ulong pte) => (((~pte) << 5) >> 14) & ((1UL << SwpPfnBits) - 1);
    /// <summary>x86_64 swap type (<c>pte &gt;&gt; 59</c>).</summary>
    public static int SwapPteType(ulong pte) => (int)(pte >> 59);
    /// <summary>x86_64: pfn of a present pte.</summary>
    public static ulong PresentPtePfn(ulong pte) => (pte & 0x000f_ffff_ffff_f000UL) >> 12;
}

public enum MemcgStatClass : byte { ModMemcgState = 0, ModMemcgLruvecState = 1, CountMemcgEvents = 2 }

/// <summary>6.13+ <c>memcg:*</c> tracepoints (val in pages).</summary>
[MessagePackObject]
public sealed record MemcgStatEvent : DomainEvent
{
    [Key(10)] public MemcgStatClass Class { get; init; }
    [Key(11)] public ulong MemcgId { get; init; }
    [Key(12)] public int Item { get; init; }
    [Key(13)] public long Val { get; init; }
    [IgnoreMember] public override DomainKind Kind => DomainKind.MemcgStat;
}

/// <summary>A kprobe/kretprobe event, identified by the probed function.</summary>
[MessagePackObject]
public abstract record ProbeEvent : DomainEvent
{
    [Key(6)] public string Function { get; init; } = "";
}

/// <summary><c>mem_cgroup_migrate(old, new)</c>: the commit of new's charge (6.x).</summary>
[MessagePackObject]
public sealed record MemcgMigrateEvent : ProbeEvent
{
    [Key(10)] public PageRef Old { get; init; }
    [Key(11)] public PageRef New { get; init; }
    [IgnoreMember] public override DomainKind Kind => DomainKind.MemcgMigrate;
}

/// <summary>rmap add: <c>page_add_file_rmap</c>, <c>folio_add_file_rmap_ptes/_pmd</c>, <c>page_add_anon_rmap</c>.
/// <see cref="PageRef.Mapcount"/> of <see cref="Page"/> is the value before the add.</summary>
[MessagePackObject]
public sealed record RmapAddEvent : ProbeEvent
{
    /// <summary>The folio (6.12) or page (6.1, seed) argument with its fetched fields.</summary>
    [Key(10)] public PageRef Page { get; init; }
    /// <summary>6.12: the first subpage argument; 0 otherwise.</summary>
    [Key(11)] public ulong SubPagePtr { get; init; }
    /// <summary>Pages mapped by the call (6.12 <c>nr</c>, 1 otherwise).</summary>
    [Key(12)] public int Nr { get; init; } = 1;
    [Key(13)] public bool Compound { get; init; }
    [Key(14)] public bool AnonFunction { get; init; }
    [Key(15)] public ulong? AnonVma { get; init; }
    [IgnoreMember] public override DomainKind Kind => DomainKind.RmapAdd;
}

/// <summary>rmap remove: <c>page_remove_rmap</c>, <c>folio_remove_rmap_ptes/_pmd</c>.</summary>
[MessagePackObject]
public sealed record RmapRemoveEvent : ProbeEvent
{
    [Key(10)] public PageRef Page { get; init; }
    [Key(11)] public ulong SubPagePtr { get; init; }
    [Key(12)] public int Nr { get; init; } = 1;
    [Key(13)] public bool Compound { get; init; }
    /// <summary>Seed era: the <c>anon</c> field.</summary>
    [Key(14)] public bool? Anon { get; init; }
    [IgnoreMember] public override DomainKind Kind => DomainKind.RmapRemove;
}

/// <summary><c>__mod_lruvec_page_state</c> / <c>__lruvec_stat_mod_folio</c> (item, value).</summary>
[MessagePackObject]
public sealed record LruvecStatEvent : ProbeEvent
{
    [Key(10)] public PageRef Page { get; init; }
    [Key(11)] public int Item { get; init; }
    [Key(12)] public long Val { get; init; }
    [IgnoreMember] public override DomainKind Kind => DomainKind.LruvecStat;
}

/// <summary><c>try_to_migrate</c> / <c>try_to_unmap</c> (6.x folio; seed-era page).</summary>
[MessagePackObject]
public sealed record UnmapEvent : ProbeEvent
{
    [Key(10)] public PageRef Page { get; init; }
    [Key(11)] public ulong TtuFlags { get; init; }
    [IgnoreMember] public bool ForMigration => Function == "try_to_migrate";
    [IgnoreMember] public override DomainKind Kind => DomainKind.Unmap;
}

[MessagePackObject]
public sealed record MoveToNewFolioEvent : ProbeEvent
{
    [Key(10)] public PageRef Dst { get; init; }
    [Key(11)] public PageRef Src { get; init; }
    [Key(12)] public uint Mode { get; init; }
    [IgnoreMember] public override DomainKind Kind => DomainKind.MoveToNewFolio;
}

/// <summary><c>folio_migrate_mapping</c> / <c>__folio_migrate_mapping</c> entry.</summary>
[MessagePackObject]
public sealed record MigrateMappingEvent : ProbeEvent
{
    [Key(10)] public ulong MappingPtr { get; init; }
    [Key(11)] public PageRef New { get; init; }
    [Key(12)] public PageRef Old { get; init; }
    [Key(13)] public int Extra { get; init; }
    [IgnoreMember] public override DomainKind Kind => DomainKind.MigrateMapping;
}

[MessagePackObject]
public sealed record MigrateFolioMoveEvent : ProbeEvent
{
    [Key(10)] public PageRef Src { get; init; }
    [Key(11)] public PageRef Dst { get; init; }
    [Key(12)] public uint Mode { get; init; }
    [Key(13)] public uint Reason { get; init; }
    [IgnoreMember] public override DomainKind Kind => DomainKind.MigrateFolioMove;
}

[MessagePackObject]
public sealed record MigrateFolioUndoSrcEvent : ProbeEvent
{
    [Key(10)] public PageRef Src { get; init; }
    [Key(11)] public int PageWasMapped { get; init; }
    [IgnoreMember] public override DomainKind Kind => DomainKind.MigrateFolioUndoSrc;
}

/// <summary><c>remove_migration_ptes(src, dst)</c> (inlined on the Debian 6.x kernels: never fires there).</summary>
[MessagePackObject]
public sealed record RemoveMigrationPtesEvent : ProbeEvent
{
    [Key(10)] public PageRef Src { get; init; }
    [Key(11)] public PageRef Dst { get; init; }
    [IgnoreMember] public override DomainKind Kind => DomainKind.RemoveMigrationPtes;
}

/// <summary><c>__mem_cgroup_uncharge(folio)</c>.</summary>
[MessagePackObject]
public sealed record MemcgUnchargeEvent : ProbeEvent
{
    [Key(10)] public PageRef Folio { get; init; }
    [IgnoreMember] public override DomainKind Kind => DomainKind.MemcgUncharge;
}

/// <summary><c>__mem_cgroup_uncharge_list</c> / <c>_folios</c>: the list pointer only.</summary>
[MessagePackObject]
public sealed record MemcgUnchargeBatchEvent : ProbeEvent
{
    [Key(10)] public ulong Arg { get; init; }
    [IgnoreMember] public override DomainKind Kind => DomainKind.MemcgUnchargeBatch;
}

/// <summary>A kretprobe: the function returned <see cref="Ret"/> to <see cref="Caller"/>.</summary>
[MessagePackObject]
public sealed record FunctionReturnEvent : ProbeEvent
{
    [Key(10)] public long Ret { get; init; }
    [Key(11)] public string? Caller { get; init; }
    [IgnoreMember] public override DomainKind Kind => DomainKind.FunctionReturn;
}

// ---- seed era (2.6.34 / 2.6.35), capture-vocabulary.md "2.6.35-era vocabulary" ----

/// <summary><c>mem_cgroup_prepare_migration(page, newpage, &amp;mem)</c>: old page's pc at entry.</summary>
[MessagePackObject]
public sealed record PrepareMigrationEvent : ProbeEvent
{
    [Key(10)] public PageRef Page { get; init; }
    /// <summary>2.6.34 has no newpage argument: null.</summary>
    [Key(11)] public PageRef? NewPage { get; init; }
    [Key(12)] public bool Anon { get; init; }
    [Key(13)] public ulong PcFlags { get; init; }
    [Key(14)] public ulong Memcg { get; init; }
    [IgnoreMember] public override DomainKind Kind => DomainKind.PrepareMigration;
}

[MessagePackObject]
public sealed record CommitChargeEvent : ProbeEvent
{
    [Key(10)] public PageRef Page { get; init; }
    [Key(11)] public ulong Memcg { get; init; }
    [Key(12)] public int Ctype { get; init; }
    [Key(13)] public ulong PcFlags { get; init; }
    [IgnoreMember] public override DomainKind Kind => DomainKind.CommitCharge;
}

[MessagePackObject]
public sealed record EndMigrationEvent : ProbeEvent
{
    [Key(10)] public ulong Mem { get; init; }
    [Key(11)] public PageRef OldPage { get; init; }
    [Key(12)] public PageRef NewPage { get; init; }
    [Key(13)] public ulong OldMapping { get; init; }
    [IgnoreMember] public override DomainKind Kind => DomainKind.EndMigration;
}

[MessagePackObject]
public sealed record UnchargeCommonEvent : ProbeEvent
{
    [Key(10)] public PageRef Page { get; init; }
    [Key(11)] public int Ctype { get; init; }
    [Key(12)] public ulong PcFlags { get; init; }
    [Key(13)] public ulong Memcg { get; init; }
    [Key(14)] public int Mapcount { get; init; }
    [IgnoreMember] public override DomainKind Kind => DomainKind.UnchargeCommon;
}

[MessagePackObject]
public sealed record UnchargePageEvent : ProbeEvent
{
    [Key(10)] public PageRef Page { get; init; }
    [Key(11)] public ulong PcFlags { get; init; }
    [Key(12)] public int Mapcount { get; init; }
    [IgnoreMember] public override DomainKind Kind => DomainKind.UnchargePage;
}

/// <summary><c>mem_cgroup_update_file_mapped(page, val)</c>: applied only if pcflags has USED.</summary>
[MessagePackObject]
public sealed record UpdateFileMappedEvent : ProbeEvent
{
    [Key(10)] public PageRef Page { get; init; }
    [Key(11)] public int Val { get; init; }
    [Key(12)] public ulong PcFlags { get; init; }
    [Key(13)] public ulong Memcg { get; init; }
    [IgnoreMember] public override DomainKind Kind => DomainKind.UpdateFileMapped;
}

public enum AnonVmaOp : byte { Pin = 0, Unpin = 1, Free = 2 }

[MessagePackObject]
public sealed record AnonVmaEvent : ProbeEvent
{
    [Key(10)] public AnonVmaOp Op { get; init; }
    /// <summary>Null for <c>anon_vma_free</c>.</summary>
    [Key(11)] public PageRef? Page { get; init; }
    [Key(12)] public ulong AnonVmaPtr { get; init; }
    [IgnoreMember] public override DomainKind Kind => DomainKind.AnonVma;
}

[MessagePackObject]
public sealed record PutbackLruPageEvent : ProbeEvent
{
    [Key(10)] public PageRef Page { get; init; }
    [IgnoreMember] public override DomainKind Kind => DomainKind.PutbackLruPage;
}

/// <summary>2.6.35 <c>move_to_new_page(newpage, page)</c> entry (return: <see cref="FunctionReturnEvent"/>).</summary>
[MessagePackObject]
public sealed record MoveToNewPageEvent : ProbeEvent
{
    [Key(10)] public PageRef NewPage { get; init; }
    [Key(11)] public PageRef Page { get; init; }
    [IgnoreMember] public override DomainKind Kind => DomainKind.MoveToNewPage;
}

/// <summary>page_cgroup flag bits (2.6.35).</summary>
public static class PcgFlags
{
    public const ulong Lock = 1, Cache = 2, Used = 4, AcctLru = 8, FileMapped = 16, Migration = 32;
}

/// <summary>Which pages an event touches (for <c>history</c> and evidence).</summary>
public static class DomainEventPages
{
    /// <summary>The known pfns the event names (unknown pfns are skipped).</summary>
    public static IEnumerable<ulong> Pfns(DomainEvent e)
    {
        IEnumerable<PageRef> refs = e switch
        {
            PageAllocEvent a => [a.Page],
            PageFreeEvent f => [f.Page],
            PageCacheEvent c => [c.Page],
            MemcgMigrateEvent m => [m.Old, m.New],
            RmapAddEvent r => [r.Page],
            RmapRemoveEvent r => [r.Page],
            LruvecStatEvent l => [l.Page],
            UnmapEvent u => [u.Page],
            MoveToNewFolioEvent m => [m.Dst, m.Src],
            MigrateMappingEvent m => [m.New, m.Old],
            MigrateFolioMoveEvent m => [m.Src, m.Dst],
            MigrateFolioUndoSrcEvent u => [u.Src],
            RemoveMigrationPtesEvent r => [r.Src, r.Dst],
            MemcgUnchargeEvent u => [u.Folio],
            PrepareMigrationEvent p => p.NewPage is { } np ? [p.Page, np] : [p.Page],
            CommitChargeEvent c => [c.Page],
            EndMigrationEvent em => [em.OldPage, em.NewPage],
            UnchargeCommonEvent u => [u.Page],
            UnchargePageEvent u => [u.Page],
            UpdateFileMappedEvent u => [u.Page],
            AnonVmaEvent a => a.Page is { } p ? [p] : [],
            PutbackLruPageEvent p => [p.Page],
            MoveToNewPageEvent m => [m.NewPage, m.Page],
            MigrationPteEvent pte => [PageRef.FromPfn(pte.Pfn)],
            _ => [],
        };
        foreach (var r in refs) if (r.HasPfn) yield return r.Pfn;
    }
}
