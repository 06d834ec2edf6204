using Replayer.Core.Domain;
using Replayer.Replay;

namespace Replayer.Replay.Tests;

/// <summary>Hand-built 6.x sequences: each invariant fires on its violation and only then.</summary>
public class SyntheticTests
{
    const ulong A = 0xff00000000a00000, Other = 0xff00000000b00000, FileMapping = 0xff000000000c0000;

    sealed class Seq
    {
        public readonly List<DomainEvent> Events = [];
        long _t = 1_000_000;
        public int Pid = 100;
        public T Add<T>(T e) where T : DomainEvent
        {
            var x = e with { Timestamp = _t += 1000, Pid = Pid, Cpu = 0, Comm = "migwl", Source = Events.Count + 1, Name = e.GetType().Name };
            Events.Add(x);
            return x;
        }
        public static PageRef P(ulong pfn, int? mapcount = null, ulong? memcg = null, ulong? mapping = FileMapping) =>
            new() { Pfn = pfn, Ptr = 0xff10000000000000 + pfn * 64, Mapcount = mapcount, Memcg = memcg, Mapping = mapping };

        public void Map(ulong pfn, int before, ulong memcg)
        {
            Add(new RmapAddEvent { Function = "page_add_file_rmap", Page = P(pfn, before, memcg) });
            if (before == -1) Add(new LruvecStatEvent { Function = "__mod_lruvec_page_state", Page = P(pfn, before + 1, memcg), Item = 18, Val = 1 });
        }
        public void Unmap(ulong pfn, int before, ulong memcg)
        {
            Add(new RmapRemoveEvent { Function = "page_remove_rmap", Page = P(pfn, before, memcg) });
            if (before == 0) Add(new LruvecStatEvent { Function = "__mod_lruvec_page_state", Page = P(pfn, before - 1, memcg), Item = 18, Val = -1 });
        }

        /// <summary>One successful 6.1-style migration of a file page mapped once, with every step; hooks to perturb it.</summary>
        public void Migrate(ulong src, ulong dst, ulong memcg, bool commit = true, ulong? commitMemcg = null, ulong? srcMapping = FileMapping,
            ulong reportedOk = 1, ulong reportedFailed = 0, bool uncharge = true, ulong? dstMemcgAfter = null)
        {
            ulong addr = 0x7f0000000000 + src * 4096;
            Add(new MigratePagesStartEvent { Mode = "MIGRATE_SYNC", Reason = "syscall_or_cpuset" });
            Add(new PageAllocEvent { Page = PageRef.FromPfn(dst) });
            Add(new UnmapEvent { Function = "try_to_migrate", Page = P(src, 0, memcg, srcMapping) });
            Add(new MigrationPteEvent { Set = true, Addr = addr, Pfn = src });
            Unmap(src, 0, memcg);
            Add(new MoveToNewFolioEvent { Function = "move_to_new_folio", Dst = PageRef.FromPfn(dst), Src = PageRef.FromPfn(src) });
            if (commit) Add(new MemcgMigrateEvent { Function = "mem_cgroup_migrate", Old = P(src, -1, commitMemcg ?? memcg), New = P(dst, -1, 0) });
            Add(new FunctionReturnEvent { Function = "move_to_new_folio", Ret = 0 });
            Map(dst, -1, dstMemcgAfter ?? memcg);
            Add(new MigrationPteEvent { Set = false, Addr = addr, Pfn = dst });
            if (uncharge) Add(new MemcgUnchargeEvent { Function = "__mem_cgroup_uncharge", Folio = P(src, -1, memcg, 0) });
            Add(new PageFreeEvent { Page = PageRef.FromPfn(src) });
            Add(new MigratePagesEndEvent { Succeeded = reportedOk, Failed = reportedFailed, Mode = "MIGRATE_SYNC", Reason = "syscall_or_cpuset" });
        }

        /// <summary>The capture's kprobe definitions: what the capture declares it probed (so a missing
        /// commit is a violation, not a missing event).</summary>
        public static ProbeResolver Declared()
        {
            var r = new ProbeResolver();
            r.AddDefinitions(string.Join('\n', new[] { "mem_cgroup_migrate", "page_add_file_rmap", "page_remove_rmap", "__mod_lruvec_page_state",
                "try_to_migrate", "move_to_new_folio", "__mem_cgroup_uncharge" }.Select(f => $"p:rt/{f} {f}")));
            r.AddDefinitions("r:rt/move_to_new_folio_ret move_to_new_folio ret=$retval");
            return r;
        }

        public AuditResult Audit(Era era = Era.Linux61) =>
            Replay.Audit.RunDecoded(Events, new AuditOptions { Era = era }, Declared(), out _);
    }

    static string[] Ids(AuditResult r) => r.Findings.Select(f => f.InvariantId).Distinct().Order().ToArray();

    static Seq Prologue()
    {
        var s = new Seq();
        s.Add(new PageAllocEvent { Page = PageRef.FromPfn(0x100) });
        s.Map(0x100, -1, A);
        return s;
    }

    [Fact]
    public void A_clean_migration_passes_everything_checkable()
    {
        var s = Prologue();
        s.Migrate(0x100, 0x200, A);
        var r = s.Audit();
        Assert.Empty(r.Findings);
        Assert.Equal(VerdictStatus.Pass, r.Verdicts.Single(v => v.InvariantId == "commit-before-remap").Status);
        Assert.Equal(1, r.Memcgs.Single(m => m.Memcg == A).CounterDelta);
        Assert.Equal(1, r.Memcgs.Single(m => m.Memcg == A).ImpliedDelta);
    }

    [Fact]
    public void Set_entries_of_a_kernel_with_34_pfn_bits_still_balance()
    {
        var s = Prologue();
        s.Migrate(0x100, 0x200, A);
        int i = s.Events.FindIndex(e => e is MigrationPteEvent { Set: true });
        var set = (MigrationPteEvent)s.Events[i];
        s.Events[i] = set with { Pfn = set.Pfn | (1UL << 34) }; // SWP_MIG young bit at SWP_PFN_BITS = 34
        var r = s.Audit();
        Assert.Empty(r.Findings);
        Assert.Equal(VerdictStatus.Pass, r.Verdicts.Single(v => v.InvariantId == "migration-entry-balance").Status);
    }

    [Fact]
    public void Remap_before_commit_is_I2()
    {
        var s = Prologue();
        s.Migrate(0x100, 0x200, A, commit: false);
        var r = s.Audit();
        Assert.Equal(["commit-before-remap"], Ids(r));
        var f = r.Findings.Single();
        Assert.Equal(new ulong[] { 0x100, 0x200 }, f.Pfns);
        Assert.Equal(A, f.Memcg);
        Assert.NotEmpty(f.Evidence);
        Assert.All(f.Evidence, e => Assert.True(e.Source > 0));
    }

    [Fact]
    public void Commit_to_another_memcg_is_I2()
    {
        var s = Prologue();
        s.Migrate(0x100, 0x200, A, dstMemcgAfter: Other);
        Assert.Contains("commit-before-remap", Ids(s.Audit()));
    }

    [Fact]
    public void Unmapping_a_null_mapping_page_for_migration_is_I4()
    {
        var s = Prologue();
        s.Migrate(0x100, 0x200, A, srcMapping: 0);
        Assert.Equal(["unmap-null-mapping"], Ids(s.Audit()));
    }

    [Fact]
    public void Totals_below_what_was_seen_are_I7()
    {
        var s = Prologue();
        s.Migrate(0x100, 0x200, A, reportedOk: 0, reportedFailed: 1);
        Assert.Equal(["migrate-summary-consistency"], Ids(s.Audit()));
    }

    static Seq FailedMigration(bool freeDst, int retries = 0)
    {
        var s = Prologue();
        ulong addr = 0x7f0000100000;
        s.Add(new MigratePagesStartEvent { Mode = "MIGRATE_SYNC", Reason = "syscall_or_cpuset" });
        s.Add(new PageAllocEvent { Page = PageRef.FromPfn(0x200) });
        s.Add(new UnmapEvent { Function = "try_to_migrate", Page = Seq.P(0x100, 0, A) });
        s.Add(new MigrationPteEvent { Set = true, Addr = addr, Pfn = 0x100 });
        s.Unmap(0x100, 0, A);
        s.Add(new MoveToNewFolioEvent { Function = "move_to_new_folio", Dst = PageRef.FromPfn(0x200), Src = PageRef.FromPfn(0x100) });
        s.Add(new FunctionReturnEvent { Function = "move_to_new_folio", Ret = -11 });
        // 6.12 migrate_pages_batch: -EAGAIN keeps dst and retries the move with the same one
        for (int i = 0; i < retries; i++)
        {
            s.Add(new MoveToNewFolioEvent { Function = "move_to_new_folio", Dst = PageRef.FromPfn(0x200), Src = PageRef.FromPfn(0x100) });
            s.Add(new FunctionReturnEvent { Function = "move_to_new_folio", Ret = -11 });
        }
        s.Map(0x100, -1, A);
        s.Add(new MigrationPteEvent { Set = false, Addr = addr, Pfn = 0x100 });
        if (freeDst) s.Add(new PageFreeEvent { Page = PageRef.FromPfn(0x200) });
        s.Add(new MigratePagesEndEvent { Succeeded = 0, Failed = 1, Mode = "MIGRATE_SYNC", Reason = "syscall_or_cpuset" });
        return s;
    }

    [Fact]
    public void A_failed_migration_must_free_its_dst_I7()
    {
        var ok = FailedMigration(freeDst: true).Audit();
        Assert.Empty(ok.Findings);
        Assert.Equal(1, ok.Memcgs.Single(m => m.Memcg == A).CounterDelta);
        var leak = FailedMigration(freeDst: false).Audit();
        Assert.Equal(["migrate-summary-consistency"], Ids(leak));
        Assert.Contains("never freed", leak.Findings.Single().Explanation);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(9)]
    public void Retries_that_reuse_a_dst_free_it_once_and_a_leak_is_one_I7(int retries)
    {
        var ok = FailedMigration(freeDst: true, retries).Audit(Era.Linux612);
        Assert.Empty(ok.Findings);
        Assert.Equal(1, ok.Verdicts.Single(v => v.InvariantId == "migrate-summary-consistency").Checked);
        var leak = FailedMigration(freeDst: false, retries).Audit(Era.Linux612);
        Assert.Equal(["migrate-summary-consistency"], Ids(leak));
        var f = leak.Findings.Single();
        Assert.Contains("dst pfn 0x200 ", f.Explanation);
        Assert.Contains("never freed", f.Explanation);
    }

    [Fact]
    public void Old_page_freed_charged_is_I3_on_61_but_not_612()
    {
        var s = Prologue();
        s.Migrate(0x100, 0x200, A, uncharge: false);
        Assert.Equal(["migration-flag-lifetime"], Ids(s.Audit(Era.Linux61)));
        Assert.Empty(s.Audit(Era.Linux612).Findings);
    }

    [Fact]
    public void Old_page_still_charged_after_transfer_is_I3_on_612()
    {
        var s = Prologue();
        s.Migrate(0x100, 0x200, A);
        int i = s.Events.FindIndex(e => e is MemcgUnchargeEvent);
        s.Events[i] = ((MemcgUnchargeEvent)s.Events[i]) with { Folio = Seq.P(0x100, -1, A, 0) };
        Assert.Equal(["migration-flag-lifetime"], Ids(s.Audit(Era.Linux612)));
        Assert.Empty(s.Audit(Era.Linux61).Findings);
    }

    [Fact]
    public void Stat_update_without_transition_and_transition_without_update_are_I1()
    {
        var s = Prologue();
        s.Add(new RmapAddEvent { Function = "page_add_file_rmap", Page = Seq.P(0x100, 0, A) });     // 1→2: no update due
        s.Add(new LruvecStatEvent { Function = "__mod_lruvec_page_state", Page = Seq.P(0x100, 1, A), Item = 18, Val = 1 });
        var r = s.Audit();
        Assert.Equal(["file-mapped-conservation"], Ids(r));
        Assert.Contains("implies no FILE_MAPPED update", r.Findings[0].Explanation);

        var t = Prologue();
        t.Add(new RmapRemoveEvent { Function = "page_remove_rmap", Page = Seq.P(0x100, 0, A) });   // 1→0 with no −1
        t.Add(new MarkerEvent { Text = "next" });
        var r2 = t.Audit();
        Assert.True(Ids(r2).SequenceEqual(["file-mapped-conservation"]), string.Join("\n", r2.Verdicts.Select(v => $"{v.InvariantId} {v.Status} {v.Reason} {v.Checked}/{v.SkippedUnknown}")));
        Assert.Contains("no FILE_MAPPED", r2.Findings[0].Explanation);
    }

    [Fact]
    public void On_613_the_memcg_tracepoint_is_paired_with_the_rmap_calls()
    {
        Seq Build(bool dropOne)
        {
            var s = new Seq();
            s.Add(new PageAllocEvent { Page = PageRef.FromPfn(0x100) });
            s.Add(new PageAllocEvent { Page = PageRef.FromPfn(0x300) });
            s.Add(new RmapAddEvent { Function = "folio_add_file_rmap_ptes", Page = Seq.P(0x100, -1, A) });
            s.Add(new MemcgStatEvent { Class = MemcgStatClass.ModMemcgLruvecState, MemcgId = 7, Item = 18, Val = 1 });
            // an uncharged page: node-only update, no memcg tracepoint
            s.Add(new RmapAddEvent { Function = "folio_add_file_rmap_ptes", Page = Seq.P(0x300, -1, 0) });
            s.Add(new RmapRemoveEvent { Function = "folio_remove_rmap_ptes", Page = Seq.P(0x100, 0, A) });
            if (!dropOne) s.Add(new MemcgStatEvent { Class = MemcgStatClass.ModMemcgLruvecState, MemcgId = 7, Item = 18, Val = -1 });
            s.Add(new MarkerEvent { Text = "end" });
            return s;
        }
        var ok = Build(dropOne: false).Audit(Era.Linux613Plus);
        Assert.Empty(ok.Findings);
        Assert.Equal(VerdictStatus.Pass, ok.Verdicts.Single(v => v.InvariantId == "file-mapped-conservation").Status);
        Assert.Equal(0, ok.Memcgs.Single(m => m.Memcg == 7).CounterDelta);
        var bad = Build(dropOne: true).Audit(Era.Linux613Plus);
        Assert.Equal(["file-mapped-conservation"], Ids(bad));
    }

    [Fact]
    public void Minus_one_to_a_memcg_that_never_got_the_plus_one_is_I1()
    {
        var s = Prologue();
        s.Unmap(0x100, 0, Other);
        Assert.Contains(s.Audit().Findings, f => f.InvariantId == "file-mapped-conservation" && f.Explanation.Contains("last +1 was counted to memcg"));
    }

    [Fact]
    public void Anon_vma_needs_its_probes_and_reports_frees_while_pinned()
    {
        var s = Prologue();
        Assert.Equal(VerdictStatus.NotCheckable, s.Audit().Verdicts.Single(v => v.InvariantId == "anon-vma-lifetime").Status);
        s.Add(new FunctionReturnEvent { Function = "folio_get_anon_vma", Ret = unchecked((long)0xff00000000dd0000) });
        s.Add(new GenericEvent { Raw = new Replayer.Core.TraceEvent { Name = "kmem:kmem_cache_free", Fields = [Replayer.Core.EventField.U64("ptr", 0xff00000000dd0000)] } });
        s.Add(new AnonVmaEvent { Function = "__put_anon_vma", Op = AnonVmaOp.Unpin, AnonVmaPtr = 0xff00000000dd0000 });
        var r = s.Audit();
        Assert.Equal(VerdictStatus.Fail, r.Verdicts.Single(v => v.InvariantId == "anon-vma-lifetime").Status);
    }

    [Fact]
    public void Results_round_trip_through_messagepack()
    {
        var s = Prologue();
        s.Migrate(0x100, 0x200, A, commit: false);
        var r = s.Audit();
        var back = MessagePack.MessagePackSerializer.Deserialize<AuditResult>(MessagePack.MessagePackSerializer.Serialize(r));
        Assert.Equal(r.Findings.Length, back.Findings.Length);
        Assert.Equal(r.Findings[0].Explanation, back.Findings[0].Explanation);
        Assert.Equal(r.Findings[0].Evidence.Select(e => e.Source), back.Findings[0].Evidence.Select(e => e.Source));
        Assert.Equal(r.Verdicts.Select(v => (v.InvariantId, v.Status)), back.Verdicts.Select(v => (v.InvariantId, v.Status)));
    }
}

public class EraTests
{
    [Theory]
    [InlineData("Linux (none) 6.1.0-56-amd64 #1 SMP PREEMPT_DYNAMIC Debian 6.1.192-2 (2026-11-16) x86_64 GNU/Linux", Era.Linux61)]
    [InlineData("6.12.117+deb12-amd64", Era.Linux612)]
    [InlineData("6.13.7", Era.Linux613Plus)]
    [InlineData("2.6.34", Era.Seed2634)]
    [InlineData("2.6.35.6", Era.Seed2635)]
    [InlineData("5.15.0-91-generic", Era.Linux61)]
    [InlineData("", Era.Unknown)]
    public void From_release(string release, Era era) => Assert.Equal(era, Eras.FromRelease(release));

    [Theory]
    [InlineData("6.1", Era.Linux61)]
    [InlineData("linux612", Era.Linux612)]
    [InlineData("2.6.34", Era.Seed2634)]
    [InlineData("seed2635", Era.Seed2635)]
    public void Parse_cli_names(string s, Era era) => Assert.Equal(era, Eras.Parse(s));

    [Fact]
    public void From_event_set()
    {
        Assert.Equal(Era.Linux612, Eras.FromEvents([new RmapAddEvent { Function = "folio_add_file_rmap_ptes" }]));
        Assert.Equal(Era.Linux61, Eras.FromEvents([new RmapAddEvent { Function = "page_add_file_rmap" }]));
        Assert.Equal(Era.Linux613Plus, Eras.FromEvents([new MemcgStatEvent()]));
        Assert.Equal(Era.Seed2635, Eras.FromEvents([new PrepareMigrationEvent { Pid = 1 }, new CommitChargeEvent { Pid = 1 }, new FunctionReturnEvent { Function = "mem_cgroup_prepare_migration", Pid = 1 }]));
        Assert.Equal(Era.Seed2634, Eras.FromEvents([new PrepareMigrationEvent { Pid = 1 }, new FunctionReturnEvent { Function = "mem_cgroup_prepare_migration", Pid = 1 }, new CommitChargeEvent { Pid = 1 }]));
    }
}
