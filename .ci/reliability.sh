#!/usr/bin/env bash
# CI, after the main tests: the whole test suite (library, tool, reliability)
# under AddressSanitizer and UndefinedBehaviorSanitizer, then every libFuzzer
# target for a short run on its seed corpus. One fresh build directory under
# $BUILD_ROOT (default: a temporary directory); needs clang and
# libclang-rt-14-dev.
#
#   .ci/reliability.sh                 # CI: about 20 s of fuzzing per target
#   SANITIZE_TESTS=reliability .ci/reliability.sh   # only tests/reliability
#                                      # under the sanitizers: a much shorter build
#   FUZZ_SECONDS=600 TFIMM_SOAK=1 .ci/reliability.sh   # a longer soak
set -euo pipefail
cd "$(dirname "$0")/.."
source_dir=$PWD

jobs=${JOBS:-2}
fuzz_seconds=${FUZZ_SECONDS:-20}
build_root=${BUILD_ROOT:-$(mktemp -d "${TMPDIR:-/tmp}/tfimm-reliability-XXXXXX")}
# Tests run the programs as another user (uid 65534) too: let it reach them.
chmod 755 "$build_root"
figures="$build_root/figures.txt"
mkdir -p "$build_root"
: >"$figures"
started=$SECONDS

step() { echo "== $* ($((SECONDS - started)) s)"; }

# One clang build serves both: the whole suite under ASan + UBSan, and
# the libFuzzer targets (whose coverage hooks the library then carries too).
step "build with clang, address,undefined sanitizers and libFuzzer"
build="$build_root/build"
CC=clang CXX=clang++ cmake -S "$source_dir" -B "$build" -DCMAKE_BUILD_TYPE=Debug \
  -DCMAKE_CXX_FLAGS_DEBUG="-O1 -g1" -DTFIMM_SANITIZE=address,undefined \
  -DTFIMM_BUILD_FUZZ=ON -DTFIMM_BUILD_BENCH=OFF >/dev/null
if [ "${SANITIZE_TESTS:-all}" = reliability ]; then
  cmake --build "$build" -j"$jobs" --target tfimm_reliability reliability_worker tfimm-cache \
    fuzz_names fuzz_import fuzz_open
  tests=(-R '^reliability: ')
else
  cmake --build "$build" -j"$jobs"
  # The install test links an uninstrumented program against the
  # instrumented library, which cannot work in a sanitizer build.
  tests=(-E '^install: ')
fi

# -- 1. The test suite ----------------------------------------------------------
step "tests under address,undefined sanitizers (${tests[*]})"
# A sanitizer report fails the process; a worker's report fails the test
# that started it (the workers inherit these options).
export ASAN_OPTIONS=detect_leaks=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
TFIMM_RELIABILITY_REPORT="$figures" \
  ctest --test-dir "$build" "${tests[@]}" --output-on-failure -j"$jobs"

# -- 2. libFuzzer targets -----------------------------------------------------
for target in fuzz_names fuzz_import fuzz_open; do
  step "$target for $fuzz_seconds s"
  # New inputs go to a scratch corpus; the committed seeds are only read.
  scratch="$build_root/corpus-$target"
  mkdir -p "$scratch"
  (cd "$build_root" &&
    "$build/tests/fuzz/$target" "$scratch" "$source_dir/tests/fuzz/corpus/$target" \
      -max_total_time="$fuzz_seconds" -max_len=16384 -timeout=20 -rss_limit_mb=2048 \
      -print_final_stats=1 2>"$build_root/$target.log") || {
    tail -n 60 "$build_root/$target.log"
    echo "$target failed: crash input and log in $build_root" >&2
    exit 1
  }
  runs=$(grep -m1 -o 'stat::number_of_executed_units: [0-9]*' "$build_root/$target.log" |
    grep -o '[0-9]*$' || echo "?")
  echo "$target: $runs runs in $fuzz_seconds s, no crash" | tee -a "$figures"
done

step "done"
echo "-- figures measured by the reliability suite --"
cat "$figures"
echo "reliability.sh took $((SECONDS - started)) s"
