#!/usr/bin/env bash
# Runs the whole Replayer test suite, the way CI does: installs and starts what the tests need
# (PostgreSQL for the store conformance suite, Debian's trace-cmd and linux-perf for the differential
# tests of the binary readers, Debian's chromium to render the HTML report), runs every test project, and ends with one "N passed, N failed" line.
set -uo pipefail
cd "$(dirname "$0")/.."

need=()
command -v trace-cmd >/dev/null 2>&1 || need+=(trace-cmd)
command -v perf >/dev/null 2>&1 || need+=(linux-perf)
command -v zstd >/dev/null 2>&1 || need+=(zstd)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
if [ ${#need[@]} -gt 0 ]; then
  echo "tests/run.sh: installing ${need[*]} from Debian's packages" >&2
  if [ "$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi
  $SUDO apt-get update -qq >/dev/null && $SUDO apt-get install -y -qq "${need[@]}" >/dev/null \
    || echo "tests/run.sh: could not install ${need[*]}; the tests that need them will fail and say so" >&2
fi

# A throw-away PostgreSQL cluster for the store conformance suite, stopped when the run ends.
if [ -z "${REPLAYER_TEST_PG:-}" ]; then
  export REPLAYER_PG_DIR
  REPLAYER_PG_DIR=$(mktemp -d /tmp/replayer-pg.XXXXXX)
  pg=$(bash .ci/postgres.sh | tail -n 1)
  if [ -n "$pg" ]; then
    export REPLAYER_TEST_PG="$pg"
    trap 'bash .ci/postgres.sh --stop "$REPLAYER_PG_DIR" >/dev/null 2>&1; rm -rf "$REPLAYER_PG_DIR"' EXIT
  fi
fi

log=$(mktemp)
dotnet build Replayer.sln -c Release -nologo -v q 2>&1 | tail -n 3
dotnet test Replayer.sln -c Release --no-build -nologo 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
passed=$(grep -Eo 'Passed: +[0-9]+' "$log" | awk '{s+=$2} END {print s+0}')
failed=$(grep -Eo 'Failed: +[0-9]+' "$log" | awk '{s+=$2} END {print s+0}')
rm -f "$log"
if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then failed=1; fi
# Opt-in end-to-end run on a real kernel under qemu (several minutes): REPLAYER_VM_TEST=1 bash tests/run.sh
if [ "${REPLAYER_VM_TEST:-}" = 1 ]; then
  if bash tools/vm-capture/selftest.sh; then passed=$((passed + 1)); else failed=$((failed + 1)); status=1; fi
fi
echo "${passed} passed, ${failed} failed"
[ "$status" -eq 0 ] && [ "$failed" -eq 0 ]
