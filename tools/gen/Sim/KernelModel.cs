namespace Replayer.Gen.Sim;

/// <summary>What <c>unmap_and_move</c> does with a page whose <c>mapping</c> is NULL.</summary>
public enum NullMappingPolicy
{
    /// <summary>2.6.22 style (before seed 003): call <c>try_to_unmap</c> anyway (the BUG of seed 003).</summary>
    Unmap,
    /// <summary>2.6.24–2.6.34: <c>goto rcu_unlock</c>, the page is not moved this pass (rc = -EAGAIN).</summary>
    SkipAll,
    /// <summary>2.6.35: <c>goto skip_unmap</c>, the page is moved without unmapping.</summary>
    SkipUnmap,
}

/// <summary>
/// The kernel behaviours the simulation switches between. Each preset is one kernel's
/// <c>unmap_and_move</c> + memcg migration protocol (kernel-spec.md §1.3–1.6).
/// </summary>
public sealed record KernelModel(
    string Name,
    /// <summary>The release the capture's <c>uname.txt</c> reports.</summary>
    string Release,
    /// <summary>Seed 004 (2.6.35): new page committed in <c>mem_cgroup_prepare_migration</c>,
    /// <c>PCG_MIGRATION</c> held on the old anon page, FORCE uncharge of the unused page at end.
    /// False: 2.6.34, commit of the target only in <c>mem_cgroup_end_migration</c>.</summary>
    bool CommitInPrepare,
    NullMappingPolicy NullMapping,
    /// <summary>2.6.35: take <c>anon_vma-&gt;external_refcount</c> for a mapped anon page.</summary>
    bool PinAnonVma,
    /// <summary>2.6.35: an unmapped anon page that is not swapcache is skipped (<c>goto rcu_unlock</c>),
    /// and an unmapped swapcache page is moved with <c>remap_swapcache = 0</c>.</summary>
    bool GuardUnmappedAnon)
{
    /// <summary>Linux 2.6.34: pre-fix for seed 004 (the lost FILE_MAPPED race), has seed 003's checks (RCU only).</summary>
    public static readonly KernelModel V2634 = new("2.6.34", "2.6.34", false, NullMappingPolicy.SkipAll, false, false);

    /// <summary>Linux 2.6.35: both fixes, anon_vma external refcount, remap_swapcache.</summary>
    public static readonly KernelModel V2635 = new("2.6.35", "2.6.35", true, NullMappingPolicy.SkipUnmap, true, true);

    /// <summary>2.6.35's memcg code with seed 003 reverted: the 2.6.22-style <c>unmap_and_move</c>
    /// (no mapping check, no RCU / anon_vma pin, always remaps).</summary>
    public static readonly KernelModel Pre003 = new("2.6.22-style unmap_and_move (seed 003 reverted) + 2.6.35 memcg", "2.6.35-unplug003revert", true, NullMappingPolicy.Unmap, false, false);
}
