#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# run-fuzz.sh EXE CORPUS MODE: one fuzz target in the test suite, as TAP.
#   1  the corpus is there (a target with no seeds fuzzes nothing)
#   2  every corpus file runs without a crash (seeds and regression inputs)
#   3  a short fuzzing run: $FUZZ_RUNS runs (default 2000) or $FUZZ_SECONDS
#      (default 10), whichever ends first, without a crash, leak, timeout
#      or out-of-memory
# MODE is "libfuzzer" (EXE is a libFuzzer binary: new inputs go to a
# scratch directory, never into CORPUS) or "plain" (fuzz-main.c: replays,
# then mutates without coverage).  Inputs that crash are kept in
# $CAIRN_TEST_TMPDIR/fuzz-artifacts/ and named in the output.
set -u
exe=$(realpath "$1") corpus=$(realpath "$2") mode=$3
runs=${FUZZ_RUNS:-2000} secs=${FUZZ_SECONDS:-10}
name=$(basename "$exe")
n=0 failed=0

ok() { # status description
        n=$((n + 1))
        if [ "$1" -eq 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; failed=$((failed + 1)); fi
}
# show LOG: the end of a failed run's log, as TAP comments
show() { tail -n 40 "$1" | sed 's/^/#   /'; }

tmp=$(mktemp -d "${CAIRN_TEST_TMPDIR:-/tmp}/$name.XXXXXX") && [ -d "$tmp" ] || {
        echo "Bail out! cannot create a temporary directory under ${CAIRN_TEST_TMPDIR:-/tmp}"
        exit 1
}
trap 'rm -rf "$tmp"' EXIT
# The targets' own scratch repositories and files go here too.
export TMPDIR=$tmp
mkdir "$tmp/new" "$tmp/artifacts"

# Artifacts outlive the run (the scratch directory does not).
keep_artifacts() {
        local a found=1
        for a in "$tmp"/artifacts/crash-* "$tmp"/artifacts/leak-* "$tmp"/artifacts/timeout-* "$tmp"/artifacts/oom-* \
                 "$tmp"/artifacts/slow-unit-*; do
                [ -e "$a" ] || continue
                found=0
                mkdir -p "${CAIRN_TEST_TMPDIR:-/tmp}/fuzz-artifacts"
                cp "$a" "${CAIRN_TEST_TMPDIR:-/tmp}/fuzz-artifacts/$name-$(basename "$a")"
                echo "#   input kept: ${CAIRN_TEST_TMPDIR:-/tmp}/fuzz-artifacts/$name-$(basename "$a")"
        done
        return $found
}

files=$(find "$corpus" -type f 2>/dev/null | wc -l)
[ "$files" -gt 0 ]; ok $? "$name: corpus $corpus has $files files"

if [ "$mode" = libfuzzer ]; then
        # Files (not directories) as arguments: libFuzzer runs each once.
        (cd "$tmp/artifacts" && find "$corpus" -type f -print0 | xargs -0 "$exe" -runs=1 -timeout=30) >"$tmp/replay.log" 2>&1
        rc=$?
        [ "$rc" -eq 0 ]; ok $? "$name: $files corpus files replay without a crash"
        [ "$rc" -eq 0 ] || { show "$tmp/replay.log"; keep_artifacts; }

        (cd "$tmp/artifacts" && "$exe" -runs="$runs" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
                -print_final_stats=1 -artifact_prefix="$tmp/artifacts/" "$tmp/new" "$corpus") >"$tmp/fuzz.log" 2>&1
        rc=$?
        done_runs=$(sed -n 's/^Done \([0-9]*\) runs.*/\1/p' "$tmp/fuzz.log" | tail -n 1)
        cov=$(grep -o 'cov: [0-9]*' "$tmp/fuzz.log" | tail -n 1)
        keep_artifacts >/dev/null && crashed=1 || crashed=0
        [ "$rc" -eq 0 ] && [ -n "$done_runs" ] && [ "$crashed" -eq 0 ]
        ok $? "$name: ${done_runs:-?} runs, ${cov:-cov: ?}, no crash"
        [ "$rc" -eq 0 ] && [ "$crashed" -eq 0 ] || { show "$tmp/fuzz.log"; keep_artifacts; }
else
        (cd "$tmp/artifacts" && "$exe" "$corpus") >"$tmp/replay.log" 2>&1
        rc=$?
        [ "$rc" -eq 0 ]; ok $? "$name: $files corpus files replay without a crash"
        [ "$rc" -eq 0 ] || show "$tmp/replay.log"

        (cd "$tmp/artifacts" && "$exe" -runs="$runs" -max_total_time="$secs" "$corpus") >"$tmp/fuzz.log" 2>&1
        rc=$?
        done_runs=$(sed -n 's/^Done \([0-9]*\) runs.*/\1/p' "$tmp/fuzz.log" | tail -n 1)
        [ "$rc" -eq 0 ] && [ -n "$done_runs" ]
        ok $? "$name: ${done_runs:-?} runs (corpus + mutations, no libFuzzer), no crash"
        [ "$rc" -eq 0 ] || show "$tmp/fuzz.log"
fi

echo "1..$n"
[ "$failed" -eq 0 ]
