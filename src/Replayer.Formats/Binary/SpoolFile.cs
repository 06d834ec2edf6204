using Replayer.Core;

namespace Replayer.Formats.Binary;

/// <summary>
/// The binary readers need random access; a compressed or piped input is copied once into a temp file
/// that is deleted when the returned stream (owned by the reader) is disposed. Its size is bounded by the
/// free disk of the temp folder only (not memory); a spool that cannot be written is a one-line
/// <see cref="TraceInputException"/>.
/// </summary>
public static class SpoolFile
{
    /// <summary>Copies <paramref name="prefix"/> then the rest of <paramref name="rest"/> (disposed) into a new temp file
    /// in <paramref name="directory"/> (default: the system temp folder, <c>$TMPDIR</c>); returns it at position 0.</summary>
    public static FileStream Create(byte[] prefix, Stream rest, string source, string? directory = null)
    {
        directory ??= Path.GetTempPath();
        var path = Path.Combine(directory, "replayer-spool-" + Guid.NewGuid().ToString("N")[..12] + ".tmp");
        FileStream? fs = null;
        long written = 0;
        try
        {
            fs = new FileStream(path, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None, 1 << 16, FileOptions.DeleteOnClose);
            fs.Write(prefix);
            written = prefix.Length;
            var buf = new byte[1 << 16];
            int n;
            while ((n = rest.Read(buf)) > 0) { fs.Write(buf, 0, n); written += n; }
            fs.Flush();
            fs.Position = 0;
            return fs;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            fs?.Dispose();
            throw new TraceInputException(source, 0, written,
                $"room to copy the decompressed input to a temp file in {directory} (binary formats need random access)",
                $"{e.GetType().Name}: {e.Message.ReplaceLineEndings(" ")} after {written} bytes");
        }
        catch
        {
            fs?.Dispose();
            throw;
        }
        finally
        {
            rest.Dispose();
        }
    }
}
