// replayer-gen: synthetic seed-era (2.6.34 / 2.6.35) trace generator. See tools/gen/README.md.
return Replayer.Gen.GenMain.Run(args);
