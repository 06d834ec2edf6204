using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;
using Replayer.Formats.Binary;

namespace Replayer.Formats.Tests.Binary;

/// <summary>One event a synthetic capture contains, with the values its fields print.</summary>
public sealed record SynthEvent(int Cpu, long Time, int Pid, int Type, ulong A, ulong B, string? S = null)
{
    public long Lost { get; init; } = -1; // >= 0: a data-loss marker instead of an event
}

/// <summary>
/// Writes small trace.dat (v6, v7 with none/zstd/zlib sections) and perf.data (file mode) captures
/// of either endianness from a list of <see cref="SynthEvent"/>s, with formats modelled on the
/// kernel's: kmem:mm_page_alloc (__print_flags, vmemmap pointer), sched:sched_process_exec
/// (__data_loc string), rt:probe (kprobe with __probe_ip) and migrate:mm_migrate_pages_start
/// (__print_symbolic). Used for endianness/compression coverage and as fuzzing seeds.
/// </summary>
public static class SyntheticCaptures
{
    public const int PageAlloc = 100, Exec = 200, Probe = 300, MigrateStart = 400;
    public const ulong ProbeFunc = 0xffffffff81001000UL;

    public static readonly string[] Formats =
    [
        """
        name: mm_page_alloc
        ID: 100
        format:
        	field:unsigned short common_type;	offset:0;	size:2;	signed:0;
        	field:unsigned char common_flags;	offset:2;	size:1;	signed:0;
        	field:unsigned char common_preempt_count;	offset:3;	size:1;	signed:0;
        	field:int common_pid;	offset:4;	size:4;	signed:1;

        	field:unsigned long pfn;	offset:8;	size:8;	signed:0;
        	field:unsigned int order;	offset:16;	size:4;	signed:0;
        	field:unsigned long gfp_flags;	offset:24;	size:8;	signed:0;
        	field:int migratetype;	offset:32;	size:4;	signed:1;

        print fmt: "page=%p pfn=0x%lx order=%d migratetype=%d gfp_flags=%s", REC->pfn != -1UL ? (((struct page *)vmemmap_base) + (REC->pfn)) : ((void *)0), REC->pfn != -1UL ? REC->pfn : 0, REC->order, REC->migratetype, (REC->gfp_flags) ? __print_flags(REC->gfp_flags, "|", {( unsigned long)(( gfp_t)0x400u), "__GFP_DIRECT_RECLAIM"}, {( unsigned long)(( gfp_t)0x800u), "__GFP_KSWAPD_RECLAIM"}, { 0, ((void *)0) }) : "none"
        """,
        """
        name: sched_process_exec
        ID: 200
        format:
        	field:unsigned short common_type;	offset:0;	size:2;	signed:0;
        	field:unsigned char common_flags;	offset:2;	size:1;	signed:0;
        	field:unsigned char common_preempt_count;	offset:3;	size:1;	signed:0;
        	field:int common_pid;	offset:4;	size:4;	signed:1;

        	field:__data_loc char[] filename;	offset:8;	size:4;	signed:0;
        	field:pid_t pid;	offset:12;	size:4;	signed:1;

        print fmt: "filename=%s pid=%d", __get_str(filename), REC->pid
        """,
        """
        name: probe
        ID: 300
        format:
        	field:unsigned short common_type;	offset:0;	size:2;	signed:0;
        	field:unsigned char common_flags;	offset:2;	size:1;	signed:0;
        	field:unsigned char common_preempt_count;	offset:3;	size:1;	signed:0;
        	field:int common_pid;	offset:4;	size:4;	signed:1;

        	field:unsigned long __probe_ip;	offset:8;	size:8;	signed:0;
        	field:u64 page;	offset:16;	size:8;	signed:0;
        	field:s32 mapcount;	offset:24;	size:4;	signed:1;

        print fmt: "(%lx) page=0x%Lx mapcount=%d", REC->__probe_ip, REC->page, REC->mapcount
        """,
        """
        name: mm_migrate_pages_start
        ID: 400
        format:
        	field:unsigned short common_type;	offset:0;	size:2;	signed:0;
        	field:unsigned char common_flags;	offset:2;	size:1;	signed:0;
        	field:unsigned char common_preempt_count;	offset:3;	size:1;	signed:0;
        	field:int common_pid;	offset:4;	size:4;	signed:1;

        	field:enum migrate_mode mode;	offset:8;	size:4;	signed:0;
        	field:int reason;	offset:12;	size:4;	signed:1;

        print fmt: "mode=%s reason=%s", __print_symbolic(REC->mode, {0, "MIGRATE_ASYNC"}, {1, "MIGRATE_SYNC_LIGHT"}, {2, "MIGRATE_SYNC"}), __print_symbolic(REC->reason, {0, "compaction"}, {3, "syscall_or_cpuset"})
        """,
    ];

    static readonly string[] Systems = ["kmem", "sched", "rt", "migrate"];

    public const string HeaderPage = TraceDatLayout.HeaderPage;
    public const string HeaderEvent = TraceDatLayout.HeaderEvent;

    public const string Kallsyms = "ffffffff81000000 T _stext\nffffffff81001000 T page_add_file_rmap\nffffffff810012f0 T next_function\nffffffff81002000 T _etext\n";
    public const string Cmdlines = "100 migwl\n200 sh\n";

    /// <summary>A default event list: both CPUs, every format, a long gap (TIME_EXTEND), a long record, a loss marker.</summary>
    public static List<SynthEvent> DefaultEvents()
    {
        var list = new List<SynthEvent>
        {
            new(0, 1_000_000_000, 100, PageAlloc, 0x1234, 0x400),
            new(0, 1_000_000_500, 100, Probe, ProbeFunc, 0xffd4000000012340),
            new(0, 1_000_001_000, 100, Exec, 0, 100, "/usr/bin/a-rather-long-executable-name-that-needs-a-long-record/with/more/path/elements/in/it/to/pass/112/bytes"),
            new(1, 1_000_000_700, 200, MigrateStart, 2, 3),
            new(1, 1_000_000_900, 200, PageAlloc, 0x99, 0),
            new(0, 1_900_000_000, 100, PageAlloc, 0x5678, 0xc00), // 0.9 s later: needs a TIME_EXTEND
            new(1, 1_950_000_000, 200, Probe, ProbeFunc + 4, 0x10) { Lost = 7 },
            new(1, 1_950_000_100, 200, MigrateStart, 9, 0),
        };
        return list;
    }

    // ------------------------------------------------------------------ records and pages

    static void Put(List<byte> b, ulong v, int size, bool big) => TraceDatLayout.Put(b, v, size, big);
    static byte[] Bytes(Action<List<byte>> fill) => TraceDatLayout.Bytes(fill);


    /// <summary>The raw tracepoint record of an event (common fields + payload).</summary>
    public static byte[] Record(SynthEvent e, bool big) => Bytes(b =>
    {
        Put(b, (ulong)e.Type, 2, big);
        b.Add(0x01); // irqs off
        b.Add(0x02); // preempt count 2
        Put(b, (ulong)e.Pid, 4, big);
        switch (e.Type)
        {
            case PageAlloc:
                Put(b, e.A, 8, big); Put(b, 1, 4, big); Put(b, 0, 4, big); Put(b, e.B, 8, big); Put(b, 1, 4, big); Put(b, 0, 4, big);
                break;
            case Exec:
            {
                var s = Encoding.UTF8.GetBytes(e.S ?? "") .Append((byte)0).ToArray();
                Put(b, (ulong)s.Length << 16 | 16, 4, big); Put(b, e.B, 4, big); b.AddRange(s);
                break;
            }
            case Probe:
                Put(b, e.A, 8, big); Put(b, e.B, 8, big); Put(b, unchecked((ulong)-1), 4, big); Put(b, 0, 4, big);
                break;
            case MigrateStart:
                Put(b, e.A, 4, big); Put(b, e.B, 4, big);
                break;
        }
        while (b.Count % 4 != 0) b.Add(0);
    });

    /// <summary>The expected print output of an event (libtraceevent style, kprobe address in hex, page unknown).</summary>
    public static string Expected(SynthEvent e) => e.Type switch
    {
        PageAlloc => $"page=<?> pfn=0x{e.A:x} order=1 migratetype=1 gfp_flags=" + (e.B == 0 ? "none" :
            string.Join("|", new[] { (0x400UL, "__GFP_DIRECT_RECLAIM"), (0x800UL, "__GFP_KSWAPD_RECLAIM") }.Where(f => (e.B & f.Item1) != 0).Select(f => f.Item2))),
        Exec => $"filename={e.S} pid={e.B}",
        Probe => $"({e.A:x}) page=0x{e.B:x} mapcount=-1",
        MigrateStart => $"mode={(e.A switch { 0 => "MIGRATE_ASYNC", 1 => "MIGRATE_SYNC_LIGHT", 2 => "MIGRATE_SYNC", _ => "0x" + e.A.ToString("x") })} reason={(e.B switch { 0 => "compaction", 3 => "syscall_or_cpuset", _ => "0x" + e.B.ToString("x") })}",
        _ => "",
    };

    public static string EventName(int type) => type switch
    {
        PageAlloc => "kmem:mm_page_alloc", Exec => "sched:sched_process_exec", Probe => "rt:probe", MigrateStart => "migrate:mm_migrate_pages_start", _ => "?",
    };

    /// <summary>Ring-buffer pages of one CPU (src <see cref="TraceDatLayout.CpuPages(IEnumerable{RingRecord}, bool)"/>); an event with Lost >= 0 starts a new page flagged as missing events.</summary>
    static byte[] CpuPages(IEnumerable<SynthEvent> events, bool big) =>
        TraceDatLayout.CpuPages(events.Select(e => new RingRecord(e.Time, Record(e, big), e.Lost)), big);

    // ------------------------------------------------------------------ trace.dat

    static byte[] Compress(string algo, byte[] data)
    {
        if (algo == "zstd") { using var c = new ZstdSharp.Compressor(3); return c.Wrap(data).ToArray(); }
        using var ms = new MemoryStream();
        using (var z = new ZLibStream(ms, CompressionLevel.Fastest, leaveOpen: true)) z.Write(data);
        return ms.ToArray();
    }

    static (string System, string Text)[] FormatList => Systems.Zip(Formats, (sy, f) => (sy, f)).ToArray();

    static byte[] FormatsBlock(bool big, bool tracingData) => TraceDatLayout.FormatsBlock(big, FormatList);
    static byte[] Preamble(string version, bool big) => TraceDatLayout.Preamble(version, big);
    static byte[] HeaderInfo(bool big) => TraceDatLayout.HeaderInfo(big);

    /// <summary>The v6-layout metadata after the preamble up to and including saved cmdlines (also perf's tracing data).</summary>
    static byte[] V6Metadata(bool big) => TraceDatLayout.V6Metadata(big, FormatList, Kallsyms, Cmdlines);

    /// <summary>trace.dat; v7 may add a second ring-buffer instance and a TSC2NSEC option (mult, shift, offset).</summary>
    public static byte[] TraceDat(int version, string compression, bool big, IReadOnlyList<SynthEvent>? events = null,
        IReadOnlyList<SynthEvent>? instanceEvents = null, (uint Mult, uint Shift, ulong Offset)? tsc2nsec = null)
    {
        events ??= DefaultEvents();
        var cpus = new[] { CpuPages(events.Where(e => e.Cpu == 0), big), CpuPages(events.Where(e => e.Cpu == 1), big) };
        var f = new List<byte>();
        f.AddRange(Preamble(version.ToString(), big));
        void Align() { while (f.Count % 4096 != 0) f.Add(0); }
        if (version == 6)
        {
            using var ms = new MemoryStream();
            TraceDatLayout.WriteV6(ms, big, V6Metadata(big), "Linux synth 6.1.0-synth x86_64", cpus.Select(c => (Stream)new MemoryStream(c)).ToList());
            return ms.ToArray();
        }
        // v7: compression header, first-options offset, then sections.
        f.AddRange(Encoding.ASCII.GetBytes(compression + "\0" + (compression == "none" ? "" : "1") + "\0"));
        int firstOpt = f.Count;
        Put(f, 0, 8, big);
        bool comp = compression != "none";
        long Section(int id, byte[] data)
        {
            long at = f.Count;
            Put(f, (ulong)id, 2, big); Put(f, comp ? 1UL : 0UL, 2, big); Put(f, 0, 4, big);
            byte[] body = data;
            if (comp)
            {
                var c = Compress(compression, data);
                body = Bytes(b => { Put(b, (ulong)c.Length, 4, big); Put(b, (ulong)data.Length, 4, big); b.AddRange(c); });
            }
            Put(f, (ulong)body.Length, 8, big);
            f.AddRange(body);
            return at;
        }
        long hdr = Section(16, HeaderInfo(big));
        long evf = Section(18, FormatsBlock(big, false)[4..]); // v7: ftrace formats live in section 17
        long ks = Section(19, Bytes(b => { Put(b, (ulong)Kallsyms.Length, 4, big); b.AddRange(Encoding.ASCII.GetBytes(Kallsyms)); }));
        long cl = Section(21, Bytes(b => { Put(b, (ulong)Cmdlines.Length, 8, big); b.AddRange(Encoding.ASCII.GetBytes(Cmdlines)); }));
        // No ftrace events and no printk formats, but the sections are there as trace-cmd writes them.
        long ftr = Section(17, Bytes(b => Put(b, 0, 4, big)));
        long prk = Section(20, Bytes(b => Put(b, 0, 4, big)));
        // Flyrecord section: header, then per-CPU data (chunked when compressed).
        long fly = f.Count;
        Put(f, 3, 2, big); Put(f, comp ? 1UL : 0UL, 2, big); Put(f, 0, 4, big);
        int sizeAt = f.Count;
        Put(f, 0, 8, big);
        var cpuOff = new long[2];
        var cpuSize = new long[2];
        for (int c = 0; c < 2; c++)
        {
            Align();
            cpuOff[c] = f.Count;
            if (!comp) f.AddRange(cpus[c]);
            else
            {
                // one chunk per page, as trace-cmd does for small buffers
                int n = cpus[c].Length / 4096;
                Put(f, (ulong)n, 4, big);
                for (int p = 0; p < n; p++)
                {
                    var page = cpus[c].AsSpan(p * 4096, 4096).ToArray();
                    var z = Compress(compression, page);
                    Put(f, (ulong)z.Length, 4, big); Put(f, 4096, 4, big); f.AddRange(z);
                }
            }
            cpuSize[c] = f.Count - cpuOff[c];
        }
        var secSize = Bytes(b => Put(b, (ulong)(f.Count - sizeAt - 8), 8, big));
        for (int i = 0; i < 8; i++) f[sizeAt + i] = secSize[i];
        // Optional second instance "inst": CPU 0 only, uncompressed-or-chunked like the top one.
        long instFly = 0, instOff = 0, instSize = 0;
        if (instanceEvents != null)
        {
            var pages = CpuPages(instanceEvents, big);
            instFly = f.Count;
            Put(f, 3, 2, big); Put(f, comp ? 1UL : 0UL, 2, big); Put(f, 0, 4, big);
            int isz = f.Count;
            Put(f, 0, 8, big);
            Align();
            instOff = f.Count;
            if (!comp) f.AddRange(pages);
            else
            {
                int n = pages.Length / 4096;
                Put(f, (ulong)n, 4, big);
                for (int p = 0; p < n; p++)
                {
                    var z = Compress(compression, pages.AsSpan(p * 4096, 4096).ToArray());
                    Put(f, (ulong)z.Length, 4, big); Put(f, 4096, 4, big); f.AddRange(z);
                }
            }
            instSize = f.Count - instOff;
            var ss = Bytes(b => Put(b, (ulong)(f.Count - isz - 8), 8, big));
            for (int i = 0; i < 8; i++) f[isz + i] = ss[i];
        }
        // Options section pointing at everything.
        long opts = f.Count;
        var od = new List<byte>();
        void Opt(int id, byte[] data) { Put(od, (ulong)id, 2, big); Put(od, (ulong)data.Length, 4, big); od.AddRange(data); }
        byte[] U64(long v) => Bytes(b => Put(b, (ulong)v, 8, big));
        Opt(16, U64(hdr)); Opt(17, U64(ftr)); Opt(18, U64(evf)); Opt(19, U64(ks)); Opt(20, U64(prk)); Opt(21, U64(cl));
        Opt(5, Encoding.ASCII.GetBytes("Linux synth 6.1.0-synth x86_64\0"));
        Opt(8, Bytes(b => Put(b, 2, 4, big)));
        Opt(3, Bytes(b =>
        {
            Put(b, (ulong)fly, 8, big); b.Add(0); b.AddRange(Encoding.ASCII.GetBytes("global\0"));
            Put(b, 4096, 4, big); Put(b, 2, 4, big);
            for (int c = 0; c < 2; c++) { Put(b, (ulong)c, 4, big); Put(b, (ulong)cpuOff[c], 8, big); Put(b, (ulong)cpuSize[c], 8, big); }
        }));
        if (instanceEvents != null)
            Opt(3, Bytes(b =>
            {
                Put(b, (ulong)instFly, 8, big); b.AddRange(Encoding.ASCII.GetBytes("inst\0global\0"));
                Put(b, 4096, 4, big); Put(b, 1, 4, big);
                Put(b, 0, 4, big); Put(b, (ulong)instOff, 8, big); Put(b, (ulong)instSize, 8, big);
            }));
        if (tsc2nsec is { } t2n)
            Opt(14, Bytes(b => { Put(b, t2n.Mult, 4, big); Put(b, t2n.Shift, 4, big); Put(b, t2n.Offset, 8, big); }));
        Opt(0, U64(0));
        Put(f, 0, 2, big); Put(f, 0, 2, big); Put(f, 0, 4, big); Put(f, (ulong)od.Count, 8, big);
        f.AddRange(od);
        var fo = U64(opts);
        for (int i = 0; i < 8; i++) f[firstOpt + i] = fo[i];
        return f.ToArray();
    }

    // ------------------------------------------------------------------ perf.data

    const ulong SampleType = 1 | 2 | 4 | 128 | 256 | 1024 | (1UL << 16); // IP TID TIME CPU PERIOD RAW IDENTIFIER

    /// <summary>A file-mode perf.data with one tracepoint attr per format (ids type*10+cpu), COMM records for the pids,
    /// samples in rounds of two events with FINISHED_ROUND marks, and a LOST record where an event has Lost >= 0.</summary>
    /// <param name="compressedType">0: plain records; 81 (COMPRESSED) or 83 (COMPRESSED2): the records after the COMMs
    /// as one zstd stream cut into small compressed records (so records straddle them).</param>
    public static byte[] PerfData(bool big, IReadOnlyList<SynthEvent>? events = null, int compressedType = 0)
    {
        events ??= DefaultEvents();
        var f = new List<byte>();
        f.AddRange(new byte[104]);
        // attrs (128-byte attr + ids section) and ids
        int[] types = [PageAlloc, Exec, Probe, MigrateStart];
        var idsAt = new long[types.Length];
        var idsBlob = new List<byte>();
        long idsBase = 104 + types.Length * 144;
        for (int i = 0; i < types.Length; i++) { idsAt[i] = idsBase + idsBlob.Count; Put(idsBlob, (ulong)(types[i] * 10), 8, big); Put(idsBlob, (ulong)(types[i] * 10 + 1), 8, big); }
        for (int i = 0; i < types.Length; i++)
        {
            var a = new List<byte>();
            Put(a, 2, 4, big); Put(a, 128, 4, big); Put(a, (ulong)types[i], 8, big); Put(a, 1, 8, big);
            Put(a, SampleType, 8, big); Put(a, 4 | 16, 8, big); Put(a, 1UL << 18, 8, big);
            while (a.Count < 128) a.Add(0);
            Put(a, (ulong)idsAt[i], 8, big); Put(a, 16, 8, big);
            f.AddRange(a);
        }
        f.AddRange(idsBlob);
        long dataOff = f.Count;
        void Rec(uint type, byte[] body)
        {
            Put(f, type, 4, big); Put(f, 0, 2, big); Put(f, (ulong)(body.Length + 8), 2, big); f.AddRange(body);
        }
        byte[] SampleId(int pid, long time, int cpu, ulong id) => Bytes(b =>
        {
            Put(b, (ulong)pid, 4, big); Put(b, (ulong)pid, 4, big); Put(b, (ulong)time, 8, big);
            Put(b, (ulong)cpu, 4, big); Put(b, 0, 4, big); Put(b, id, 8, big);
        });
        foreach (var (pid, comm) in new[] { (100, "migwl"), (200, "sh") })
            Rec(3, Bytes(b =>
            {
                Put(b, (ulong)pid, 4, big); Put(b, (ulong)pid, 4, big);
                var c = Encoding.ASCII.GetBytes(comm + "\0"); b.AddRange(c); while (b.Count % 8 != 0) b.Add(0);
                b.AddRange(SampleId(pid, 0, 0, PageAlloc * 10));
            }));
        int plainEnd = f.Count;
        // Write in rounds: within a round, CPU 1's events first (out of time order), as perf's per-CPU buffers do.
        var sorted = events.OrderBy(e => e.Time).ToList();
        for (int i = 0; i < sorted.Count; i += 3)
        {
            var round = sorted.Skip(i).Take(3).OrderByDescending(e => e.Cpu).ThenBy(e => e.Time).ToList();
            foreach (var e in round)
            {
                ulong id = (ulong)(e.Type * 10 + e.Cpu);
                if (e.Lost >= 0)
                    Rec(2, Bytes(b => { Put(b, id, 8, big); Put(b, (ulong)e.Lost, 8, big); b.AddRange(SampleId(e.Pid, e.Time - 1, e.Cpu, id)); }));
                var raw = Record(e, big);
                Rec(9, Bytes(b =>
                {
                    Put(b, id, 8, big); Put(b, 0xffffffff81000010UL, 8, big);
                    Put(b, (ulong)e.Pid, 4, big); Put(b, (ulong)e.Pid, 4, big); Put(b, (ulong)e.Time, 8, big);
                    Put(b, (ulong)e.Cpu, 4, big); Put(b, 0, 4, big); Put(b, 1, 8, big);
                    var rawPadded = raw.Concat(new byte[(8 - (raw.Length + 4) % 8) % 8]).ToArray();
                    Put(b, (ulong)rawPadded.Length, 4, big); b.AddRange(rawPadded);
                }));
            }
            Rec(68, []);
        }
        if (compressedType != 0)
        {
            var plain = f.Skip(plainEnd).ToArray();
            f.RemoveRange(plainEnd, f.Count - plainEnd);
            byte[] z;
            using (var c = new ZstdSharp.Compressor(3)) z = c.Wrap(plain).ToArray();
            for (int zp = 0; zp < z.Length; zp += 50)
            {
                var piece = z.AsSpan(zp, Math.Min(50, z.Length - zp)).ToArray();
                if (compressedType == 81) Rec(81, piece);
                else Rec(83, Bytes(b => { Put(b, (ulong)piece.Length, 8, big); b.AddRange(piece); while ((b.Count + 8) % 8 != 0) b.Add(0); }));
            }
        }
        long dataSize = f.Count - dataOff;
        // features: TRACING_DATA (1), OSRELEASE (4), NRCPUS (7)
        var tracing = Preamble("0.6", big).Concat(V6Metadata(big)).ToArray();
        var osrel = Bytes(b => { var s = Encoding.ASCII.GetBytes("6.1.0-synth\0"); var padded = s.Concat(new byte[64 - s.Length]).ToArray(); Put(b, 64, 4, big); b.AddRange(padded); });
        var nrcpus = Bytes(b => { Put(b, 2, 4, big); Put(b, 2, 4, big); });
        long table = f.Count;
        long featData = table + 3 * 16;
        var feats = new[] { tracing, osrel, nrcpus };
        long at = featData;
        foreach (var d in feats) { Put(f, (ulong)at, 8, big); Put(f, (ulong)d.Length, 8, big); at += d.Length; }
        foreach (var d in feats) f.AddRange(d);
        // header
        var h = new List<byte>();
        h.AddRange(Encoding.ASCII.GetBytes("PERFILE2"));
        if (big) h.Reverse(0, 8);
        Put(h, 104, 8, big); Put(h, 144, 8, big);
        Put(h, 104, 8, big); Put(h, (ulong)(types.Length * 144), 8, big);
        Put(h, (ulong)dataOff, 8, big); Put(h, (ulong)dataSize, 8, big);
        Put(h, 0, 8, big); Put(h, 0, 8, big);
        var bits = new byte[32];
        bits[0] = (byte)(1 << 1 | 1 << 4 | 1 << 7);
        if (big)
        {
            // the bitmap is an array of u64 words in file endianness
            var w = BinaryPrimitives.ReadUInt64LittleEndian(bits);
            BinaryPrimitives.WriteUInt64BigEndian(bits, w);
        }
        h.AddRange(bits);
        for (int i = 0; i < 104; i++) f[i] = h[i];
        return f.ToArray();
    }
}
