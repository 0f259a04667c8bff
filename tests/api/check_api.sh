#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# The public API's shape, checked against the build:
#  1. the symbols libtoolruntime.so exports (nm -D) are exactly the names
#     src/libtoolruntime.lds lists, and exactly the TR_PUBLIC functions the
#     headers declare (nothing exported unlisted, nothing listed missing);
#  2. the CLI (src/cli, and the front ends it compiles: src/mcp, src/serve)
#     includes no private header of the library: only the header-only
#     util/macros.h, util/handles.h, util/timeutil.h, util/curl_lazy.h and
#     util/lazylib.h, its
#     own headers and the generated tr-config.h;
#  3. the README's C example compiles and links against the library alone.
# Usage: check_api.sh LIBTOOLRUNTIME.SO SOURCE_ROOT CC...
set -eu
lib=$1 root=$2
shift 2
fail=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

nm -D --defined-only "$lib" | awk '$2 ~ /^[TDBRVWi]$/ {print $3}' | sed 's/@.*//' | sort -u >"$tmp/exported"
sed -n '/global:/,/local:/p' "$root/src/libtoolruntime.lds" | grep -E '^\s+tr_[a-z0-9_]+;' |
        tr -d ' ;' | sort -u >"$tmp/listed"
grep -ho '^TR_PUBLIC[^(]*(' "$root/include/toolruntime.h" "$root"/include/toolruntime/*.h |
        grep -o 'tr_[a-z0-9_]*($' | tr -d '(' | sort -u >"$tmp/declared"
[ -s "$tmp/exported" ] || { echo "FAIL: $lib exports nothing"; exit 1; }
report() { # WHAT FILE
        if [ -s "$2" ]; then
                echo "FAIL: $1:"
                sed 's/^/    /' "$2"
                fail=1
        fi
}
comm -23 "$tmp/exported" "$tmp/listed" >"$tmp/d1"
report "exported but not in src/libtoolruntime.lds" "$tmp/d1"
comm -13 "$tmp/exported" "$tmp/listed" >"$tmp/d2"
report "listed in src/libtoolruntime.lds but not exported" "$tmp/d2"
comm -13 "$tmp/exported" "$tmp/declared" >"$tmp/d3"
report "declared TR_PUBLIC but not exported" "$tmp/d3"
comm -23 "$tmp/exported" "$tmp/declared" >"$tmp/d4"
report "exported but not declared in include/" "$tmp/d4"
echo "symbols: $(wc -l <"$tmp/exported") exported, $(wc -l <"$tmp/listed") listed, $(wc -l <"$tmp/declared") declared"

grep -HnE '^#include "' "$root"/src/cli/*.[ch] "$root"/src/mcp/*.[ch] "$root"/src/serve/*.[ch] |
        grep -vE '#include "(toolruntime\.h|toolruntime/[a-z]+\.h|tr-config\.h|cli/[a-z_]+\.h|mcp/[a-z_]+\.h|serve/[a-z_]+\.h|util/(macros|handles|timeutil|curl_lazy|lazylib)\.h)"' \
                >"$tmp/private" || true
report "the CLI includes private library headers" "$tmp/private"

# The first C block of the README's "As a library" section, as a program.
awk '/^### As a library/ {sec=1} sec && /^```c/ {code=1; next} code && /^```/ {exit} code {print}' \
        "$root/README.md" >"$tmp/example.body"
[ -s "$tmp/example.body" ] || { echo "FAIL: no C example in README.md"; exit 1; }
{
        echo '#include <stdio.h>'
        grep '^#include' "$tmp/example.body"
        echo 'int main(void) {'
        grep -v '^#include' "$tmp/example.body"
        echo 'return 0; }'
} >"$tmp/example.c"
if ! "$@" -std=gnu17 -Wall -Wextra -Werror -I"$root/include" "$tmp/example.c" -o "$tmp/example" \
        -L"$(dirname "$lib")" -ltoolruntime 2>"$tmp/cc.log"; then
        echo "FAIL: the README's C example does not compile:"
        cat "$tmp/cc.log"
        fail=1
else
        echo "README example: compiles and links"
fi
exit $fail
