using System.Diagnostics.CodeAnalysis;

namespace Replayer.Core;

/// <summary>
/// A fatal problem with an input file: says where (file, line or byte offset), what was expected
/// and what was found. The CLI prints <see cref="Exception.Message"/> on one line and exits 2.
/// </summary>
public sealed class TraceInputException : Exception
{
    public string SourceName { get; }
    /// <summary>1-based line, or 0 when the position is a byte offset.</summary>
    public long Line { get; }
    /// <summary>Byte offset, or -1 when unknown.</summary>
    public long Offset { get; }
    public string Expected { get; }
    public string Found { get; }

    public TraceInputException(string sourceName, long line, long offset, string expected, string found, Exception? inner = null)
        : base(Compose(sourceName, line, offset, expected, found), inner)
    {
        SourceName = sourceName;
        Line = line;
        Offset = offset;
        Expected = expected;
        Found = found;
    }

    static string Compose(string source, long line, long offset, string expected, string found)
    {
        string where = line > 0 ? $"{source}:{line}" : offset >= 0 ? $"{source}: byte offset {offset}" : source;
        return $"{where}: expected {expected}, found {Excerpt(found)}";
    }

    /// <summary>Single-line, length-capped excerpt of offending input.</summary>
    public static string Excerpt(string s, int max = 80)
    {
        var t = s.Replace("\r", "\\r").Replace("\n", "\\n").Replace("\t", "\\t");
        foreach (var c in t)
            if (char.IsControl(c)) { t = new string(t.Select(ch => char.IsControl(ch) ? '?' : ch).ToArray()); break; }
        return t.Length > max ? "'" + t[..max] + "…'" : "'" + t + "'";
    }

    [DoesNotReturn]
    public static void ThrowAtLine(string source, long line, string expected, string found) =>
        throw new TraceInputException(source, line, -1, expected, found);

    [DoesNotReturn]
    public static void ThrowAtOffset(string source, long offset, string expected, string found) =>
        throw new TraceInputException(source, 0, offset, expected, found);
}
