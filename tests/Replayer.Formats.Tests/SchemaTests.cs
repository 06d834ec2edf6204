using System.Text;
using Replayer.Core;
using Replayer.Formats;
using Replayer.Formats.Schema;
using Replayer.TestKit;

namespace Replayer.Formats.Tests;

public class SchemaTests
{
    static EventField[]? Match(PrintTemplate t, string text) => t.TryMatch(Encoding.UTF8.GetBytes(text), new Utf8Interner());

    [Fact]
    public void Every_capture_format_file_parses_and_its_template_names_every_printed_field()
    {
        int n = 0;
        foreach (var cap in Repo.RealCaptures())
            foreach (var dir in Directory.GetDirectories(cap, "formats", SearchOption.AllDirectories))
            {
                var ctx = CaptureContext.FromFiles(dir, null, null, null);
                Assert.Empty(ctx.Problems);
                foreach (var f in ctx.Formats)
                {
                    n++;
                    Assert.NotEqual("unknown", f.System);
                    Assert.True(f.Id > 0, f.FullName);
                    var names = f.Template.Fields.Select(x => x.Name).ToList();
                    Assert.Equal(names.Count, names.Distinct().Count());
                    foreach (var name in names)
                        Assert.True(f.PrintFmt.Contains(name + "=") || f.PrintFmt.Contains(name + " ") || f.PrintArgs.Any(a => a.Contains("REC->" + name)), f.FullName + ": " + name);
                }
            }
        Assert.True(n > 50, "format files found: " + n);
    }

    [Fact]
    public void Format_file_fields_common_fields_and_print_args_are_split()
    {
        var f = EventFormat.Load(Repo.Trace("6.1-ext4-basic", "ftrace", "formats", "kmem", "mm_page_alloc", "format"), "kmem");
        Assert.Equal("kmem:mm_page_alloc", f.FullName);
        Assert.Equal(547, f.Id);
        Assert.Equal(["common_type", "common_flags", "common_preempt_count", "common_pid"], f.CommonFields.Select(x => x.Name));
        Assert.Equal(["pfn", "order", "gfp_flags", "migratetype"], f.Fields.Select(x => x.Name));
        Assert.True(f.Fields[3].IsSigned);
        Assert.Equal(32, f.Fields[3].Offset);
        Assert.Equal(5, f.PrintArgs.Count);
        Assert.StartsWith("(REC->gfp_flags) ? __print_flags", f.PrintArgs[4]);
        var t = f.Template;
        Assert.Equal(["page", "pfn", "order", "migratetype", "gfp_flags"], t.Fields.Select(x => x.Name));
        Assert.Equal(FieldStyle.Pointer, t.Fields[0].Style);
        Assert.Equal(FieldStyle.Hex, t.Fields[1].Style);
        Assert.Equal(FieldType.S64, t.Fields[2].Type);
        Assert.Equal(FieldType.Str, t.Fields[4].Type);
    }

    [Fact]
    public void Print_format_file_and_dynamic_array()
    {
        var f = EventFormat.Load(Repo.Trace("6.1-ext4-basic", "ftrace", "formats", "ftrace_print_format"));
        Assert.Equal("ftrace:print", f.FullName);
        Assert.Equal(0, f.Fields[1].ArrayLength);
        Assert.Equal(["ip", "buf"], f.Template.Fields.Select(x => x.Name));
        var m = Match(f.Template, "tracing_mark_write: migwl: iter 0 move_pages -> node1 begin")!;
        Assert.Equal("tracing_mark_write", m[0].Text);
        Assert.Equal("migwl: iter 0 move_pages -> node1 begin", m[1].Text);
    }

    [Fact]
    public void Data_loc_field()
    {
        var f = EventFormat.Parse("name: x\nID: 7\nformat:\n\tfield:__data_loc char[] name;\toffset:8;\tsize:4;\tsigned:1;\n\nprint fmt: \"name=%s\", __get_str(name)\n", "t", "s");
        Assert.True(f.Fields[0].IsDataLoc);
        Assert.Equal("name", f.Fields[0].Name);
        Assert.Equal("char", f.Fields[0].TypeName);
    }

    [Fact]
    public void Malformed_format_file_names_file_and_line()
    {
        var e = Assert.Throws<TraceInputException>(() => EventFormat.Parse("name: x\nID: 1\nformat:\n\tfield:int a;\toffset:zz;\tsize:4;\tsigned:1;\nprint fmt: \"a=%d\", REC->a\n", "bad/format"));
        Assert.Equal(4, e.Line);
        Assert.Contains("bad/format:4", e.Message);
        var e2 = Assert.Throws<TraceInputException>(() => EventFormat.Parse("name: x\nID: 1\nprint fmt: \"a=%d, REC->a\n", "f2"));
        Assert.Equal(3, e2.Line);
    }

    [Fact]
    public void Dev_style_format_gives_one_major_minor_string_named_by_the_word_before_it()
    {
        var t = PrintTemplate.Parse("dev %d:%d ino %lx pfn=0x%lx ofs=%lu order=%u");
        Assert.Equal(["dev", "ino", "pfn", "ofs", "order"], t.Fields.Select(x => x.Name));
        Assert.Equal(FieldType.Str, t.Fields[0].Type);
        Assert.Equal(FieldStyle.BareHex, t.Fields[1].Style);
        var m = Match(t, "dev 254:0 ino c pfn=0x2651 ofs=1011712 order=0")!;
        Assert.Equal("254:0", m[0].Text);
        Assert.Equal(0xcUL, m[1].Bits);
        Assert.Equal(0x2651UL, m[2].Bits);
        Assert.Equal(1011712UL, m[3].Bits);
        // a colon between conversions that are not a word's MAJOR:MINOR stays two fields
        Assert.Equal(["a", "b"], PrintTemplate.Parse("a=%d:%d", ["REC->a", "REC->b"]).Fields.Select(x => x.Name));
    }

    [Fact]
    public void Kprobe_and_kretprobe_formats_strip_the_probe_prefix()
    {
        var k = PrintTemplate.Parse("(%lx) page=0x%Lx vma=0x%Lx compound=%u mapcount=%d", ["REC->__probe_ip", "REC->page", "REC->vma", "REC->compound", "REC->mapcount"]);
        Assert.Equal(ProbeKind.Kprobe, k.Probe);
        Assert.Equal(["page", "vma", "compound", "mapcount"], k.Fields.Select(x => x.Name));
        var r = PrintTemplate.Parse("(%lx <- %lx) ret=%d");
        Assert.Equal(ProbeKind.Kretprobe, r.Probe);
        var m = Match(r, "ret=-11")!;
        Assert.Equal(-11L, m[0].AsS64);
    }

    [Fact]
    public void Last_string_runs_to_end_of_line_and_literal_comma_is_kept()
    {
        var lru = PrintTemplate.Parse("folio=%p pfn=0x%lx lru=%d flags=%s%s%s%s%s%s");
        Assert.Equal(["folio", "pfn", "lru", "flags"], lru.Fields.Select(x => x.Name));
        var m = Match(lru, "folio=ffd92987810ecc00 pfn=0x43b30 lru=2 flags=Ma b  ")!;
        Assert.Equal("Ma b  ", m[3].Text);
        Assert.Equal(0xffd92987810ecc00UL, m[0].Bits);
        var pte = PrintTemplate.Parse("addr=%lx, pte=%lx order=%d");
        var p = Match(pte, "addr=7f8833e00000, pte=800000004414f025 order=0")!;
        Assert.Equal(0x7f8833e00000UL, p[0].Bits);
        Assert.Equal(0x800000004414f025UL, p[1].Bits);
        Assert.Null(Match(pte, "addr=7f8833e00000 pte=800000004414f025 order=0"));
    }

    [Fact]
    public void Hex_pfn_template_rejects_decimal_pfn_and_the_decimal_variant_takes_it()
    {
        var builtIn = SchemaRegistry.CreateBuiltIn().Find("mm_page_free")!;
        Assert.Equal("kmem:mm_page_free", builtIn.FullName);
        Assert.Null(Match(builtIn.Templates[0], "page=ffffea0000123400 pfn=12345 order=0"));
        var m = Match(builtIn.Templates[1], "page=ffffea0000123400 pfn=12345 order=0")!;
        Assert.Equal(12345UL, m[1].Bits);
        Assert.Equal(FieldStyle.Decimal, m[1].Style);
    }

    [Fact]
    public void Kprobe_definitions_give_the_kernels_print_format()
    {
        var d = KprobeDefinition.ParseLine("p:rt/file_rmap_add page_add_file_rmap page=%di:x64 vma=%si:x64 compound=%dx:u8 idx=%si:x32 mapcount=+48(%di):s32 name=+0(%si):string")!;
        Assert.Equal("rt:file_rmap_add", d.FullName);
        Assert.Equal("page_add_file_rmap", d.Location);
        Assert.Equal("(%lx) page=0x%Lx vma=0x%Lx compound=%u idx=0x%x mapcount=%d name=\"%s\"", d.PrintFmt);
        var t = d.Template;
        Assert.Equal([FieldStyle.Hex, FieldStyle.Hex, FieldStyle.Decimal, FieldStyle.Hex], t.Fields.Take(4).Select(x => x.Style));
        Assert.Equal(FieldType.S64, t.Fields[4].Type);
        Assert.Equal(FieldType.Str, t.Fields[5].Type);
        var r = KprobeDefinition.ParseLine("r10:rt/migrate_mapping_ret folio_migrate_mapping ret=$retval:s32")!;
        Assert.True(r.IsReturn);
        Assert.Equal("(%lx <- %lx) ret=%d", r.PrintFmt);
        var m = Match(d.Template, "page=0x1a2b vma=0x0 compound=0 idx=0x12 mapcount=-1 name=\"a b\"")!;
        Assert.Equal("a b", m[5].Text);
    }

    [Fact]
    public void Capture_context_reads_the_capture_folder()
    {
        var ctx = CaptureContext.Discover(Repo.Trace("6.1-ext4-basic", "ftrace", "trace.txt.zst"));
        Assert.Equal("6.1.0-56-amd64", ctx.KernelRelease);
        Assert.Equal(0xffffffff9aa15730UL, ctx.KallsymsBases["vmemmap_base"]);
        Assert.Contains(ctx.Kprobes, k => k.FullName == "rt:memcg_migrate");
        var reg = ctx.BuildRegistry();
        Assert.Equal("rt:file_rmap_add", reg.Find("file_rmap_add")!.FullName);
        Assert.Equal(SchemaOrigin.CaptureFormat, reg.Find("file_rmap_add")!.Origin);
        Assert.Equal("ftrace:print", reg.Find("print")!.FullName);
        Assert.Same(CaptureContext.None.Formats, CaptureContext.None.Formats);
    }
}
