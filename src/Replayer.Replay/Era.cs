using Replayer.Core;
using Replayer.Core.Domain;

namespace Replayer.Replay;

/// <summary>Kernel era: decides which adapter maps events onto the model and which invariants apply.</summary>
public enum Era
{
    Unknown = 0,
    /// <summary>2.6.34: pre-fix (commit in end_migration, no PCG_MIGRATION).</summary>
    Seed2634,
    /// <summary>2.6.35: commit in prepare_migration, PCG_MIGRATION for anon.</summary>
    Seed2635,
    /// <summary>6.1 (up to 6.6): per-folio migration; mem_cgroup_migrate force-charges, old keeps memcg_data until freed.</summary>
    Linux61,
    /// <summary>6.7–6.12: batched migration; mem_cgroup_migrate transfers memcg_data (old's becomes 0).</summary>
    Linux612,
    /// <summary>6.13+: as 6.12 plus memcg:* stat tracepoints.</summary>
    Linux613Plus,
}

public static class Eras
{
    public static readonly Era[] Seed = [Era.Seed2634, Era.Seed2635];
    public static readonly Era[] Modern = [Era.Linux61, Era.Linux612, Era.Linux613Plus];
    public static readonly Era[] All = [Era.Seed2634, Era.Seed2635, Era.Linux61, Era.Linux612, Era.Linux613Plus];

    public static bool IsSeed(this Era e) => e is Era.Seed2634 or Era.Seed2635;
    public static bool IsModern(this Era e) => e is Era.Linux61 or Era.Linux612 or Era.Linux613Plus;

    /// <summary>Parses a CLI name: <c>2.6.34</c>, <c>seed2634</c>, <c>6.1</c>, <c>linux612</c>, <c>6.13</c>…</summary>
    public static Era Parse(string s)
    {
        var t = s.Trim().ToLowerInvariant().Replace("linux", "").Replace("seed", "");
        return t switch
        {
            "2.6.34" or "2634" => Era.Seed2634,
            "2.6.35" or "2635" => Era.Seed2635,
            "6.1" or "61" => Era.Linux61,
            "6.12" or "612" => Era.Linux612,
            "6.13" or "613" or "613plus" or "6.13+" => Era.Linux613Plus,
            _ => FromRelease(s) is var e && e != Era.Unknown ? e : throw new ArgumentException($"unknown era '{s}' (expected 2.6.34, 2.6.35, 6.1, 6.12, 6.13)"),
        };
    }

    /// <summary>Era from a kernel release (<c>6.1.0-56-amd64</c>, a <c>uname -a</c> line, <c>2.6.35.6</c>).</summary>
    public static Era FromRelease(string? release)
    {
        if (string.IsNullOrWhiteSpace(release)) return Era.Unknown;
        foreach (var tok in release.Split(' ', StringSplitOptions.RemoveEmptyEntries))
        {
            var parts = tok.Split('.', '-', '+');
            if (parts.Length < 2 || !int.TryParse(parts[0], out var major) || !int.TryParse(parts[1], out var minor)) continue;
            if (major == 2 && minor == 6 && parts.Length > 2 && int.TryParse(parts[2], out var sub))
                return sub <= 34 ? Era.Seed2634 : Era.Seed2635;
            if (major == 6 && minor <= 6) return Era.Linux61;
            if (major == 6 && minor <= 12) return Era.Linux612;
            if (major > 6 || major == 6) return Era.Linux613Plus;
            if (major >= 3) return Era.Linux61;
        }
        return Era.Unknown;
    }

    /// <summary>Era from the events seen (when no release is known).</summary>
    public static Era FromEvents(IEnumerable<DomainEvent> sample)
    {
        bool seed = false, seedCommitInPrepare = false, folio = false, pageRmap = false, memcgTp = false;
        PrepareMigrationEvent? openPrepare = null;
        foreach (var e in sample)
        {
            switch (e)
            {
                case PrepareMigrationEvent p: seed = true; openPrepare = p; break;
                case CommitChargeEvent c when openPrepare != null && c.Pid == openPrepare.Pid: seedCommitInPrepare = true; break;
                case FunctionReturnEvent { Function: "mem_cgroup_prepare_migration" }: openPrepare = null; break;
                case EndMigrationEvent or UpdateFileMappedEvent or UnchargeCommonEvent: seed = true; break;
                case RmapAddEvent r when r.Function.StartsWith("folio_", StringComparison.Ordinal): folio = true; break;
                case RmapRemoveEvent r when r.Function.StartsWith("folio_", StringComparison.Ordinal): folio = true; break;
                case RmapAddEvent or RmapRemoveEvent or MemcgMigrateEvent: pageRmap = true; break;
                case MemcgStatEvent: memcgTp = true; break;
                case MigrateFolioMoveEvent: folio = true; break;
            }
        }
        if (memcgTp) return Era.Linux613Plus;
        if (folio) return Era.Linux612;
        if (seed) return seedCommitInPrepare ? Era.Seed2635 : Era.Seed2634;
        if (pageRmap) return Era.Linux61;
        return Era.Unknown;
    }

    /// <summary>The kernel release of a trace: reader header, else <c>uname.txt</c> beside it (or in sysinfo/).</summary>
    public static string? ReleaseFor(string tracePath, CaptureHeader? header)
    {
        if (header?.KernelRelease is { Length: > 0 } r) return r;
        var dir = Path.GetDirectoryName(Path.GetFullPath(tracePath));
        foreach (var cand in new[] { dir, dir == null ? null : Path.Combine(Path.GetDirectoryName(dir) ?? dir, "sysinfo") })
        {
            if (cand == null) continue;
            var f = Path.Combine(cand, "uname.txt");
            if (File.Exists(f)) return File.ReadAllText(f).Trim();
        }
        return null;
    }
}
