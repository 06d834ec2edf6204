namespace Replayer.Gen.Sim;

/// <summary>page_cgroup flag bits (2.6.35 include/linux/page_cgroup.h).</summary>
public static class Pcg
{
    public const int Lock = 1 << 0, Cache = 1 << 1, Used = 1 << 2, AcctLru = 1 << 3, FileMapped = 1 << 4, Migration = 1 << 5;
}

/// <summary>2.6.35 <c>enum charge_type</c>.</summary>
public static class CType
{
    public const int Mapped = 0, Cache = 1, Shmem = 2, Force = 3, SwapOut = 4, Drop = 5;
}

public sealed class Memcg(string name, ulong id)
{
    public string Name { get; } = name;
    public ulong Id { get; } = id;
    /// <summary>MEM_CGROUP_STAT_FILE_MAPPED.</summary>
    public long FileMapped { get; set; }
}

public sealed class AnonVma(ulong addr)
{
    public ulong Addr { get; } = addr;
    /// <summary>VMAs linked to it (one per owning region here).</summary>
    public int Users { get; set; }
    /// <summary>2.6.35 <c>external_refcount</c> (migration pins).</summary>
    public int ExternalRef { get; set; }
    public bool Freed { get; set; }
}

public sealed class FileObj(ulong addr)
{
    public ulong Addr { get; } = addr;
    public Dictionary<int, Page> Cache { get; } = new();
}

public sealed class Page(ulong pfn)
{
    public ulong Pfn { get; } = pfn;
    /// <summary>Raw <c>_mapcount</c>: −1 = unmapped.</summary>
    public int MapCount { get; set; } = -1;
    /// <summary>page->mapping: 0, the file's address_space, or anon_vma|1.</summary>
    public ulong Mapping { get; set; }
    public int Index { get; set; }
    public bool SwapCache { get; set; }
    public int SwapSlot { get; set; } = -1;
    public bool Locked { get; set; }
    public bool Freed { get; set; }
    /// <summary>Isolated from the LRU by the migration caller (holds a reference).</summary>
    public bool Isolated { get; set; }
    public int Pc { get; set; }
    public Memcg? PcMem { get; set; }
    public bool IsAnon => (Mapping & 1) != 0;
    public FileObj? File { get; set; }
    public AnonVma? Av { get; set; }
    public Task? Owner { get; set; }

    // ---- oracle bookkeeping (never printed) ----
    /// <summary>Memcg the last +1 of FILE_MAPPED was counted to; null when it was dropped or consumed.</summary>
    public Memcg? LastPlusCountedTo { get; set; }
    /// <summary>The migration this page is the new page of.</summary>
    public Migration? NewOf { get; set; }
    /// <summary>The migration this page is the old page of (while it runs).</summary>
    public Migration? OldOf { get; set; }

    public bool Mapped => MapCount >= 0;
    public bool InPageCache => File != null && File.Cache.TryGetValue(Index, out var p) && ReferenceEquals(p, this);
    /// <summary>Anything besides an isolation reference keeps the page alive.</summary>
    public bool HasUsers => Mapped || InPageCache || SwapCache;
}

public enum PteKind { Present, Migration, Swap }

public sealed class Pte(PteKind kind, Page? page, int slot = -1)
{
    public PteKind Kind { get; set; } = kind;
    public Page? Page { get; set; } = page;
    public int Slot { get; set; } = slot;
}

public sealed class Task(int pid, string comm, int cpu, Memcg memcg)
{
    public int Pid { get; } = pid;
    public string Comm { get; } = comm;
    public int Cpu { get; } = cpu;
    public Memcg Memcg { get; } = memcg;
    public bool Alive { get; set; } = true;
    public bool FileVma { get; set; }
    public bool AnonVmaMapped { get; set; }
    public AnonVma? Av { get; set; }
    public SortedDictionary<int, Pte> FilePtes { get; } = new();
    public SortedDictionary<int, Pte> AnonPtes { get; } = new();
}

/// <summary>One <c>unmap_and_move</c> call (oracle view).</summary>
public sealed class Migration(Page old, Page @new)
{
    public Page Old { get; } = old;
    public Page New { get; } = @new;
    public Memcg? Mem { get; set; }
    /// <summary>Between a successful prepare and the entry of end_migration (the I3 window).</summary>
    public bool Open { get; set; }
    public bool NewCommitted { get; set; }
    public bool I2Reported { get; set; }
    public AnonVma? Av { get; set; }
    public bool UnmappedAtStart { get; set; }
    public bool Pinned { get; set; }
}
