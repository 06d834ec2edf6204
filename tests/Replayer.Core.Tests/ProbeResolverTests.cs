using Replayer.Core;
using Replayer.Core.Domain;

namespace Replayer.Core.Tests;

public class ProbeResolverTests
{
    const string Defs = """
        p:rt/file_rmap_add page_add_file_rmap page=%di:x64 vma=%si:x64
        p:rt/lruvec_stat __mod_lruvec_page_state ptr=%di:x64 idx=%si:s32 val=%dx:s32
        r10:rt/migrate_mapping_ret folio_migrate_mapping ret=$retval:s32
        p:rt/memcg_uncharge __mem_cgroup_uncharge+4 folio=%di:x64
        # comment
        """;

    static TraceEvent Ev(string name, string? probe = null) => new() { Name = name, Probe = probe };

    [Theory]
    [InlineData("page_add_file_rmap+0x0/0x2f0", "page_add_file_rmap", false, null)]
    [InlineData("(folio_add_file_rmap_ptes+0x4/0xb0)", "folio_add_file_rmap_ptes", false, null)]
    [InlineData("migrate_folio_extra+0x24/0x70 <- folio_migrate_mapping", "folio_migrate_mapping", true, "migrate_folio_extra")]
    [InlineData("__migrate_folio.constprop.0+0xbb/0x150 <- __folio_migrate_mapping", "__folio_migrate_mapping", true, "__migrate_folio")]
    [InlineData("move_to_new_folio+0x0/0x140 <- migrate_pages_batch+0x462/0xc70", "move_to_new_folio", true, "migrate_pages_batch")]
    public void Parses_probe_locations(string probe, string fn, bool ret, string? caller)
    {
        var t = ProbeResolver.ParseProbe(probe);
        Assert.NotNull(t);
        Assert.Equal(fn, t!.Value.Function);
        Assert.Equal(ret, t.Value.IsReturn);
        Assert.Equal(caller, t.Value.Caller);
    }

    [Theory]
    [InlineData("ffffffff998e79d0")]
    [InlineData("0xffffffff998e79d0")]
    public void Bare_addresses_are_not_functions(string probe) => Assert.Null(ProbeResolver.ParseProbe(probe));

    [Fact]
    public void Resolves_by_probe_then_definitions_then_name()
    {
        var r = new ProbeResolver();
        r.AddDefinitions(Defs);
        // an address-only probe (perf, trace-cmd) resolves through the definition of the event name
        Assert.Equal(new ProbeTarget("page_add_file_rmap", false, null), r.Resolve(Ev("rt:file_rmap_add", "ffffffff998e79d0")));
        Assert.Equal("__mod_lruvec_page_state", r.Resolve(Ev("rt:lruvec_stat"))!.Value.Function);
        Assert.Equal("__mem_cgroup_uncharge", r.Resolve(Ev("rt:memcg_uncharge"))!.Value.Function);
        var ret = r.Resolve(Ev("rt:migrate_mapping_ret"))!.Value;
        Assert.True(ret.IsReturn);
        Assert.Equal("folio_migrate_mapping", ret.Function);
        // the probe text wins over a misleading event name
        Assert.Equal("page_remove_rmap", r.Resolve(Ev("rt:file_rmap_add", "page_remove_rmap+0x0/0x520"))!.Value.Function);
        // reversed "func <- caller" printing is straightened out by the definition
        var rev = r.Resolve(Ev("rt:migrate_mapping_ret", "folio_migrate_mapping+0x0/0x560 <- migrate_folio_extra"))!.Value;
        Assert.Equal(("folio_migrate_mapping", true, "migrate_folio_extra"), (rev.Function, rev.IsReturn, rev.Caller));
        // seed-era convention: event named after the function, _ret for the return probe
        Assert.Equal(new ProbeTarget("mem_cgroup_end_migration", false, null), r.Resolve(Ev("rt:mem_cgroup_end_migration")));
        Assert.Equal(new ProbeTarget("move_to_new_page", true, null), r.Resolve(Ev("rt:move_to_new_page_ret")));
        Assert.Null(r.Resolve(Ev("kmem:mm_page_alloc")));
        Assert.Null(r.Resolve(Ev("rt:some_private_name")));
    }

    [Fact]
    public void Definitions_without_group_get_the_kprobes_group()
    {
        var r = new ProbeResolver();
        r.AddDefinitions("p:myprobe try_to_migrate folio=%di:x64\nr:myret move_to_new_folio ret=$retval");
        Assert.Equal("try_to_migrate", r.Resolve(Ev("kprobes:myprobe"))!.Value.Function);
        Assert.True(r.Resolve(Ev("kprobes:myret"))!.Value.IsReturn);
    }
}
