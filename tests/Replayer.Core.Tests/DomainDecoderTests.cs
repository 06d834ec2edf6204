using Replayer.Core;
using Replayer.Core.Domain;

namespace Replayer.Core.Tests;

public class DomainDecoderTests
{
    const ulong Vm = 0xffd9298780000000;

    static TraceEvent Ev(string name, string? probe, params EventField[] f) => new() { Name = name, Probe = probe, Fields = f, Pid = 7, Cpu = 1, Timestamp = 5, Source = 42 };
    static EventField U(string n, ulong v) => EventField.U64(n, v, FieldStyle.Hex);
    static EventField S(string n, long v) => EventField.S64(n, v);

    [Fact]
    public void Migration_pte_pfns_decode_per_x86_64_layout()
    {
        // from 6.1-ext4-basic: try_to_migrate folio=0xffd929878009e340 (pfn 0x278d) then these ptes
        Assert.Equal(0x278dUL, MigrationPteEvent.SwapPtePfn(0xdffdffffffb0e400));
        Assert.Equal(0x43b30UL, MigrationPteEvent.PresentPtePfn(0x8000000043b30025));
        var d = new DomainDecoder();
        var set = Assert.IsType<MigrationPteEvent>(d.Decode(Ev("migrate:set_migration_pte", null, U("addr", 0x7f8833e01000), U("pte", 0xdffdffffffb0e400), S("order", 0))));
        Assert.True(set.Set);
        Assert.Equal(0x278dUL, set.Pfn);
        Assert.Equal(DomainKind.SetMigrationPte, set.Kind);
        var rm = Assert.IsType<MigrationPteEvent>(d.Decode(Ev("migrate:remove_migration_pte", null, U("addr", 0x7f8833e01000), U("pte", 0x800000004406b025), S("order", 0))));
        Assert.Equal(0x4406bUL, rm.Pfn);
        Assert.Equal((7, 1, 5L, 42L), (rm.Pid, rm.Cpu, rm.Timestamp, rm.Source));
    }

    [Fact]
    public void Page_pointers_map_to_pfns_through_the_vm_fetcharg_and_memcg_flags_are_masked()
    {
        var d = new DomainDecoder();
        var e = Ev("rt:file_rmap_add", "page_add_file_rmap+0x0/0x2f0", U("page", 0xffd92987810e3800), U("vma", 1), S("compound", 0), U("vm", Vm),
            U("flags", 0x4fffffc008003f), U("mapping", 0xff2b982dc1078b38), U("index", 0x60), S("mapcount", -1), S("refcount", 4), U("memcg", 0xff2b982d8114f003));
        var r = Assert.IsType<RmapAddEvent>(d.Decode(e));
        Assert.Equal("page_add_file_rmap", r.Function);
        Assert.Equal((0xffd92987810e3800 - Vm) / 64, r.Page.Pfn);
        Assert.Equal(0xffd92987810e3800UL, r.Page.Ptr);
        Assert.Equal(0xff2b982d8114f000UL, r.Page.Memcg);
        Assert.Equal(-1, r.Page.Mapcount);
        Assert.False(r.Page.IsAnon);
        // later events without vm use the learned base
        var mv = Assert.IsType<MoveToNewFolioEvent>(d.Decode(Ev("rt:move_to_new_folio", "move_to_new_folio+0x0/0x140", U("dst", Vm + 64 * 0x4406b), U("src", Vm + 64 * 0x278d), S("mode", 2))));
        Assert.Equal((0x4406bUL, 0x278dUL), (mv.Dst.Pfn, mv.Src.Pfn));
    }

    [Fact]
    public void Vmemmap_base_is_learned_only_from_consistent_alloc_pairs()
    {
        var d = new DomainDecoder();
        // trace-cmd style: page = &vmemmap_base + pfn → inconsistent candidates, never learned
        d.Decode(Ev("kmem:mm_page_alloc", null, U("page", 0xffffffff9aa15730 + 0x100), U("pfn", 0x100), S("order", 0)));
        d.Decode(Ev("kmem:mm_page_alloc", null, U("page", 0xffffffff9aa15730 + 0x200), U("pfn", 0x200), S("order", 0)));
        Assert.Null(d.VmemmapBase);
        d.Decode(Ev("kmem:mm_page_alloc", null, U("page", Vm + 64 * 0x7f92e), U("pfn", 0x7f92e), S("order", 1)));
        d.Decode(Ev("kmem:mm_page_alloc", null, U("page", Vm + 64 * 0x5fbb3), U("pfn", 0x5fbb3), S("order", 0)));
        Assert.Equal(Vm, d.VmemmapBase);
    }

    [Fact]
    public void Pointer_before_base_is_known_keeps_the_pointer_with_unknown_pfn()
    {
        var d = new DomainDecoder();
        var mv = Assert.IsType<MoveToNewFolioEvent>(d.Decode(Ev("rt:move_to_new_folio", "move_to_new_folio+0x0/0x140", U("dst", Vm + 640), U("src", Vm + 64), S("mode", 2))));
        Assert.False(mv.Dst.HasPfn);
        Assert.Equal(Vm + 640, mv.Dst.Ptr);
    }

    [Fact]
    public void Seed_era_values_are_pfns_and_events_are_named_after_functions()
    {
        var d = new DomainDecoder();
        var p = Assert.IsType<PrepareMigrationEvent>(d.Decode(Ev("rt:mem_cgroup_prepare_migration", "mem_cgroup_prepare_migration+0x0/0x60",
            U("page", 0x1a2b), U("newpage", 0x2b3c), S("anon", 1), U("pcflags", 0x24), U("memcg", 0xabc))));
        Assert.Equal((0x1a2bUL, 0x2b3cUL, true, 0x24UL, 0xabcUL), (p.Page.Pfn, p.NewPage!.Value.Pfn, p.Anon, p.PcFlags, p.Memcg));
        var ret = Assert.IsType<FunctionReturnEvent>(d.Decode(Ev("rt:mem_cgroup_prepare_migration_ret", null, S("ret", -12))));
        Assert.Equal(("mem_cgroup_prepare_migration", -12L), (ret.Function, ret.Ret));
        var rc = Assert.IsType<FunctionReturnEvent>(d.Decode(Ev("rt:move_to_new_page_ret", null, S("rc", -11))));
        Assert.Equal(-11, rc.Ret);
        var fm = Assert.IsType<UpdateFileMappedEvent>(d.Decode(Ev("rt:mem_cgroup_update_file_mapped", null, U("page", 0x10), S("val", -1), U("pcflags", 4), U("memcg", 0x5))));
        Assert.Equal(-1, fm.Val);
        var free = Assert.IsType<AnonVmaEvent>(d.Decode(Ev("rt:anon_vma_free", null, U("anon_vma", 0xdead0))));
        Assert.Equal(AnonVmaOp.Free, free.Op);
    }

    [Fact]
    public void Filemap_identity_uses_ofs_shifted_and_dev_text_or_number()
    {
        var d = new DomainDecoder();
        var a = Assert.IsType<PageCacheEvent>(d.Decode(Ev("filemap:mm_filemap_add_to_page_cache", null, EventField.Str("dev", "254:16"), U("ino", 0xc05c), U("pfn", 0x4408c), U("ofs", 34738176), S("order", 0))));
        Assert.Equal((254u, 16u, 0xc05cUL, 34738176UL >> 12, true), (a.DevMajor, a.DevMinor, a.Ino, a.Index, a.Add));
        var b = Assert.IsType<PageCacheEvent>(d.Decode(Ev("filemap:mm_filemap_delete_from_page_cache", null, U("s_dev", (254UL << 20) | 16), U("i_ino", 1), U("pfn", 2), U("index", 3))));
        Assert.Equal((254u, 16u, 3UL, false), (b.DevMajor, b.DevMinor, b.Index, b.Add));
        var c = Assert.IsType<PageCacheEvent>(d.Decode(Ev("filemap:mm_filemap_add_to_page_cache", null, S("dev_major", 254), S("dev_minor", 16), U("ino", 0xc05c), U("pfn", 0x4408c), U("ofs", 8192), S("order", 0))));
        Assert.Equal((254u, 16u, 2UL), (c.DevMajor, c.DevMinor, c.Index));
    }

    [Fact]
    public void Outside_vocabulary_or_missing_fields_become_generic_events_not_drops()
    {
        var d = new DomainDecoder();
        var lru = new TraceEvent { Name = "pagemap:mm_lru_insertion", Fields = [U("pfn", 1)] };
        var g = Assert.IsType<GenericEvent>(d.Decode(lru));
        Assert.Same(lru, g.Raw);
        Assert.Null(g.Note);
        var broken = Assert.IsType<GenericEvent>(d.Decode(Ev("kmem:mm_page_alloc", null, S("order", 0))));
        Assert.Contains("pfn", broken.Note);
        var loss = Assert.IsType<DataLossEvent>(d.Decode(new TraceEvent { Name = SyntheticEvents.DataLoss, Fields = [U("lost", 12)] }));
        Assert.Equal(12UL, loss.Lost);
        Assert.Equal(2, d.GenericCounts.Values.Sum(v => (int)v));
    }

    [Fact]
    public void Markers_and_pmd_entries_and_memcg_tracepoints()
    {
        var d = new DomainDecoder();
        var m = Assert.IsType<MarkerEvent>(d.Decode(Ev("ftrace:print", null, U("ip", 1), EventField.Str("buf", "migwl: munmap\n"))));
        Assert.Equal("migwl: munmap", m.Text);
        var pmd = Assert.IsType<MigrationPteEvent>(d.Decode(Ev("thp:remove_migration_pmd", null, U("addr", 0x200000), U("pmd", 0x8000000043b30025))));
        Assert.True(pmd.Pmd);
        var ms = Assert.IsType<MemcgStatEvent>(d.Decode(Ev("memcg:mod_memcg_lruvec_state", null, U("memcg_id", 9), S("item", 18), S("val", -1))));
        Assert.Equal((MemcgStatClass.ModMemcgLruvecState, 9UL, 18, -1L), (ms.Class, ms.MemcgId, ms.Item, ms.Val));
        var end = Assert.IsType<MigratePagesEndEvent>(d.Decode(Ev("migrate:mm_migrate_pages", null, U("nr_succeeded", 1280), U("nr_failed", 0), U("nr_thp_succeeded", 0), U("nr_thp_failed", 0), U("nr_thp_split", 0), EventField.Str("mode", "MIGRATE_SYNC"), EventField.Str("reason", "syscall_or_cpuset"))));
        Assert.Equal((1280UL, 0UL, "MIGRATE_SYNC"), (end.Succeeded, end.Failed, end.Mode));
    }

    [Fact]
    public void Definitions_added_after_decoding_began_apply_to_later_events_of_the_same_name()
    {
        var resolver = new ProbeResolver();
        var d = new DomainDecoder(resolver);
        var e = Ev("rt:my_probe", null, U("page", 0x1234), U("nr", 1));
        // neither a known function nor a defined probe yet: generic
        Assert.IsType<GenericEvent>(d.Decode(e));
        resolver.AddDefinitions("p:rt/my_probe page_add_file_rmap page=%di:x64");
        var add = Assert.IsType<RmapAddEvent>(d.Decode(e));
        Assert.Equal("page_add_file_rmap", add.Function);
        Assert.Equal(0x1234UL, add.Page.Pfn);
    }
}
