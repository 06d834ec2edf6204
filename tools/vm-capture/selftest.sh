#!/usr/bin/env bash
# selftest.sh: the opt-in end-to-end test of tools/vm-capture (not part of `dotnet test`: it boots a VM,
# needs root-free qemu, Debian's apt and minutes of CPU).
#
#   tools/vm-capture/selftest.sh [OUTDIR] [-- VM-CAPTURE-OPTIONS...]
#   tools/vm-capture/selftest.sh --check-only OUTDIR [-- --tool TOOL]   steps 1 and 3 on an existing bundle
#
# VM-CAPTURE-OPTIONS may include --tool ftrace|trace-cmd|perf: the trace checked is then trace.txt,
# trace.dat or perf.data; for the binary ones the memcg-probe pids come from memcg_probes.txt (perf cannot
# record trace_marker) and the rmap events from `replayer convert --to ftrace`.
#
# 1. builds the replayer CLI (Release) unless REPLAYER_BIN names a replayer executable or dll;
# 2. runs tools/vm-capture/vm-capture -o OUTDIR (default: a new temporary folder) with the options given;
# 3. asserts: the workload reported "migrate-workload: ok" (every move_pages did what it should, the
#    failing migration failed for exactly the pipe-referenced pages); the kernel is the one booted;
#    `replayer check --json OUTDIR/trace.txt` exits 0 with no findings and no data loss; and for every
#    cgroup of the bundle, the FILE_MAPPED delta the checker derives for that cgroup's memcg (counter
#    events and page states) equals the ground truth memory.stat delta; cgroup A's delta is the
#    holder's pages (non-zero), so the comparison is not 0 == 0.
#    A cgroup's memcg is read from the trace: the file-rmap-add kprobe events of the memcg-probe marker process
#    after its "replayer-capture: memcg-probe cgroup=PATH pid=N" line (the marker's own binary, charged to
#    that cgroup).
# Prints PASS/FAIL lines; exit 0 when everything holds, 1 otherwise, 2 when it could not run.
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
OUT=""; CHECKONLY=0
if [ $# -gt 0 ] && [ "$1" = "--check-only" ]; then CHECKONLY=1; shift; [ $# -gt 0 ] || { echo "selftest: --check-only needs OUTDIR" >&2; exit 2; }; fi
if [ $# -gt 0 ] && [ "$1" != "--" ]; then OUT=$1; shift; fi
[ $# -gt 0 ] && [ "$1" = "--" ] && shift
[ -n "$OUT" ] || OUT=$(mktemp -d "${TMPDIR:-/tmp}/vm-capture-selftest.XXXXXX")
command -v python3 >/dev/null || { echo "selftest: python3 is needed to read the JSON" >&2; exit 2; }

if [ -n "${REPLAYER_BIN:-}" ]; then RB=$REPLAYER_BIN
else
  echo "selftest: building the replayer CLI" >&2
  dotnet build "$REPO/src/Replayer.Cli" -c Release -v q -nologo >&2 || { echo "selftest: build failed" >&2; exit 2; }
  RB=$(ls "$REPO"/src/Replayer.Cli/bin/Release/net*/replayer.dll | head -1)
fi
replayer() { case "$RB" in *.dll) dotnet "$RB" "$@" ;; *) "$RB" "$@" ;; esac; }

TOOL=ftrace; prev=""
for a in "$@"; do [ "$prev" = --tool ] && TOOL=$a; prev=$a; done
case "$TOOL" in ftrace) TRACE=trace.txt ;; trace-cmd) TRACE=trace.dat ;; perf) TRACE=perf.data ;; *) echo "selftest: bad --tool $TOOL" >&2; exit 2 ;; esac
start=$(date +%s)
if [ $CHECKONLY = 1 ]; then vrc=0; else "$HERE/vm-capture" -o "$OUT" "$@"; vrc=$?; fi
echo "selftest: vm-capture exit $vrc after $(( $(date +%s) - start ))s, bundle in $OUT"
[ $vrc -eq 0 ] || { echo "FAIL vm-capture produced no bundle"; exit 1; }

replayer check --json "$OUT/$TRACE" > "$OUT/check.json"
crc=$?
replayer check "$OUT/$TRACE" > "$OUT/check.txt"
if [ "$TRACE" = trace.txt ]; then TEXT=$OUT/trace.txt
else TEXT=$OUT/$TRACE.txt; replayer convert "$OUT/$TRACE" --to ftrace -o "$TEXT" || echo "selftest: replayer convert failed"; fi
cat "$OUT/check.txt"
echo "selftest: replayer check exit $crc"

python3 - "$OUT" "$crc" "$TEXT" <<'EOF'
import json, re, sys, os
out, crc, text = sys.argv[1], int(sys.argv[2]), sys.argv[3]
ok = True
def verdict(cond, what):
    global ok
    print(("PASS " if cond else "FAIL ") + what)
    ok = ok and cond
wl = open(os.path.join(out, "workload.stdout")).read()
vm = json.load(open(os.path.join(out, "vm.json")))
verdict("migrate-workload: ok" in wl, "workload: every move_pages did what it should (incl. the failing one)")
verdict(crc == 0, f"replayer check exit code 0 (got {crc})")
try:
    chk = json.load(open(os.path.join(out, "check.json")))
except ValueError:
    print("FAIL replayer check --json output is not JSON"); sys.exit(1)
verdict(vm["kernel_release"] in chk.get("kernel_release", ""),
        f"kernel in the trace ({chk.get('kernel_release')}) is the one booted ({vm['kernel_release']})")
verdict(len(chk["findings"]) == 0, f"no findings ({len(chk['findings'])})")
verdict(chk["data_loss_events"] == 0, f"no data loss ({chk['data_loss_events']})")
for inv in ("file-mapped-conservation", "migration-flag-lifetime", "commit-before-remap"):
    v = next((v for v in chk["invariants"] if v["id"] == inv), None)
    verdict(v is not None and v["verdict"] == "pass" and v["checked"] > 0,
            f"{inv}: {v['verdict'] if v else 'absent'}, {v['checked'] if v else 0} checked")
# memcg of each cgroup from its memcg-probe marker process
probe = re.compile(r"replayer-capture: memcg-probe cgroup=(\S+) pid=(\d+)")
# file-rmap-add kprobes: rt:file_rmap_add (page_add_file_rmap, 6.1), rt:folio_add_file_rmap_ptes|pmd (6.12)
rmap = re.compile(r"^\s*\S+-(\d+)\s+\[\d+\].*\b(?:file_rmap_add|folio_add_file_rmap_\w+):.*\bmemcg=(0x[0-9a-f]+)")
after_marker, votes = {}, {}
# memcg_probes.txt ("PATH PID" per marker) serves traces without the trace_marker line (perf): the marker's
# events before its exec are its shell's (busybox, root memcg), so there the memcg of the marker pid's last
# rmap-add event counts (the exec'd copy is the last thing it maps)
from_file, last = {}, {}
probes = os.path.join(out, "memcg_probes.txt")
if os.path.exists(probes):
    for line in open(probes):
        cg, pid = line.split()
        from_file[pid] = os.path.basename(cg)
with open(text) as f:
    for line in f:
        m = probe.search(line)
        if m:
            after_marker[m.group(2)] = os.path.basename(m.group(1))
            continue
        m = rmap.match(line)
        if m and m.group(2) != "0x0":
            if m.group(1) in after_marker:
                c = votes.setdefault(after_marker[m.group(1)], {})
                c[m.group(2)] = c.get(m.group(2), 0) + 1
            elif m.group(1) in from_file:
                last[m.group(1)] = m.group(2)
for pid, cg in from_file.items():
    if cg not in votes and pid in last:
        print(f"selftest: {cg}: no memcg-probe marker line in the trace; memcg of pid {pid}'s last rmap-add event")
        votes[cg] = {last[pid]: 1}
memcgs = {m["memcg"]: m for m in chk["memcgs"]}
truth = {t["cgroup"]: t for t in chk["ground_truth"]}
verdict(len(truth) >= 2, f"ground truth for the workload's cgroups ({sorted(truth)})")
for cg, t in sorted(truth.items()):
    if cg not in votes:
        verdict(False, f"{cg}: no memcg-probe rmap events in the trace"); continue
    memcg = max(votes[cg].items(), key=lambda kv: kv[1])[0]
    m = memcgs.get(memcg)
    counter = m["file_mapped_delta_counter_pages"] if m else 0
    states = m["file_mapped_delta_page_states"] if m else 0
    verdict(counter == t["file_mapped_delta_pages"] and states == t["file_mapped_delta_pages"],
            f"{cg} (memcg {memcg}): FILE_MAPPED delta counter {counter:+d}, page states {states:+d}, ground truth {t['file_mapped_delta_pages']:+d}")
held = re.search(r"holds (\d+) file pages mapped", wl)
a = [cg for cg in truth if cg.endswith("_A")]
verdict(bool(held) and bool(a) and truth[a[0]]["file_mapped_delta_pages"] == int(held.group(1)) > 0,
        f"cgroup A's ground truth delta is the holder's {held.group(1) if held else '?'} pages")
print("selftest: " + ("PASS" if ok else "FAIL"))
sys.exit(0 if ok else 1)
EOF
