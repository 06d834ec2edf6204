using System.Runtime.CompilerServices;
using Replayer.Core.Domain;

namespace Replayer.Replay.SeedEra;

/// <summary>What the last FILE_MAPPED +1 of a page did (seed era).</summary>
public enum LastPlus : byte
{
    /// <summary>Not known (page seen only mid-life, or data loss).</summary>
    Unknown = 0,
    /// <summary>Allocated in the capture, no +1 since (or the last one was consumed by a −1).</summary>
    None,
    /// <summary>The +1 was dropped: the page was not PCG_USED.</summary>
    Dropped,
    /// <summary>Counted to <see cref="SeedPage.PlusMemcg"/>.</summary>
    Counted,
}

/// <summary>Seed-era facts about a page that <see cref="PageState"/> has no slot for.</summary>
public sealed class SeedPage
{
    public LastPlus Plus { get; set; }
    public ulong PlusMemcg { get; set; }
    public DomainEvent? PlusEvent { get; set; }
    /// <summary>anon_vma (without the low bit) the page belongs to; null when not anon or unknown.</summary>
    public ulong? AnonVma { get; set; }
    /// <summary>Known not to be in the swap cache (file page; old page after a successful move, new
    /// page after a failed one): an uncharge of it that passes the mapped/MIGRATION checks takes effect.</summary>
    public bool NotSwapCache { get; set; }
}

/// <summary>Seed-era facts about one <c>unmap_and_move</c> attempt.</summary>
public sealed class SeedAttempt
{
    /// <summary>The memcg charged for the migration (old page's pc memcg when PCG_USED); 0 = none.</summary>
    public ulong Mem { get; set; }
    public bool Anon { get; set; }
    public PrepareMigrationEvent? Prepare { get; set; }
    /// <summary>prepare returned 0.</summary>
    public bool PrepareOk { get; set; }
    /// <summary>Between a successful prepare and the entry of <c>mem_cgroup_end_migration</c> (I3's window).</summary>
    public bool Open { get; set; }
    public bool NewCommitted { get; set; }
    /// <summary>First rmap add on the new page while its charge was not committed.</summary>
    public RmapAddEvent? FirstAddBeforeCommit { get; set; }
    public bool I2Reported { get; set; }
    /// <summary>Null until known: the move returned 0 / end_migration saw old->mapping == NULL.</summary>
    public bool? Success { get; set; }
    /// <summary>Whether the old (anon) page was unmapped when the unmap step began; null = unknown.</summary>
    public bool? UnmappedAtStart { get; set; }
    public bool Pinned { get; set; }
    public EndMigrationEvent? End { get; set; }
}

/// <summary>
/// Seed-era side state kept beside <see cref="ReplayState"/> (attached to it, so the adapter and the
/// invariants of one replay share it without changing the shared model).
/// </summary>
public sealed class SeedState
{
    static readonly ConditionalWeakTable<ReplayState, SeedState> Table = new();

    public static SeedState Of(ReplayState s) => Table.GetValue(s, _ => new SeedState());

    public Dictionary<ulong, SeedPage> Pages { get; } = [];
    public Dictionary<long, SeedAttempt> Attempts { get; } = [];
    /// <summary>Per task: the attempt whose prepare has not returned yet.</summary>
    public Dictionary<int, MigrationAttempt> PrepareInFlight { get; } = [];
    /// <summary>anon_vmas seen freed (and not seen alive again).</summary>
    public HashSet<ulong> FreedAnonVmas { get; } = [];
    /// <summary>External pins per anon_vma (2.6.35 <c>external_refcount</c>).</summary>
    public Dictionary<ulong, int> Pins { get; } = [];
    /// <summary>The attempt whose <c>move_to_new_page</c> returned last (set by the adapter for the invariants' After hook).</summary>
    public MigrationAttempt? LastMoveReturned { get; set; }
    /// <summary>Data loss happened: anon_vma liveness is no longer known.</summary>
    public bool AnonVmaTainted { get; set; }

    public SeedPage Page(ulong pfn)
    {
        if (!Pages.TryGetValue(pfn, out var p)) Pages[pfn] = p = new SeedPage();
        return p;
    }

    public SeedAttempt Attempt(MigrationAttempt a)
    {
        if (!Attempts.TryGetValue(a.Id, out var x)) Attempts[a.Id] = x = new SeedAttempt();
        return x;
    }

    public SeedAttempt? AttemptOrNull(MigrationAttempt? a) => a != null && Attempts.TryGetValue(a.Id, out var x) ? x : null;
}
