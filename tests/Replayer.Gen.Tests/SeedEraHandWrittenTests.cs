using System.Globalization;
using System.Text;
using Replayer.Gen;
using Replayer.Replay;

namespace Replayer.Gen.Tests;

/// <summary>
/// The checker on small captures written by hand from kernel-spec §1.6 (not by the simulation), so
/// that the generator and the checker cannot share a misreading unnoticed.
/// </summary>
public class SeedEraHandWrittenTests
{
    const string M = "0xffff880012340000", Map = "0xffff88000abc06d8", Av = "0xffff88000def0040";

    /// <summary>Writes raw ftrace text (one event per line, 1 µs apart) with the rt definitions and a uname beside it.</summary>
    static AuditResult Audit(string release, params string[] events)
    {
        var dir = Replayer.TestKit.Repo.TempDir("seed-hand");
        try
        {
            var sb = new StringBuilder("# tracer: nop\n#\n#           TASK-PID   CPU#  ||||    TIMESTAMP  FUNCTION\n#              | |       |   ||||       |         |\n");
            long us = 500_000_100;
            foreach (var e in events)
            {
                var (task, text) = e.StartsWith("kmig:") ? ("migratepages-77", e[5..]) : ("migwl-42", e);
                sb.Append(task.PadLeft(23)).Append("    [001] ....  ").Append((us / 1_000_000).ToString(CultureInfo.InvariantCulture))
                  .Append('.').Append((us % 1_000_000).ToString("D6", CultureInfo.InvariantCulture)).Append(": ").Append(text).Append('\n');
                us++;
            }
            File.WriteAllText(Path.Combine(dir, "trace.txt"), sb.ToString());
            File.WriteAllText(Path.Combine(dir, "kprobe_events.txt"), Output.KprobeEvents);
            File.WriteAllText(Path.Combine(dir, "uname.txt"), Output.Uname(release));
            return SeedCheck.Audit(Path.Combine(dir, "trace.txt"));
        }
        finally { Directory.Delete(dir, true); }
    }

    static string P(string fn, string args) => $"{fn}: ({fn}+0x0/0x100) {args}";
    static string Ret(string fn, string ev, string args) => $"{ev}: (unmap_and_move+0x1f0/0x5e0 <- {fn}) {args}";
    static string Alloc(int pfn) => $"mm_page_alloc: page=ffffea{pfn * 56:x10} pfn={pfn} order=0 migratetype=1 gfp_flags=GFP_HIGHUSER_MOVABLE";
    /// <summary>Line (1-based event index) → timestamp of that event.</summary>
    static long T(int eventIndex) => (500_000_100L + eventIndex - 1) * 1000;

    /// <summary>File page 0x100 charged to M and mapped once (FILE_MAPPED +1 counted).</summary>
    static readonly string[] MappedFilePage =
    [
        Alloc(0x100),
        P("__mem_cgroup_commit_charge", $"page=0x100 memcg={M} ctype=1 pcflags=0x0"),
        P("page_add_file_rmap", "page=0x100 mapcount=-1"),
        P("mem_cgroup_update_file_mapped", $"page=0x100 val=1 pcflags=0x6 memcg={M}"),
    ];

    [Fact]
    public void Interleaving_A_on_2_6_34_loses_the_remap_increment_and_the_later_munmap_decrement_is_unmatched()
    {
        var r = Audit("2.6.34", [.. MappedFilePage,
            "kmig:" + Alloc(0x200),
            "kmig:" + P("mem_cgroup_prepare_migration", $"page=0x100 newpage=0x200 anon=0 pcflags=0x16 memcg={M}"),
            "kmig:" + Ret("mem_cgroup_prepare_migration", "mem_cgroup_prepare_migration_ret", "ret=0"),
            "kmig:" + P("try_to_unmap", $"page=0x100 mapping={Map} flags=0x301"),
            "kmig:" + P("page_remove_rmap", "page=0x100 mapcount=0 anon=0"),
            "kmig:" + P("mem_cgroup_update_file_mapped", $"page=0x100 val=-1 pcflags=0x16 memcg={M}"),
            "kmig:" + P("move_to_new_page", "newpage=0x200 page=0x100"),
            "kmig:" + P("remove_migration_ptes", "old=0x100 new=0x200"),
            "kmig:" + P("page_add_file_rmap", "page=0x200 mapcount=-1"),                                    // 13: remap before commit
            "kmig:" + P("mem_cgroup_update_file_mapped", "page=0x200 val=1 pcflags=0x0 memcg=0x0"),         // dropped: not USED
            "kmig:" + Ret("move_to_new_page", "move_to_new_page_ret", "rc=0"),
            "kmig:" + P("mem_cgroup_end_migration", $"mem={M} oldpage=0x100 newpage=0x200 oldmapping=0x0"),
            "kmig:" + P("__mem_cgroup_uncharge_common", $"page=0x100 ctype=1 pcflags=0x6 memcg={M} mapcount=-1"),
            "kmig:" + P("__mem_cgroup_commit_charge", $"page=0x200 memcg={M} ctype=1 pcflags=0x0"),         // 18: commit while mapped
            "kmig:" + P("putback_lru_page", "page=0x100"),
            "kmig:" + "mm_page_free_direct: page=ffffea0000003800 pfn=256 order=0",
            "kmig:" + P("putback_lru_page", "page=0x200"),
            P("page_remove_rmap", "page=0x200 mapcount=0 anon=0"),
            P("mem_cgroup_update_file_mapped", $"page=0x200 val=-1 pcflags=0x6 memcg={M}")]);             // 23: unmatched −1
        Assert.Equal(Era.Seed2634, r.Era);
        Assert.Equal(
            [$"commit-before-remap remap-before-commit 200,100 @{T(13)}", $"file-mapped-conservation lost-increment 200 @{T(18)}", $"file-mapped-conservation unmatched-decrement 200 @{T(23)}"],
            r.Findings.Select(SeedCheck.Key).ToArray());
        var m = Assert.Single(r.Memcgs);
        // counter: +1 fault, −1 unmap, (+1 dropped), −1 munmap; the page states imply 0 (nothing stays mapped)
        Assert.Equal((-1L, 0L), (m.CounterDelta, m.ImpliedDelta));
    }

    [Fact]
    public void The_same_migration_on_2_6_35_commits_first_and_balances()
    {
        var r = Audit("2.6.35", Migration2635());
        Assert.Equal(Era.Seed2635, r.Era);
        Assert.Empty(r.Findings);
        Assert.Empty(r.Memcgs); // counter and page states both net 0: +1 fault, −1 unmap, +1 remap, −1 munmap
        Assert.Contains(r.Verdicts, v => v.InvariantId == "commit-before-remap" && v.Status == VerdictStatus.Pass && v.Checked > 0);
        Assert.Contains(r.Verdicts, v => v.InvariantId == "migration-flag-lifetime" && v.Status == VerdictStatus.Pass && v.Checked > 0 && v.SkippedUnknown == 0);
    }

    [Fact]
    public void A_file_migration_that_leaves_both_pages_charged_is_flagged_at_the_next_event_on_them()
    {
        // drop end_migration's FORCE uncharge of the unused old page: old and new both stay PCG_USED
        var events = Migration2635().Where(l => !l.Contains("ctype=3")).ToArray();
        var r = Audit("2.6.35", events);
        int putbackOld = Array.FindIndex(events, l => l.Contains("putback_lru_page: (putback_lru_page+0x0/0x100) page=0x100")) + 1;
        Assert.Equal([$"migration-flag-lifetime used-after-end 100,200 @{T(putbackOld)}"], r.Findings.Select(SeedCheck.Key).ToArray());
    }

    static string[] Migration2635() => [.. MappedFilePage,
            "kmig:" + Alloc(0x200),
            "kmig:" + P("mem_cgroup_prepare_migration", $"page=0x100 newpage=0x200 anon=0 pcflags=0x16 memcg={M}"),
            "kmig:" + P("__mem_cgroup_commit_charge", $"page=0x200 memcg={M} ctype=1 pcflags=0x0"),
            "kmig:" + Ret("mem_cgroup_prepare_migration", "mem_cgroup_prepare_migration_ret", "ret=0"),
            "kmig:" + P("try_to_unmap", $"page=0x100 mapping={Map} flags=0x301"),
            "kmig:" + P("page_remove_rmap", "page=0x100 mapcount=0 anon=0"),
            "kmig:" + P("mem_cgroup_update_file_mapped", $"page=0x100 val=-1 pcflags=0x16 memcg={M}"),
            "kmig:" + P("move_to_new_page", "newpage=0x200 page=0x100"),
            "kmig:" + P("remove_migration_ptes", "old=0x100 new=0x200"),
            "kmig:" + P("page_add_file_rmap", "page=0x200 mapcount=-1"),
            "kmig:" + P("mem_cgroup_update_file_mapped", $"page=0x200 val=1 pcflags=0x6 memcg={M}"),
            "kmig:" + Ret("move_to_new_page", "move_to_new_page_ret", "rc=0"),
            "kmig:" + P("mem_cgroup_end_migration", $"mem={M} oldpage=0x100 newpage=0x200 oldmapping=0x0"),
            "kmig:" + P("__mem_cgroup_uncharge_common", $"page=0x100 ctype=3 pcflags=0x6 memcg={M} mapcount=-1"),
            "kmig:" + P("putback_lru_page", "page=0x100"),
            "kmig:" + "mm_page_free_direct: page=ffffea0000003800 pfn=256 order=0",
            "kmig:" + P("putback_lru_page", "page=0x200"),
            P("page_remove_rmap", "page=0x200 mapcount=0 anon=0"),
            P("mem_cgroup_update_file_mapped", $"page=0x200 val=-1 pcflags=0x16 memcg={M}")];

    [Fact]
    public void A_minus_one_on_a_page_first_seen_mid_life_is_skipped_not_reported()
    {
        var r = Audit("2.6.34",
            P("page_remove_rmap", "page=0x300 mapcount=0 anon=0"),
            P("mem_cgroup_update_file_mapped", $"page=0x300 val=-1 pcflags=0x16 memcg={M}"));
        Assert.Empty(r.Findings);
        var v = Assert.Single(r.Verdicts, v => v.InvariantId == "file-mapped-conservation");
        Assert.Equal(1, v.SkippedUnknown);
    }

    [Fact]
    public void Anon_uncharge_inside_the_window_is_flagged_only_when_the_next_pcflags_show_it_took_effect()
    {
        string[] Run(string laterPcflags) =>
            Audit("2.6.34",
                Alloc(0x400),
                P("__mem_cgroup_commit_charge", $"page=0x400 memcg={M} ctype=0 pcflags=0x0"),
                P("page_add_anon_rmap", $"page=0x400 mapcount=-1 anon_vma={Av}"),
                "kmig:" + Alloc(0x500),
                "kmig:" + P("mem_cgroup_prepare_migration", $"page=0x400 newpage=0x500 anon=1 pcflags=0x4 memcg={M}"),
                "kmig:" + Ret("mem_cgroup_prepare_migration", "mem_cgroup_prepare_migration_ret", "ret=0"),
                "kmig:" + P("try_to_unmap", $"page=0x400 mapping={Av[..^1]}1 flags=0x301"),
                "kmig:" + P("page_remove_rmap", "page=0x400 mapcount=0 anon=1"),
                "kmig:" + P("mem_cgroup_uncharge_page", "page=0x400 pcflags=0x4 mapcount=-1"),
                "kmig:" + P("__mem_cgroup_uncharge_common", $"page=0x400 ctype=0 pcflags=0x4 memcg={M} mapcount=-1"),   // 10
                "kmig:" + P("move_to_new_page", "newpage=0x500 page=0x400"),
                "kmig:" + Ret("move_to_new_page", "move_to_new_page_ret", "rc=-16"),
                "kmig:" + P("remove_migration_ptes", "old=0x400 new=0x400"),
                "kmig:" + P("page_add_anon_rmap", $"page=0x400 mapcount=-1 anon_vma={Av}"),
                "kmig:" + P("mem_cgroup_end_migration", $"mem={M} oldpage=0x400 newpage=0x500 oldmapping={Av[..^1]}1"),
                "kmig:" + P("__mem_cgroup_commit_charge", $"page=0x400 memcg={M} ctype=0 pcflags={laterPcflags}"))
            .Findings.Select(SeedCheck.Key).ToArray();
        Assert.Equal([$"migration-flag-lifetime uncharged-during-migration 400 @{T(10)}"], Run("0x0"));  // 2.6.34: really uncharged
        Assert.Empty(Run("0x4"));                                                                         // swap cache: returned early
    }

    [Fact]
    public void Seed_003_unmap_of_a_null_mapping_and_a_walk_of_a_freed_anon_vma()
    {
        var r = Audit("2.6.35",
            Alloc(0x600),                                                                                    // swap readahead: no rmap, no charge
            Alloc(0x700),
            P("__mem_cgroup_commit_charge", $"page=0x700 memcg={M} ctype=0 pcflags=0x0"),
            P("page_add_anon_rmap", $"page=0x700 mapcount=-1 anon_vma={Av}"),
            "kmig:" + Alloc(0x800),
            "kmig:" + P("try_to_unmap", "page=0x600 mapping=0x0 flags=0x1"),                                // 6: I4
            "kmig:" + P("try_to_unmap", $"page=0x700 mapping={Av[..^1]}1 flags=0x1"),
            "kmig:" + P("page_remove_rmap", "page=0x700 mapcount=0 anon=1"),
            P("anon_vma_free", $"anon_vma={Av}"),                                                           // the owner exits
            "kmig:" + P("move_to_new_page", "newpage=0x800 page=0x700"),
            "kmig:" + P("remove_migration_ptes", "old=0x700 new=0x800"),                                    // 11: I5
            "kmig:" + Ret("move_to_new_page", "move_to_new_page_ret", "rc=0"));
        Assert.Equal([$"unmap-null-mapping unmap-null-mapping 600 @{T(6)}", $"anon-vma-lifetime walk-freed-anon-vma 700 @{T(11)}"],
            r.Findings.Select(SeedCheck.Key).ToArray());
    }

    [Fact]
    public void A_commit_of_the_new_page_to_another_memcg_is_flagged()
    {
        const string Other = "0xffff880056780000";
        var r = Audit("2.6.35", [.. MappedFilePage,
            "kmig:" + Alloc(0x200),
            "kmig:" + P("mem_cgroup_prepare_migration", $"page=0x100 newpage=0x200 anon=0 pcflags=0x16 memcg={M}"),
            "kmig:" + P("__mem_cgroup_commit_charge", $"page=0x200 memcg={Other} ctype=1 pcflags=0x0"),     // 7
            "kmig:" + Ret("mem_cgroup_prepare_migration", "mem_cgroup_prepare_migration_ret", "ret=0")]);
        Assert.Equal([$"commit-before-remap wrong-memcg 200,100 @{T(7)}"], r.Findings.Select(SeedCheck.Key).ToArray());
    }

    [Fact]
    public void An_anon_vma_freed_while_a_migration_pins_it_is_flagged()
    {
        var r = Audit("2.6.35",
            Alloc(0x700),
            P("__mem_cgroup_commit_charge", $"page=0x700 memcg={M} ctype=0 pcflags=0x0"),
            P("page_add_anon_rmap", $"page=0x700 mapcount=-1 anon_vma={Av}"),
            "kmig:" + Alloc(0x800),
            "kmig:" + P("mem_cgroup_prepare_migration", $"page=0x700 newpage=0x800 anon=1 pcflags=0x4 memcg={M}"),
            "kmig:" + P("__mem_cgroup_commit_charge", $"page=0x800 memcg={M} ctype=0 pcflags=0x0"),
            "kmig:" + Ret("mem_cgroup_prepare_migration", "mem_cgroup_prepare_migration_ret", "ret=0"),
            "kmig:" + P("anon_vma_pin", $"page=0x700 anon_vma={Av}"),
            P("anon_vma_free", $"anon_vma={Av}"));                                                          // 9
        Assert.Equal([$"anon-vma-lifetime freed-while-pinned 700 @{T(9)}"], r.Findings.Select(SeedCheck.Key).ToArray());
    }

    [Fact]
    public void A_page_freed_while_PCG_MIGRATION_is_set_is_flagged()
    {
        var r = Audit("2.6.35",
            Alloc(0x700),
            P("__mem_cgroup_commit_charge", $"page=0x700 memcg={M} ctype=0 pcflags=0x0"),
            P("page_add_anon_rmap", $"page=0x700 mapcount=-1 anon_vma={Av}"),
            "kmig:" + Alloc(0x800),
            "kmig:" + P("mem_cgroup_prepare_migration", $"page=0x700 newpage=0x800 anon=1 pcflags=0x4 memcg={M}"),   // sets PCG_MIGRATION
            "kmig:" + P("__mem_cgroup_commit_charge", $"page=0x800 memcg={M} ctype=0 pcflags=0x0"),
            "kmig:" + Ret("mem_cgroup_prepare_migration", "mem_cgroup_prepare_migration_ret", "ret=0"),
            "mm_page_free_direct: page=ffffea0000018800 pfn=1792 order=0");                                       // 8: before end_migration
        Assert.Equal([$"migration-flag-lifetime freed-with-migration-flag 700 @{T(8)}"], r.Findings.Select(SeedCheck.Key).ToArray());
    }
}
