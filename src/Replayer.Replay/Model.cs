using System.Text;
using Replayer.Core.Domain;

namespace Replayer.Replay;

public enum AllocState : byte { Unknown = 0, Allocated = 1, Free = 2 }

/// <summary>Page-cache identity of a page.</summary>
public readonly record struct FileId(uint DevMajor, uint DevMinor, ulong Ino, ulong Index)
{
    public override string ToString() => $"{DevMajor}:{DevMinor}:{Ino:x}:{Index}";
}

/// <summary>What is known about one pfn (the head of a folio for large folios). Null = unknown.</summary>
public sealed class PageState(ulong pfn)
{
    public ulong Pfn { get; } = pfn;
    public AllocState Alloc { get; set; }
    public int Order { get; set; }
    public bool? Anon { get; set; }
    public FileId? File { get; set; }
    /// <summary>Raw <c>_mapcount</c> (−1 = unmapped); null when unknown (large folio, never probed, data loss).</summary>
    public int? Mapcount { get; set; }
    /// <summary><c>memcg_data</c> (masked) or seed memcg id; 0 = uncharged; null = unknown.</summary>
    public ulong? Memcg { get; set; }
    /// <summary>Seed era: page_cgroup flags (PCG_USED, PCG_MIGRATION, …); null = unknown.</summary>
    public ulong? PcgFlags { get; set; }
    /// <summary>memcg that received this page's last FILE_MAPPED +1 (null: none seen / unknown).</summary>
    public ulong? CountedMemcg { get; set; }
    /// <summary>Whether the implied FILE_MAPPED currently counts this page as mapped (null = unknown).</summary>
    public bool? CountedMapped { get; set; }
    /// <summary>The migration attempt this page is the src or dst of, while it is open.</summary>
    public MigrationAttempt? Attempt { get; set; }

    public bool IsMapped => Mapcount is >= 0;

    public PageState Clone() => (PageState)MemberwiseClone();

    /// <summary>An allocation-free copy of the state (for "state before" evidence).</summary>
    public PageView View() => new(Pfn, Alloc, Order, Anon, File, Mapcount, Memcg, PcgFlags, Attempt);

    public override string ToString() => View().ToString();
}

/// <summary>A value copy of a <see cref="PageState"/>.</summary>
public readonly record struct PageView(ulong Pfn, AllocState Alloc, int Order, bool? Anon, FileId? File, int? Mapcount, ulong? Memcg, ulong? PcgFlags, MigrationAttempt? Attempt)
{
    public override string ToString()
    {
        var sb = new StringBuilder();
        sb.Append("pfn 0x").Append(Pfn.ToString("x")).Append(' ').Append(Alloc switch { AllocState.Allocated => "allocated", AllocState.Free => "free", _ => "alloc?" });
        if (Order != 0) sb.Append(" order=").Append(Order);
        sb.Append(Anon switch { true => " anon", false => File is { } f ? " file=" + f : " file", _ => File is { } f2 ? " file=" + f2 : "" });
        sb.Append(" mapcount=").Append(Mapcount is { } m ? (m + 1).ToString() : "?");
        sb.Append(" memcg=").Append(Memcg is { } g ? "0x" + g.ToString("x") : "?");
        if (PcgFlags is { } pc) sb.Append(" pcflags=0x").Append(pc.ToString("x"));
        if (Attempt is { } a) sb.Append(" migrating(").Append(a.SrcPfn == Pfn ? "src" : "dst").Append(" #").Append(a.Id).Append(')');
        return sb.ToString();
    }
}

public sealed class MemcgState(ulong id)
{
    public ulong Id { get; } = id;
    /// <summary>FILE_MAPPED change (pages) as the counter events report it.</summary>
    public long CounterDelta { get; set; }
    /// <summary>FILE_MAPPED change (pages) as the page states imply it.</summary>
    public long ImpliedDelta { get; set; }
    /// <summary>FILE_MAPPED updates seen (counter events), whatever their net effect.</summary>
    public long Updates { get; set; }
    public bool Tainted { get; set; }
    /// <summary>Keyed by the cgroup id of the 6.13+ memcg tracepoints (not a memcg_data pointer): page
    /// states cannot imply its FILE_MAPPED, so only the counter is known.</summary>
    public bool IsCgroupId { get; set; }
}

public enum MigrationOutcome : byte { Pending = 0, Success = 1, Failed = 2, Unknown = 3 }

/// <summary>One attempt to migrate src to dst by one task.</summary>
public sealed class MigrationAttempt
{
    public long Id { get; init; }
    public int Pid { get; init; }
    public ulong SrcPfn { get; init; }
    public ulong DstPfn { get; set; } = PageRef.NoPfn;
    public MigrationWindow? Window { get; init; }
    public MigrationOutcome Outcome { get; set; }
    /// <summary>memcg of src when the attempt began (null = unknown).</summary>
    public ulong? SrcMemcg { get; set; }
    public int Order { get; set; }
    public DomainEvent? StartEvent { get; set; }
    public DomainEvent? MoveEvent { get; set; }
    public DomainEvent? CommitEvent { get; set; }
    public DomainEvent? OutcomeEvent { get; set; }
    public int SetEntries { get; set; }
    /// <summary>The dst pfn was freed (mm_page_free) after this attempt used it, before its window closed
    /// (6.12 retries an -EAGAIN move with the same dst and frees it once, after the last retry).</summary>
    public bool DstFreed { get; set; }
    public int RemoveEntries { get; set; }
    /// <summary>State became unknown (data loss) during the attempt.</summary>
    public bool Tainted { get; set; }
    public bool Committed => CommitEvent != null;
    /// <summary>Bits invariants may use to mark the attempt as handled (so their memory stays ∝ live attempts).</summary>
    public uint Marks { get; set; }
}

/// <summary>An <c>mm_migrate_pages_start</c> … <c>mm_migrate_pages</c> window of one task.</summary>
public sealed class MigrationWindow
{
    public int Pid { get; init; }
    public DomainEvent? Start { get; init; }
    public DomainEvent? End { get; set; }
    /// <summary>Data loss inside, or the window started before the capture.</summary>
    public bool Tainted { get; set; }
    /// <summary>Attempts in order (retries of the same src appear again).</summary>
    public List<MigrationAttempt> Attempts { get; } = [];
    /// <summary>Outstanding migration entries: (addr, src pfn) → count, with the first set event.</summary>
    public Dictionary<(ulong Addr, ulong Pfn), (int Count, DomainEvent First)> OpenEntries { get; } = [];
    /// <summary>Attempts by dst pfn that have not seen that pfn freed yet (retries reuse a dst).</summary>
    public Dictionary<ulong, List<MigrationAttempt>> UnfreedDsts { get; } = [];
    /// <summary>remove_migration_pte events with no set in this window (fork duplicates the entry into the child).</summary>
    public int UnmatchedRemoves { get; set; }
}

/// <summary>
/// The replay model: one tracker per kernel entity (pages, memcgs, migration attempts and windows).
/// Memory is proportional to live pages and open migrations: freed pages and closed windows are dropped.
/// </summary>
public sealed class ReplayState
{
    public Era Era { get; init; }
    public Dictionary<ulong, PageState> Pages { get; } = [];
    public Dictionary<ulong, MemcgState> Memcgs { get; } = [];
    /// <summary>Open window per task.</summary>
    public Dictionary<int, MigrationWindow> Windows { get; } = [];
    /// <summary>The open attempt of each src pfn.</summary>
    public Dictionary<ulong, MigrationAttempt> AttemptsBySrc { get; } = [];
    /// <summary>Per task: the attempt whose move/mapping call is in flight (kretprobes carry no arguments).</summary>
    public Dictionary<int, MigrationAttempt> InFlight { get; } = [];
    public long Events { get; set; }
    public long DataLoss { get; set; }
    long _nextAttempt;

    /// <summary>Observer hooks (reports, timelines): an attempt began / ended. Null: nobody listens.</summary>
    public Action<MigrationAttempt>? AttemptBegun { get; set; }
    public Action<MigrationAttempt>? AttemptEnded { get; set; }

    public PageState Page(ulong pfn)
    {
        if (!Pages.TryGetValue(pfn, out var p)) Pages[pfn] = p = new PageState(pfn);
        return p;
    }

    public PageState? PageOrNull(ulong pfn) => Pages.GetValueOrDefault(pfn);

    public MemcgState Memcg(ulong id)
    {
        if (!Memcgs.TryGetValue(id, out var m)) Memcgs[id] = m = new MemcgState(id);
        return m;
    }

    public MigrationAttempt BeginAttempt(int pid, ulong src, DomainEvent start)
    {
        Windows.TryGetValue(pid, out var w);
        var a = new MigrationAttempt { Id = ++_nextAttempt, Pid = pid, SrcPfn = src, Window = w, StartEvent = start };
        var sp = Page(src);
        a.SrcMemcg = sp.Memcg;
        a.Order = sp.Order;
        sp.Attempt = a;
        AttemptsBySrc[src] = a;
        w?.Attempts.Add(a);
        AttemptBegun?.Invoke(a);
        return a;
    }

    public MigrationAttempt? AttemptOfSrc(ulong src) => AttemptsBySrc.GetValueOrDefault(src);

    /// <summary>The open attempt that has <paramref name="dst"/> as its destination, if any.</summary>
    public MigrationAttempt? AttemptOfDst(ulong dst) =>
        Pages.TryGetValue(dst, out var p) && p.Attempt is { } a && a.DstPfn == dst ? a : null;

    public void EndAttempt(MigrationAttempt a)
    {
        if (AttemptsBySrc.TryGetValue(a.SrcPfn, out var cur) && ReferenceEquals(cur, a)) AttemptsBySrc.Remove(a.SrcPfn);
        if (Pages.TryGetValue(a.SrcPfn, out var s) && ReferenceEquals(s.Attempt, a)) s.Attempt = null;
        if (a.DstPfn != PageRef.NoPfn && Pages.TryGetValue(a.DstPfn, out var d) && ReferenceEquals(d.Attempt, a)) d.Attempt = null;
        AttemptEnded?.Invoke(a);
    }

    /// <summary>The kernel dropped events: everything known may be stale.</summary>
    public void ForgetAll()
    {
        foreach (var p in Pages.Values)
        {
            p.Alloc = AllocState.Unknown; p.Mapcount = null; p.CountedMapped = null; p.Memcg = null; p.PcgFlags = null; p.CountedMemcg = null;
            if (p.Attempt != null) p.Attempt.Tainted = true;
        }
        foreach (var w in Windows.Values) w.Tainted = true;
        foreach (var m in Memcgs.Values) m.Tainted = true;
        InFlight.Clear();
    }
}
