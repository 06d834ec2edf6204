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
        FormatDetector.Register(TraceFormat.TraceDat, c => new TraceDatReader(new BinarySource(c.Stream, c.SourceName), new BinaryReaderOptions()));
        FormatDetector.Register(TraceFormat.PerfData, c => new PerfDataReader(c.Stream, c.SourceName, new BinaryReaderOptions()));
    }
}
