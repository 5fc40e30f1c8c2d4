#!/bin/sh
# test.sh — `make test`: the -Werror release build and the ASan+UBSan debug
# build of the whole suite under CTest, then the fuzzers for a short time.
# Ends with one line "make test: N passed, N failed, N skipped".
set -u
cd "$(dirname "$0")/.."
JOBS=${JOBS:-$(nproc)}
scripts/deps.sh test || exit 1
mkdir -p build-logs
total_pass=0 total_fail=0 total_skip=0 status=0

run_suite() { # name builddir cmake-args...
  name=$1 dir=$2; shift 2
  echo "== $name: configure and build ($dir)"
  if ! cmake -S . -B "$dir" "$@" >"build-logs/$name-configure.log" 2>&1; then
    cat "build-logs/$name-configure.log"; status=1; total_fail=$((total_fail + 1)); return
  fi
  if ! cmake --build "$dir" -j "$JOBS" >"build-logs/$name-build.log" 2>&1; then
    grep -E "error|warning" "build-logs/$name-build.log" | head -50; echo "$name: build FAILED"
    status=1; total_fail=$((total_fail + 1)); return
  fi
  echo "== $name: ctest"
  (cd "$dir" && ctest --output-on-failure -j 2 --timeout 1200) >"build-logs/$name-ctest.log" 2>&1
  rc=$?
  cat "build-logs/$name-ctest.log" | grep -vE "^ *Start +[0-9]+:" 
  n=$(grep -cE "Test +#[0-9]+: .* Passed" "build-logs/$name-ctest.log")
  s=$(grep -cE "Test +#[0-9]+: .*\*\*\*Skipped" "build-logs/$name-ctest.log")
  f=$(grep -cE "Test +#[0-9]+: .*(\*\*\*Failed|\*\*\*Exception|\*\*\*Timeout|Not Run)" "build-logs/$name-ctest.log")
  total_pass=$((total_pass + n)); total_skip=$((total_skip + s)); total_fail=$((total_fail + f))
  [ $rc -eq 0 ] || status=1
}

run_suite release build -DCMAKE_BUILD_TYPE=Release -DPHIQ_WERROR=ON
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 PHIQ_SANITIZED=1 \
  run_suite sanitize build-asan -DCMAKE_BUILD_TYPE=Debug -DPHIQ_WERROR=ON -DPHIQ_SANITIZE=ON

echo "== fuzz"
scripts/fuzz.sh >build-logs/fuzz.log 2>&1
rc=$?
cat build-logs/fuzz.log
total_pass=$((total_pass + $(grep -c "^fuzz: fuzz_[a-z0-9_]* ran clean$" build-logs/fuzz.log)))
[ $rc -eq 0 ] || { total_fail=$((total_fail + 1)); status=1; }

echo "make test: $total_pass passed, $total_fail failed, $total_skip skipped"
exit $status
