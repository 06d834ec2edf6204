// Replayer benchmarks: run with `dotnet run -c Release --project tools/bench -- <benchmark> [args]`.
// Each benchmark prints one result line per measurement; see tools/bench/README.md.
return Replayer.Bench.BenchMain.Run(args);
