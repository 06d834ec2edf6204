using Replayer.Core;
using Replayer.Gen.Sim;
using SimTask = Replayer.Gen.Sim.Task;

namespace Replayer.Gen;

/// <summary>The result of one generated scenario: events in time order and the findings the
/// simulation knows it caused.</summary>
public sealed record GenResult(string Scenario, ulong Seed, string Kernel, string Release, IReadOnlyList<TraceEvent> Events, IReadOnlyList<ExpectedFinding> Findings);

/// <summary>What pages a scenario creates and which tasks run beside the migration.</summary>
public sealed record ScenarioSpec(
    string Name,
    KernelModel Model,
    string Description,
    (int Min, int Max) FilePages,
    (int Min, int Max) AnonPages,
    (int Min, int Max) SwapCachePages,
    (int Min, int Max) ReadaheadPages,
    bool KernelMigrator,
    double ExitChance);

public static class Scenarios
{
    static ScenarioSpec Pair(string name, KernelModel m, string what, (int, int) file, (int, int) anon, (int, int) swap, (int, int) ra, bool kernel = false, double exit = 0.35) =>
        new(name, m, what, file, anon, swap, ra, kernel, exit);

    public static readonly IReadOnlyList<ScenarioSpec> All =
    [
        Pair("file-prefix", KernelModel.V2634, "file pages mapped by two tasks (two memcgs), migrated by migratepages(8) while the tasks fault, munmap and exit", (3, 6), (0, 0), (0, 0), (0, 0)),
        Pair("file-postfix", KernelModel.V2635, "as file-prefix on 2.6.35", (3, 6), (0, 0), (0, 0), (0, 0)),
        Pair("anon-prefix", KernelModel.V2634, "private anonymous pages migrated while their owner faults, munmaps and exits", (0, 0), (3, 6), (0, 0), (0, 0)),
        Pair("anon-postfix", KernelModel.V2635, "as anon-prefix on 2.6.35", (0, 0), (3, 6), (0, 0), (0, 0)),
        Pair("swapcache-prefix", KernelModel.V2634, "anonymous pages in the swap cache (mapped and unmapped) migrated while their owner swaps them in, munmaps and exits", (0, 0), (0, 2), (3, 5), (0, 0)),
        Pair("swapcache-postfix", KernelModel.V2635, "as swapcache-prefix on 2.6.35", (0, 0), (0, 2), (3, 5), (0, 0)),
        Pair("mixed-prefix", KernelModel.V2634, "file, anon and swapcache pages together", (2, 4), (1, 3), (1, 3), (0, 0)),
        Pair("mixed-postfix", KernelModel.V2635, "as mixed-prefix on 2.6.35", (2, 4), (1, 3), (1, 3), (0, 0)),
        Pair("unplug-prefix", KernelModel.Pre003, "seed 003: memory unplug migrates pages by kernel (no mmap_sem of the owner): swap-readahead pages with mapping == NULL and anon pages whose owner exits mid-migration, with 2.6.22-style unmap_and_move", (1, 2), (2, 4), (1, 2), (1, 3), kernel: true, exit: 0.6),
        Pair("unplug-postfix", KernelModel.V2635, "as unplug-prefix with the seed 003 fix (mapping check, RCU + anon_vma pin) in 2.6.35", (1, 2), (2, 4), (1, 2), (1, 3), kernel: true, exit: 0.6),
    ];

    public static ScenarioSpec? Find(string name) => All.FirstOrDefault(s => s.Name == name);

    public static GenResult Generate(string name, ulong seed, int scale = 1) =>
        Generate(Find(name) ?? throw new ArgumentException("unknown scenario '" + name + "'", nameof(name)), seed, scale);

    /// <summary>Runs one scenario. <paramref name="scale"/> multiplies the pages and the tasks' operations
    /// (for benchmarks); scale 1 is the small default the tests and committed captures use.</summary>
    public static GenResult Generate(ScenarioSpec spec, ulong seed, int scale = 1)
    {
        if (scale < 1) throw new ArgumentOutOfRangeException(nameof(scale), "scale must be >= 1");
        var rng = new Rng(seed * 0x100000001B3UL + (ulong)spec.Name.Length);
        var memA = new Memcg("A", 0xffff88003e4a1000UL);
        var memB = new Memcg("B", 0xffff88003e4a5800UL);
        var owner = new SimTask(2301, "migwl", 0, memA);
        var child = new SimTask(2302, "migwl", 1, memB);
        var migrator = spec.KernelMigrator ? new SimTask(412, "sh", 1, memA) : new SimTask(2310, "migratepages", 1, memA);
        long start = 1000_000_000_000L + rng.Range(0, 999_999) * 1000L;
        var k = new Kernel(spec.Model, rng, owner, start, firstPfn: 0x1a200UL + (ulong)rng.Int(0x100), firstNewPfn: 0x3e800UL + (ulong)rng.Int(0x100));
        k.Tasks.AddRange([owner, child]);
        // migrate_pages stops at the first -ENOMEM (failed allocation or charge): keep their expected number per run constant
        var plan = new FailurePlan();
        k.Failures = plan with { AllocFail = plan.AllocFail / scale, ChargeFail = plan.ChargeFail / scale };
        var file = new FileObj(0xffff88003c81a6d8UL);

        // ---- setup: everything the checker needs to know is in the trace
        k.Mark("migwl: setup begin");
        int nFile = rng.Range(spec.FilePages.Min * scale, spec.FilePages.Max * scale);
        int nAnon = rng.Range(spec.AnonPages.Min * scale, spec.AnonPages.Max * scale);
        int nSwap = rng.Range(spec.SwapCachePages.Min * scale, spec.SwapCachePages.Max * scale);
        int nRa = rng.Range(spec.ReadaheadPages.Min * scale, spec.ReadaheadPages.Max * scale);
        var candidates = new List<Page>();
        if (nFile > 0)
        {
            owner.FileVma = child.FileVma = true;
            for (int i = 0; i < nFile; i++)
            {
                var p = k.NewFilePage(file, i, memA);
                candidates.Add(p);
                if (rng.Chance(0.7)) { k.PageAddFileRmap(p); owner.FilePtes[i] = new Pte(PteKind.Present, p); }
            }
            k.Current = child;
            for (int i = 0; i < nFile; i++)
                if (rng.Chance(0.3)) { var p = file.Cache[i]; k.PageAddFileRmap(p); child.FilePtes[i] = new Pte(PteKind.Present, p); }
            k.Current = owner;
        }
        int anonTotal = nAnon + nSwap + nRa;
        if (anonTotal > 0)
        {
            owner.Av = new AnonVma(0xffff88003d2c7e40UL + (ulong)rng.Int(64) * 0x40) { Users = 1 };
            owner.AnonVmaMapped = true;
            int slot = 0x1c0 + rng.Int(0x40);
            for (int i = 0; i < anonTotal; i++)
            {
                var p = k.NewAnonPage(owner, i);
                if (i < nAnon) { candidates.Add(p); continue; }
                k.SwapOut(p, slot++);
                if (i < nAnon + nSwap)
                {
                    if (rng.Chance(0.5)) foreach (var _ in k.SwapInFault(owner, i)) { } // mapped swapcache
                    candidates.Add(k.SwapCacheMap[p.SwapSlot]);
                }
                else candidates.Add(k.DropAndReadahead(p)); // mapping == NULL, uncharged
            }
        }
        k.Mark("migwl: setup done");

        // ---- the race: migration beside the owner's and the child's activity
        rng.Shuffle(candidates);
        var migrating = candidates.Where(_ => rng.Chance(0.9)).ToList();
        if (migrating.Count == 0 && candidates.Count > 0) migrating.Add(candidates[0]);
        foreach (var p in migrating) k.Isolate(p);
        k.Current = migrator;
        k.Mark(spec.KernelMigrator ? "offline: memory block begin" : "migratepages: begin");

        var procs = new List<(SimTask, IEnumerable<Func<bool>?>)>
        {
            (migrator, Migrator(k, migrating, spec.KernelMigrator, migrator)),
            (owner, Worker(k, owner, file, nFile, anonTotal, spec.ExitChance, scale)),
        };
        if (nFile > 0) procs.Add((child, Worker(k, child, file, nFile, 0, spec.ExitChance, scale)));
        k.Run(procs, maxSteps: 100_000 * scale);
        k.Current = migrator;
        k.Mark("migwl: done");
        return new GenResult(spec.Name, seed, spec.Model.Name, spec.Model.Release, k.Events, k.Findings);
    }

    static IEnumerable<Func<bool>?> Migrator(Kernel k, List<Page> pages, bool offlining, SimTask self)
    {
        foreach (var w in k.MigratePages(pages, offlining)) yield return w;
        k.Current = self;
        k.Mark(offlining ? "offline: memory block end" : "migratepages: end");
    }

    /// <summary>Random faults, munmaps and maybe an exit, with think time between them.</summary>
    static IEnumerable<Func<bool>?> Worker(Kernel k, SimTask t, FileObj file, int nFile, int nAnon, double exitChance, int scale)
    {
        var rng = k.Rng;
        int ops = rng.Range(2 * scale, 6 * scale);
        int exitAt = rng.Chance(exitChance) ? rng.Int(ops + 1) : -1;
        for (int op = 0; op <= ops && t.Alive; op++)
        {
            int think = rng.Range(0, 6);
            for (int i = 0; i < think; i++) yield return null;
            if (op == exitAt) { k.Exit(t); yield break; }
            int what = rng.Int(6);
            if (what <= 2 && nFile > 0 && t.FileVma)
                foreach (var w in k.FileFault(t, file, rng.Int(nFile))) yield return w;
            else if (what <= 4 && nAnon > 0 && t.AnonVmaMapped)
                foreach (var w in k.SwapInFault(t, rng.Int(nAnon))) yield return w;
            else if (what == 5)
            {
                if (nFile > 0 && t.FileVma && (nAnon == 0 || rng.Chance(0.5))) k.MunmapFile(t);
                else if (nAnon > 0 && t.AnonVmaMapped && rng.Chance(0.5)) k.MunmapAnon(t);
            }
        }
    }
}
