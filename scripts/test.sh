#!/bin/sh
# test.sh — `make test`: the -Werror release build and the ASan+UBSan debug
# build of the whole suite under CTest, then the fuzzers for a short time.
# Counts come from CTest's JUnit report (ctest --output-junit), not from its
# console text: a test that exits 77 (its reference could not run) is skipped,
# and is listed by name with its reason; the slowest tests are listed too.
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
  junit="$PWD/build-logs/$name-junit.xml"
  rm -f "$junit"
  (cd "$dir" && ctest --output-on-failure -j 2 --timeout 1200 --output-junit "$junit") >"build-logs/$name-ctest.log" 2>&1
  rc=$?
  grep -vE "^ *Start +[0-9]+:" "build-logs/$name-ctest.log"
  if [ ! -f "$junit" ]; then
    echo "$name: no JUnit report from ctest"; status=1; total_fail=$((total_fail + 1)); return
  fi
  # one line per test: status seconds name [reason]
  awk '
    /<testcase / { name = $0; sub(/.* name="/, "", name); sub(/".*/, "", name)
                   t = $0; sub(/.* time="/, "", t); sub(/".*/, "", t)
                   st = $0; sub(/.* status="/, "", st); sub(/".*/, "", st); why = ""; skipmsg = ""; next }
    /<skipped message=/ { skipmsg = $0; sub(/.*message="/, "", skipmsg); sub(/".*/, "", skipmsg); next }
    /SKIPPED: / && why == "" { why = $0; sub(/.*SKIPPED: /, "", why); next }
    /<\/testcase>/ { r = st == "run" ? "pass" : st == "notrun" && skipmsg ~ /SKIP_RETURN_CODE/ ? "skip" : "fail"
                     if (r == "fail" && st == "notrun") why = skipmsg
                     printf "%s %s %s %s\n", r, t, name, why }' "$junit" >"build-logs/$name-results.txt"
  n=$(grep -c "^pass " "build-logs/$name-results.txt")
  f=$(grep -c "^fail " "build-logs/$name-results.txt")
  s=$(grep -c "^skip " "build-logs/$name-results.txt")
  total_pass=$((total_pass + n)); total_skip=$((total_skip + s)); total_fail=$((total_fail + f))
  echo "== $name: $n passed, $f failed, $s skipped"
  grep "^skip " "build-logs/$name-results.txt" | while read -r _ _ t why; do echo "   skipped: $t: ${why:-no reason given}"; done
  grep "^fail " "build-logs/$name-results.txt" | while read -r _ _ t why; do echo "   FAILED: $t ${why}"; done
  echo "   slowest:"; sort -k2,2 -g -r "build-logs/$name-results.txt" | head -8 | awk '{ printf "     %7.1f s  %s\n", $2, $3 }'
  [ $rc -eq 0 ] || status=1
}

run_suite release build -DCMAKE_BUILD_TYPE=Release -DPHIQ_WERROR=ON -DPHIQ_TESTS=ON
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 PHIQ_SANITIZED=1 \
  run_suite sanitize build-asan -DCMAKE_BUILD_TYPE=Debug -DPHIQ_WERROR=ON -DPHIQ_SANITIZE=ON -DPHIQ_TESTS=ON

echo "== fuzz"
scripts/fuzz.sh >build-logs/fuzz.log 2>&1
rc=$?
cat build-logs/fuzz.log
total_pass=$((total_pass + $(grep -c "^fuzz: fuzz_[a-z0-9_]* ran clean$" build-logs/fuzz.log)))
if [ $rc -eq 77 ]; then
  total_skip=$((total_skip + 1)); echo "   skipped: fuzz: $(grep -m1 SKIPPED build-logs/fuzz.log)"
elif [ $rc -ne 0 ]; then
  total_fail=$((total_fail + 1)); status=1
fi

echo "make test: $total_pass passed, $total_fail failed, $total_skip skipped"
exit $status
