using System.Runtime.CompilerServices;
using Replayer.Core;

namespace Replayer.Formats.Binary;

/// <summary>Registers the binary readers with <see cref="FormatDetector"/> when the assembly loads.</summary>
static class BinaryFormats
{
#pragma warning disable CA2255 // a module initializer is the registration point that keeps FormatDetector free of binary-reader knowledge
    [ModuleInitializer]
#pragma warning restore CA2255
    internal static void Register()
    {
        FormatDetector.Register(TraceFormat.TraceDat, c => new TraceDatReader(new BinarySource(c.Stream, c.SourceName), Options(c)));
        FormatDetector.Register(TraceFormat.PerfData, c => new PerfDataReader(c.Stream, c.SourceName, Options(c)));
    }

    /// <summary>Reader options from the capture's metadata: kprobe fetch arguments of kernel variables
    /// (<c>vm=@vmemmap_base</c>) say which events carry those variables' values.</summary>
    static BinaryReaderOptions Options(BinaryOpenContext c)
    {
        var o = new BinaryReaderOptions();
        foreach (var k in c.Capture.Kprobes)
            foreach (var a in k.Args)
                if (a.Fetch.Length > 1 && a.Fetch[0] == '@' && a.Fetch.Skip(1).All(ch => char.IsAsciiLetterOrDigit(ch) || ch == '_'))
                    o.SymbolSources.Add((k.FullName, a.Name, a.Fetch[1..]));
        return o;
    }
}
