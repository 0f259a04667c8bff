#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Style gates: clang-format on our C, banned functions in src/, SPDX headers.
set -eu
cd "$(dirname "$0")/.."
fail=0
files=$(git ls-files '*.c' '*.h' | grep -v '^tests/fuzz/corpus' || true)
if command -v clang-format >/dev/null; then
    # shellcheck disable=SC2086
    if ! clang-format --dry-run -Werror $files 2>/tmp/tr-format.log; then
        echo "lint: clang-format differences (run: clang-format -i \$(git ls-files '*.c' '*.h')):" >&2
        head -40 /tmp/tr-format.log >&2
        fail=1
    fi
fi
# curl's checksrc idea: these are either unbounded or hide failure.
banned='\b(sprintf|vsprintf|strcpy|strcat|atoi|atol|gets|system|popen|tmpnam|mktemp)\s*\('
if git ls-files 'src/*.c' 'src/*.h' 'guest/*.c' | xargs grep -nE "$banned" | grep -v 'lint: allow'; then
    echo "lint: banned function in src/ (see scripts/lint.sh)" >&2
    fail=1
fi
# Criterion 2.4.1's timeout list (timeout-posix.c) drops the queued
# requests when a shorter .timeout is pushed while a longer one waits: the
# longer test silently loses its timeout and the runner leaks it (LSan fails
# the suite).  One .timeout value per test binary keeps pushes in order.
for f in $(git ls-files 'tests/*.c'); do
    n=$(grep -o '\.timeout = [0-9.]*' "$f" | sort -u | wc -l)
    [ "$n" -le 1 ] || { echo "lint: $f mixes .timeout values (see scripts/lint.sh)" >&2; fail=1; }
done
for f in $(git ls-files '*.c' '*.h' '*.sh' '*.py' meson.build Makefile); do
    head -3 "$f" | grep -q 'SPDX-License-Identifier' || { echo "lint: $f has no SPDX header" >&2; fail=1; }
done
exit $fail
