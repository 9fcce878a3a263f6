#!/usr/bin/env bash
# Runs every libFuzzer target of tests/fuzz for SECONDS each and prints one line per target:
# executions, coverage (cov: edges, ft: features) at the start and the end, corpus units added,
# crashes. Exit 1 when any target crashed (or leaked, timed out, ran out of memory); the
# reproducer is kept under build-fuzz/fuzz-crashes/<target>/ and named in the line.
#
#   tests/fuzz/run.sh 20                  # CI: short campaign
#   JOBS=2 tests/fuzz/run.sh 3600         # a long campaign, two targets at a time
#   TARGETS="merged_index layer_unpack" tests/fuzz/run.sh 600
#
# Builds the `fuzz` preset first (clang, build-fuzz/) unless NO_BUILD=1. The repository's seeds
# (corpus/<target>/) are read only; what a campaign finds is kept in build-fuzz/fuzz-corpus/, so
# the next run starts from there.
set -euo pipefail
cd "$(dirname "$0")/../.."
SECONDS_PER_TARGET=${1:?usage: tests/fuzz/run.sh SECONDS}
JOBS=${JOBS:-1}
BUILD=build-fuzz
FUZZ_DIR=tests/fuzz

if [ -z "${TARGETS:-}" ]; then
  TARGETS=$(cd "$FUZZ_DIR" && ls *_fuzz.cc | sed 's/_fuzz\.cc$//')
fi
# Only the fuzz targets and what they link: not the tools (gRPC's generated code among them).
if [ "${NO_BUILD:-0}" != 1 ]; then
  cmake --preset fuzz >/dev/null
  # shellcheck disable=SC2046
  cmake --build --preset fuzz -j2 --target $(printf '%s_fuzz ' $TARGETS) >/dev/null
fi

# Runs one target; writes its summary line to $BUILD/fuzz-logs/<target>.line.
run_target() {
  local name=$1
  local corpus=$BUILD/fuzz-corpus/$name crashes=$BUILD/fuzz-crashes/$name log=$BUILD/fuzz-logs/$name.log
  mkdir -p "$corpus" "$crashes" "$BUILD/fuzz-logs"
  local args=(-max_total_time="$SECONDS_PER_TARGET" -timeout=25 -rss_limit_mb=2048 -print_final_stats=1
              -artifact_prefix="$crashes/")
  [ -f "$FUZZ_DIR/dict/$name.dict" ] && args+=(-dict="$FUZZ_DIR/dict/$name.dict")
  local units_before rc=0 started
  units_before=$(find "$corpus" -type f | wc -l)
  started=$(date +%s)
  "$BUILD/tests/fuzz/${name}_fuzz" "${args[@]}" "$corpus" "$FUZZ_DIR/corpus/$name" >"$log" 2>&1 || rc=$?
  local ran=$(($(date +%s) - started))  # shorter than asked when it crashed
  local execs start end units_after crash
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  start=$(grep -m1 -E '^#[0-9]+.*INITED' "$log" | grep -oE 'cov: [0-9]+ ft: [0-9]+' || true)
  end=$(grep -E '^#[0-9]+' "$log" | grep -oE 'cov: [0-9]+ ft: [0-9]+' | tail -1 || true)
  units_after=$(find "$corpus" -type f | wc -l)
  crash=$(grep -oE "Test unit written to [^ ]+" "$log" | tail -1 | sed 's/Test unit written to //' || true)
  local line
  line=$(printf '%-18s %4ss  execs %-10s start %-22s end %-22s new units %-5s' "$name" "$ran" \
    "${execs:-?}" "${start:-?}" "${end:-?}" "$((units_after - units_before))")
  if [ "$rc" -ne 0 ]; then
    line+="  CRASH (exit $rc) ${crash:-no reproducer, see $log}"
  else
    line+="  crashes 0"
  fi
  echo "$line" >"$BUILD/fuzz-logs/$name.line"
}

# The targets' scratch directories (tests/fuzz/fuzz_scratch.h) outlive their processes, which
# libFuzzer ends with exit(): they go under one directory removed at the end.
FUZZ_TMP=$(mktemp -d /tmp/layerfs-fuzz-run.XXXXXX)
trap 'rm -rf "$FUZZ_TMP"' EXIT
export TMPDIR=$FUZZ_TMP

pids=()
for name in $TARGETS; do
  run_target "$name" &
  pids+=($!)
  while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n || true; done
done
wait
failed=0
for name in $TARGETS; do
  cat "$BUILD/fuzz-logs/$name.line"
  grep -q CRASH "$BUILD/fuzz-logs/$name.line" && failed=1
done
exit $failed
