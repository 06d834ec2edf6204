using System.Text;
using Replayer.Core;
using Replayer.Formats.Schema;

namespace Replayer.Formats;

/// <summary>What a binary reader factory gets: the decompressed stream positioned at the first byte.</summary>
public sealed record BinaryOpenContext(Stream Stream, string SourceName, TraceOpenOptions Options, CaptureContext Capture, string? Path);

/// <summary>
/// Decides the format of a (decompressed) input from its first bytes. Binary formats are opened through a
/// factory table: the binary readers register themselves with <see cref="Register"/>.
/// </summary>
public static class FormatDetector
{
    static readonly Dictionary<TraceFormat, Func<BinaryOpenContext, ITraceReader>> Factories = new();
    static readonly object Gate = new();

    /// <summary>trace-cmd <c>trace.dat</c>: <c>\x17\x08\x44tracing</c>.</summary>
    public static ReadOnlySpan<byte> TraceDatMagic => [0x17, 0x08, 0x44, (byte)'t', (byte)'r', (byte)'a', (byte)'c', (byte)'i', (byte)'n', (byte)'g'];

    /// <summary>Registers (or replaces) the reader of a binary format.</summary>
    public static void Register(TraceFormat format, Func<BinaryOpenContext, ITraceReader> factory)
    {
        lock (Gate) Factories[format] = factory;
    }

    public static Func<BinaryOpenContext, ITraceReader>? FactoryFor(TraceFormat format)
    {
        lock (Gate) return Factories.GetValueOrDefault(format);
    }

    /// <summary>The format of a decompressed input from its first bytes (ideally 64 KiB).</summary>
    public static TraceFormat Detect(ReadOnlySpan<byte> p)
    {
        if (p.StartsWith(TraceDatMagic)) return TraceFormat.TraceDat;
        if (p.StartsWith("PERFILE2"u8) || p.StartsWith("PERFFILE"u8) || p.StartsWith("2ELIFREP"u8)) return TraceFormat.PerfData;
        return DetectText(p);
    }

    static TraceFormat DetectText(ReadOnlySpan<byte> p)
    {
        int lines = 0;
        int ftraceVotes = 0, reportVotes = 0, perfVotes = 0;
        while (p.Length > 0 && lines < 200)
        {
            int nl = p.IndexOf((byte)'\n');
            var line = nl < 0 ? p : p[..nl];
            p = nl < 0 ? default : p[(nl + 1)..];
            if (nl < 0 && lines > 0) break; // a cut-off last line says nothing
            var t = line.TrimStart((byte)' ').TrimEnd((byte)'\r');
            if (t.Length == 0) continue;
            lines++;
            if (t.StartsWith("{\""u8)) return TraceFormat.Jsonl; // a JSON object per line, keys first
            if (t.StartsWith("# tracer:"u8)) return TraceFormat.FtraceText;
            if (t.StartsWith("# ========"u8) || t.StartsWith("# captured on"u8)) return TraceFormat.PerfScript;
            if (t.StartsWith("cpus="u8) || t.StartsWith("version = "u8)) return TraceFormat.TraceCmdReport;
            if (t.StartsWith(Encoding.UTF8.GetBytes(TextTraceReader.SelfFormatPrefix))) return TraceFormat.TraceCmdReport;
            if (t[0] == (byte)'#') continue;
            if (t.StartsWith("CPU:"u8) && t.IndexOf("LOST"u8) > 0) { ftraceVotes++; continue; }
            if (IsPerfWithoutCpu(t)) { perfVotes++; continue; }
            switch (ClassifyEventLine(line))
            {
                case 1: ftraceVotes++; break;
                case 2: reportVotes++; break;
                case 3: perfVotes++; break;
            }
            if (ftraceVotes + reportVotes + perfVotes >= 20) break;
        }
        if (perfVotes > 0 && perfVotes >= ftraceVotes + reportVotes) return TraceFormat.PerfScript;
        if (ftraceVotes > 0 && ftraceVotes >= reportVotes) return TraceFormat.FtraceText;
        if (reportVotes > 0) return TraceFormat.TraceCmdReport;
        return TraceFormat.Unknown;
    }

    /// <summary>1: raw ftrace (TASK-PID [CPU] FLAGS TS:), 2: TASK-PID [CPU] TS: (report or irq-info off), 3: perf script (TASK PID [CPU] TS:), 0: none.</summary>
    static int ClassifyEventLine(ReadOnlySpan<byte> line)
    {
        int from = 0;
        while (true)
        {
            int b = line[from..].IndexOf(" ["u8);
            if (b < 0) return 0;
            b += from;
            from = b + 1;
            int j = b + 2, ds = j;
            while (j < line.Length && (uint)(line[j] - '0') <= 9) j++;
            if (j == ds || j >= line.Length || line[j] != (byte)']') continue;
            var rest = line[(j + 1)..].TrimStart((byte)' ');
            int sp = rest.IndexOf((byte)' ');
            var tok = sp < 0 ? rest : rest[..sp];
            bool tsFirst = IsTs(tok);
            if (!tsFirst)
            {
                var r2 = rest[(sp < 0 ? rest.Length : sp)..].TrimStart((byte)' ');
                int sp2 = r2.IndexOf((byte)' ');
                if (!IsTs(sp2 < 0 ? r2 : r2[..sp2])) continue;
            }
            var head = line[..b].TrimEnd((byte)' ');
            if (head.Length > 0 && head[^1] == (byte)')')
            {
                int op = head.LastIndexOf((byte)'(');
                if (op > 0) head = head[..op].TrimEnd((byte)' ');
            }
            int e = head.Length, s = e;
            while (s > 0 && (uint)(head[s - 1] - '0') <= 9) s--;
            if (s == e || s == 0) return 0;
            byte sep = head[s - 1];
            if (sep == (byte)' ' || sep == (byte)'/') return 3;
            if (sep != (byte)'-') return 0;
            return tsFirst ? 2 : 1;
        }
    }

    /// <summary>"[comm] [tid] sec.frac: sys:event: ..." (perf script -F without cpu).</summary>
    static bool IsPerfWithoutCpu(ReadOnlySpan<byte> t)
    {
        if (t.IndexOf(" ["u8) >= 0) return false;
        int i = 0;
        for (int k = 0; k < 3 && i < t.Length; k++)
        {
            int e = t[i..].IndexOf((byte)' ');
            var tok = e < 0 ? t[i..] : t[i..(i + e)];
            if (tok.IndexOf((byte)'.') > 0 && IsTs(tok))
            {
                var rest = t[(i + tok.Length)..].TrimStart((byte)' ');
                int c = rest.IndexOf((byte)':');
                int sp = rest.IndexOf((byte)' ');
                return c > 0 && (sp < 0 || c < sp) && c + 1 < rest.Length && rest[c + 1] != (byte)' ' && rest[(c + 1)..].IndexOf((byte)':') > 0;
            }
            if (e < 0) break;
            i += e + 1;
            while (i < t.Length && t[i] == (byte)' ') i++;
        }
        return false;
    }

    static bool IsTs(ReadOnlySpan<byte> tok)
    {
        if (tok.Length < 2 || tok[^1] != (byte)':') return false;
        int dot = tok.IndexOf((byte)'.');
        if (dot == 0) return false;
        for (int i = 0; i < tok.Length - 1; i++)
            if (i != dot && (uint)(tok[i] - '0') > 9) return false;
        return true;
    }
}
