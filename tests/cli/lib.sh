# SPDX-License-Identifier: Apache-2.0
# A tiny assertion helper for the shell-driven suites (cli, security).
# Each test is a function; `run_tests` runs every function named t_*.
TR_PASS=0
TR_FAIL=0
TR_SKIP=0
: "${TOOLRUNTIME_BIN:?set TOOLRUNTIME_BIN to the toolruntime binary}"
TR=$TOOLRUNTIME_BIN

fail() { echo "    FAIL: $*" >&2; return 1; }
skip() { echo "    SKIP: $*" >&2; return 77; }
assert_eq() { [ "$1" = "$2" ] || fail "${3:-values differ}: got '$1', want '$2'"; }
assert_contains() { case $1 in *"$2"*) ;; *) fail "${3:-missing text}: '$2' not in '$(printf %.300s "$1")'" ;; esac; }
assert_not_contains() { case $1 in *"$2"*) fail "${3:-unexpected text}: '$2' in '$(printf %.300s "$1")'" ;; esac; }
# jget JSON EXPR: evaluate a Python expression over the parsed object `j`.
jget() { printf '%s' "$1" | python3 -c "import json,sys; j=json.load(sys.stdin); v=$2; print(json.dumps(v) if not isinstance(v,str) else v)"; }

run_tests() {
    for t in $(declare -F | awk '{print $3}' | grep '^t_'); do
        echo "--- $t"
        set +e
        ( set -e; $t )
        rc=$?
        set -e
        case $rc in
        0) TR_PASS=$((TR_PASS + 1)); echo "    ok" ;;
        77) TR_SKIP=$((TR_SKIP + 1)) ;;
        *) TR_FAIL=$((TR_FAIL + 1)) ;;
        esac
    done
    echo "$TR_PASS passed, $TR_FAIL failed, $TR_SKIP skipped"
    [ "$TR_FAIL" -eq 0 ]
}
