#!/usr/bin/env bash
# Mutation testing of the confidential firmware, the confidential operators, the secure channel and
# the attestation verifier with dotnet-stryker (pinned in .config/dotnet-tools.json).
#
#   tools/mutation/run.sh                 # every target
#   tools/mutation/run.sh channel verifier
#
# Targets (one stryker config each, next to this script):
#   channel    src/AscendCC.Protocol/Channels/SecureChannel.cs
#   verifier   src/AscendCC.Runtime/Trusted/Verification/*.cs
#   operators  src/AscendCC.Device/Operators/Builtin/ConfidentialOperators.cs
#   batch      src/AscendCC.Device/Operators/Builtin/BatchedConfidentialOperators.cs and
#              src/AscendCC.Device/Confidential/ConfidentialContext.cs (its slot table and slot scrub)
#   firmware   src/AscendCC.Device/Confidential/{ConfidentialFirmware,ConfidentialContext,
#              AcceptedTaskCache,TaskListMeasurer}.cs (scored per file too)
#   kernels    not a security target and not in the default run: the eight-token GEMV pass, its
#              sixteen-sum reduction and the fp16 widening (character spans of LinearKernel.cs and
#              WeightConversion.cs), against the matrix kernels' tests (tests/DeviceKernels)
#   kvcache    not in the default run either: Kernels/KvCache.cs (the cache's sizes, whole-block check,
#              Q8_0 and Q4_0 quantizers and readers), against the KV cache and attention tests (tests/DeviceKvCache)
#
# Settings common to the configs: mutation level Standard; no mutants inside exception constructors
# ("ignore-methods": ["*Exception.ctor"]): an exception's message text is diagnostics, the defence is
# that it is thrown, and removing a throw or its condition is still mutated. Stryker compiles the
# mutants itself with Roslyn and applies NoWarn/WarningsAsErrors but not TreatWarningsAsErrors, so the
# repository's warnings-as-errors setting needs no change for a run (its own build is of the
# unmodified code, which builds without warnings).
#
# Only the security test classes run: tests/AscendCC.Runtime.Tests' Attacks, Confidential and Trusted
# folders and tests/AscendCC.Device.Tests' Security folder, compiled into two projects of their own
# under tools/mutation/tests (stryker's test-case filter cannot be used with NUnit: see
# RuntimeSecurity.csproj), each mutant against the tests that cover it (coverage-analysis perTest: channel, verifier) or
# against all of them (off: operators, firmware, which run on the device's own threads where per-test attribution
# misses tests; see docs/mutation-testing.md). Reports go to
# artifacts/mutation/<target>/ (gitignored): reports/mutation-report.html and .json.
# STRYKER_CONCURRENCY overrides the number of parallel test runners (default 1).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"

all=(channel verifier operators firmware batch)
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=("${all[@]}")

dotnet tool restore >/dev/null


concurrency="${STRYKER_CONCURRENCY:-1}"

# Stryker launches a fresh VsTest test host for every test session (one per mutant), and VsTest keeps
# the host's socket open after the session ends, so finished hosts never exit: left alone, a run of
# a few hundred mutants accumulates hundreds of idle hosts that keep polling. Sessions run
# $concurrency at a time, so every test host of this stryker run except the newest $concurrency has
# finished its session; this ends those (by process id, only the descendants of our own run).
reap_test_hosts() {
  local root_pid=$1 keep=${2:-$concurrency} pids
  pids=$(ps -eo pid=,ppid= | awk -v r="$root_pid" '
    { parent[$1] = $2 }
    END { for (p in parent) { q = p; while (q in parent && q != r && q > 1) q = parent[q]; if (q == r && p != r) print p } }')
  [ -n "$pids" ] || return 0
  # shellcheck disable=SC2086
  ps -o pid=,etimes=,args= -p $(echo $pids | tr ' ' ',') 2>/dev/null \
    | awk '/testhost\.dll/ { print $1, $2 }' | sort -k2 -n | tail -n +$((keep + 1)) \
    | awk '{ print $1 }' | xargs -r kill 2>/dev/null || true
}

out="$root/artifacts/mutation"
mkdir -p "$out"

for t in "${targets[@]}"; do
  cfg="$here/$t.json"
  [ -f "$cfg" ] || { echo "unknown target '$t' (expected one of: ${all[*]})" >&2; exit 2; }
  rm -rf "${out:?}/$t"
  echo "=== $t ==="
  start=$(date +%s)
  # From this folder, not the root: next to the .sln stryker would run in solution mode, which
  # takes no explicit test projects. The test-project paths in the configs are relative to here.
  (cd "$here" && exec dotnet stryker -f "$t.json" -O "$out/$t" -c "$concurrency" --skip-version-check -L) &
  stryker=$!
  while kill -0 "$stryker" 2>/dev/null; do
    reap_test_hosts "$stryker"
    sleep 5
  done
  wait "$stryker"
  reap_test_hosts "$stryker" 0
  end=$(date +%s)
  python3 "$here/score.py" "$t" "$out/$t/reports/mutation-report.json" $((end - start)) | tee "$out/$t/score.txt"
done

# The total covers every target with a result under artifacts/mutation, this run's or an earlier one's.
echo "=== scores ==="
cat "$out"/*/score.txt
python3 "$here/score.py" --total "$out"/*/score.txt

# Every surviving or uncovered mutant of every target, as markdown table rows (for docs/mutation-testing.md).
python3 "$here/score.py" --survivors "$out"/*/reports/mutation-report.json > "$out/survivors.md"
echo "survivors: $(grep -c '^|' "$out/survivors.md" || true) (listed in $out/survivors.md)"
