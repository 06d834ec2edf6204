using System.CommandLine;
using System.Text;
using Replayer.Core;
using Replayer.Formats;
using Replayer.Report;

namespace Replayer.Cli.Commands;

/// <summary><c>replayer report FILE|capture-&lt;id&gt; -o report.html</c>: one self-contained HTML file.</summary>
public static class ReportCommand
{
    public static Command Create()
    {
        var file = new Argument<string>("capture") { Description = "Trace file (any format replayer reads), or a stored capture (capture-<id> or its hex id)" };
        var output = new Option<string>("--output", "-o") { Description = "HTML file to write ('-' for stdout)", Required = true };
        var era = new Option<string?>("--era") { Description = "Force the kernel era: 2.6.34, 2.6.35, 6.1, 6.12, 6.13 (default: detected)" };
        var lenient = new Option<bool>("--lenient") { Description = "Count lines that are not understood instead of stopping at the first one" };
        var store = IngestCommand.StoreOption();
        var cmd = new Command("report", "Write one self-contained HTML report: verdicts, FILE_MAPPED timeline per memcg (counter, implied, ground truth), migration windows, findings with evidence, event counts")
            { file, output, era, lenient, store };
        cmd.SetAction(pr => CliRunner.Run(() => Run(pr.GetValue(file)!, pr.GetValue(output)!, pr.GetValue(era), pr.GetValue(store), !pr.GetValue(lenient), Console.Error)));
        return cmd;
    }

    /// <summary>Runs a replay; an era without an adapter is a usage error, as in <c>check</c>.</summary>
    public static T Guard<T>(Func<T> body)
    {
        try { return body(); }
        catch (InvalidOperationException e) when (e.Message.StartsWith("no era adapter", StringComparison.Ordinal))
        {
            throw new UsageException(e.Message);
        }
    }

    /// <summary>Replays and audits <paramref name="path"/> (a file or a stored capture) and collects what the report shows.</summary>
    public static ReportData Collect(string path, string? era, string? storeSpec = null, bool strict = true)
    {
        var forced = CheckCommand.ParseEra(era);
        if (StoredCapture.Names(path))
        {
            using var stored = StoredCapture.Open(storeSpec, path);
            using var reader = stored.OpenReader();
            return Guard(() => ReportBuilder.Collect(new ReportInput
            {
                Name = stored.StreamName, Reader = reader, TracePath = stored.TracePath, Context = stored.Context, Era = forced,
                GroundTruth = GroundTruthData.FromFiles(stored.GroundTruthFiles),
            }));
        }
        if (!File.Exists(path)) throw new UsageException($"{path}: no such file");
        using var r = TraceOpener.Open(path, new TraceOpenOptions { Strict = strict });
        return Guard(() => ReportBuilder.Collect(new ReportInput { Name = path, Reader = r, TracePath = path, Era = forced, GroundTruth = GroundTruthData.FromDirectory(path) }));
    }

    public static int Run(string path, string outPath, string? era, string? storeSpec, bool strict, TextWriter log)
    {
        var data = Collect(path, era, storeSpec, strict);
        if (outPath == "-")
        {
            using var stdout = new StreamWriter(Console.OpenStandardOutput(), new UTF8Encoding(false)) { NewLine = "\n" };
            HtmlReport.Write(data, stdout);
        }
        else
        {
            var tmp = outPath + ".tmp";
            using (var w = new StreamWriter(tmp, false, new UTF8Encoding(false)) { NewLine = "\n" }) HtmlReport.Write(data, w);
            File.Move(tmp, outPath, overwrite: true);
            log.WriteLine($"replayer: report of {data.Name} ({data.Audit.Events} events, {data.Audit.Findings.Length} finding(s)) written to {outPath} ({new FileInfo(outPath).Length} bytes)");
        }
        return ExitCodes.Ok;
    }
}
