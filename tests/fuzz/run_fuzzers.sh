#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (-DPATCHGATE_FUZZ=ON) in BUILD_DIR,
# reusing it when present, and fuzzes each TARGET for $PATCHGATE_FUZZ_SECONDS
# (default 20) seconds, starting from tests/fuzz/corpus/TARGET and what
# earlier runs found (BUILD_DIR/corpus/TARGET). Any crash, leak, timeout
# (> 10 s for one input) or out-of-memory (> 2 GiB) fails the run; the input
# is kept in BUILD_DIR/artifacts/ (add it to tests/fuzz/corpus/TARGET once
# fixed, so that the replay tests hold the fix).
#
# Usage: run_fuzzers.sh SOURCE_DIR BUILD_DIR [TARGET...]   (no TARGET: every
#        tests/fuzz/<target>_fuzzer.cc)
# Environment: PATCHGATE_FUZZ_SECONDS, PATCHGATE_FUZZ_CXX (clang++-14),
#              PATCHGATE_FUZZ_JOBS (build parallelism, 2),
#              PATCHGATE_FUZZ_MAX_LEN (bytes per input, 65536),
#              PATCHGATE_FUZZ_NICE (the build's nice level, 10),
#              PATCHGATE_FUZZ_BUILD_ONLY=1 (build, don't fuzz: hack/test warms
#              the tree in the background this way; a lock keeps one build at
#              a time, so the ctest run then just waits for it).
set -euo pipefail
(($# >= 2)) || { echo "usage: $0 SOURCE_DIR BUILD_DIR [TARGET...]" >&2; exit 2; }
SRC=$1 BUILD=$2
shift 2
if (($# == 0)); then
  for f in "$SRC"/tests/fuzz/*_fuzzer.cc; do f=${f##*/}; set -- "$@" "${f%_fuzzer.cc}"; done
fi
SECS=${PATCHGATE_FUZZ_SECONDS:-20}
MAX_LEN=${PATCHGATE_FUZZ_MAX_LEN:-65536}
CXX=${PATCHGATE_FUZZ_CXX:-$(command -v clang++-14 || command -v clang++ || true)}
[[ -n $CXX && -x $CXX ]] || { echo "run_fuzzers: no clang++; run hack/deps.sh (clang-14, libclang-rt-14-dev)" >&2; exit 1; }

start=$(date +%s)
mkdir -p "$BUILD"
exec 9>"$BUILD/.build-lock"
flock 9
# Configure until it has succeeded once (a failed configure may leave a cache).
if [[ ! -f $BUILD/build.ninja && ! -f $BUILD/Makefile ]]; then
  gen=(); command -v ninja >/dev/null && gen=(-G Ninja)
  echo "run_fuzzers: configuring $BUILD with $CXX"
  cmake -S "$SRC" -B "$BUILD" "${gen[@]}" -DCMAKE_CXX_COMPILER="$CXX" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DPATCHGATE_FUZZ=ON >"$BUILD.configure.log" 2>&1 ||
    { cat "$BUILD.configure.log" >&2; echo "run_fuzzers: configure failed" >&2; exit 1; }
fi
targets=()
for t in "$@"; do targets+=("${t}_fuzzer"); done
echo "run_fuzzers: building ${targets[*]}"
nice -n "${PATCHGATE_FUZZ_NICE:-10}" cmake --build "$BUILD" -j"${PATCHGATE_FUZZ_JOBS:-2}" --target "${targets[@]}" >"$BUILD/build.log" 2>&1 ||
  { tail -50 "$BUILD/build.log" >&2; echo "run_fuzzers: build failed (log: $BUILD/build.log)" >&2; exit 1; }
echo "run_fuzzers: built in $(($(date +%s) - start)) s"
[[ ${PATCHGATE_FUZZ_BUILD_ONLY:-} == 1 ]] && exit 0

mkdir -p "$BUILD/artifacts" "$BUILD/logs"
stamp=$BUILD/logs/.started
touch "$stamp"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
failed=()
for t in "$@"; do
  corpus=$BUILD/corpus/$t
  mkdir -p "$corpus"
  log=$BUILD/logs/$t.log
  # The first directory receives what the fuzzer finds; the seeds stay as they are.
  if "$BUILD/tests/fuzz/${t}_fuzzer" -max_total_time="$SECS" -timeout=10 -rss_limit_mb=2048 \
      -max_len="$MAX_LEN" -print_final_stats=1 -artifact_prefix="$BUILD/artifacts/$t-" \
      "$corpus" "$SRC/tests/fuzz/corpus/$t" >"$log" 2>&1; then
    echo "run_fuzzers: $t: ok ($(grep -m1 -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$') runs, corpus $(ls "$corpus" | wc -l) files)"
  else
    failed+=("$t")
    echo "run_fuzzers: $t: FAILED; the report:" >&2
    grep -A40 -m1 -E '^==[0-9]+==ERROR|runtime error|^ALARM|deadly signal|uncaught exception|out-of-memory' "$log" >&2 || tail -40 "$log" >&2
    find "$BUILD/artifacts" -name "$t-*" -newer "$stamp" | sed 's/^/run_fuzzers: input kept: /' >&2
  fi
done
echo "run_fuzzers: $# targets in $(($(date +%s) - start)) s"
if ((${#failed[@]})); then
  echo "run_fuzzers: FAILED: ${failed[*]} (logs in $BUILD/logs)" >&2
  exit 1
fi
