#!/usr/bin/env bash
# The sanitizer tier (ctest -L sanitize): builds patchgate a second time with
# a sanitizer in a build folder of its own, then runs a test tier of that
# build with every report sent to a file. Any report fails the run, also one
# from a process that a test started in the background (the operator in an
# integration test), whose exit code no test reads.
#
#   run.sh build address|thread SRC BUILD   configure + build BUILD/sanitize-KIND
#   run.sh test  address|thread BUILD CTEST-ARGS...  run ctest there; fail on any report
#
# BUILD is the plain build folder. The build is reused when up to date and
# takes a lock, so hack/test can warm it in the background while the plain
# tiers run and the ctest fixture then just waits for it.
# address = ASan + UBSan (LeakSanitizer on); thread = TSan. Suppressions, if
# any, live beside this script, each with the reason it is not our bug.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/../../hack/lib/common.sh"
hack_fail_loudly sanitize
die() { echo "sanitize: $*" >&2; exit 1; }

cmd=${1:-}; kind=${2:-}
[[ $kind == address || $kind == thread ]] || die "usage: run.sh build|test address|thread ..."

case $cmd in
  build)
    src=$3 dir=$4/sanitize-$kind
    mkdir -p "$dir"
    exec 9>"$dir/.build-lock"
    flock 9
    # Configure once; ninja then rebuilds only what changed.
    if [[ ! -f $dir/build.ninja ]]; then
      cmake -S "$src" -B "$dir" -G Ninja -DPATCHGATE_WERROR=ON -DPATCHGATE_SANITIZE="$kind" \
        -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    fi
    # address: everything (unit and integration tiers); thread: the
    # executables of the runtime and gRPC tests.
    targets=()
    [[ $kind == thread ]] && targets=(--target unit_tests --target grpc_unit_tests --target setup_unit_tests)
    start=$SECONDS
    nice -n "${PATCHGATE_SANITIZE_NICE:-0}" cmake --build "$dir" -j "$(nproc)" "${targets[@]}" \
      >"$dir/build.log" 2>&1 || { tail -n 60 "$dir/build.log" >&2; die "the $kind build in $dir failed"; }
    echo "sanitize: $kind build ready in $dir ($((SECONDS - start)) s)"
    ;;
  test)
    dir=$3/sanitize-$kind; shift 3
    [[ -f $dir/build.ninja ]] || die "no $kind build in $dir: run the sanitize.$kind.build test first"
    reports=$dir/sanitizer-reports
    rm -rf "$reports"; mkdir -p "$reports"
    common="halt_on_error=1:log_path=$reports/report:print_stacktrace=1"
    export UBSAN_OPTIONS="$common:suppressions=$HERE/ubsan.supp"
    export ASAN_OPTIONS="$common:detect_leaks=1:fast_unwind_on_malloc=0:strict_init_order=1:check_initialization_order=1:detect_stack_use_after_return=1"
    export LSAN_OPTIONS="suppressions=$HERE/lsan.supp:print_suppressions=0"
    export TSAN_OPTIONS="$common:second_deadlock_stack=1:suppressions=$HERE/tsan.supp"
    start=$SECONDS
    rc=0
    (cd "$dir" && ctest --output-on-failure --no-tests=error --timeout 1800 "$@") || rc=$?
    found=$(find "$reports" -type f | sort)
    if [[ -n $found ]]; then
      for f in $found; do
        echo "===== $kind sanitizer report: $f"
        head -c 20000 "$f"
      done
      die "$(wc -l <<<"$found") $kind sanitizer report(s) (see above)"
    fi
    ((rc == 0)) || die "ctest $* failed in the $kind build (exit $rc)"
    echo "sanitize: $kind $* passed with no report ($((SECONDS - start)) s)"
    ;;
  *) die "usage: run.sh build|test address|thread ..." ;;
esac
