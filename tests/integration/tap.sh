# SPDX-License-Identifier: LGPL-2.1-or-later
# TAP for shell tests: ok/fail/run/finish.  Source it.
tap_n=0
tap_failed=0

tap_ok() { # condition-status description
        tap_n=$((tap_n + 1))
        if [ "$1" -eq 0 ]; then
                echo "ok $tap_n - $2"
        else
                echo "not ok $tap_n - $2"
                tap_failed=$((tap_failed + 1))
        fi
}

# expect STATUS DESCRIPTION -- COMMAND...: runs COMMAND, keeps its stdout in
# $out and stderr in $err, checks the exit status.
expect() {
        want=$1; desc=$2; shift 3
        out=$("$@" 2>"$tap_tmp/stderr")
        got=$?
        err=$(cat "$tap_tmp/stderr")
        [ "$got" -eq "$want" ]
        tap_ok $? "$desc (exit $got, want $want)"
        [ "$got" -eq "$want" ] || { echo "#   stdout: $out"; echo "#   stderr: $err"; }
}

# contains TEXT HAYSTACK DESCRIPTION
contains() {
        case "$2" in
        *"$1"*) tap_ok 0 "$3" ;;
        *) tap_ok 1 "$3"; echo "#   expected to find: $1"; echo "#   in: $2" ;;
        esac
}

tap_finish() {
        echo "1..$tap_n"
        [ "$tap_failed" -eq 0 ]
}

tap_tmp=$(mktemp -d "${CAIRN_TEST_TMPDIR:-/tmp}/tap.XXXXXX") && [ -n "$tap_tmp" ] && [ -d "$tap_tmp" ] || {
        # Never run a test at / (every path is "$tap_tmp/...").
        echo "Bail out! cannot create a temporary directory under ${CAIRN_TEST_TMPDIR:-/tmp}"
        exit 1
}
trap 'rm -rf "$tap_tmp"' EXIT

# The unlocked keys these tests' repositories leave in root's kernel
# keyring expire after ten minutes, not the default day (a test that is
# about the key cache sets its own).
export CAIRN_KEY_CACHE=${CAIRN_KEY_CACHE:-10m}
