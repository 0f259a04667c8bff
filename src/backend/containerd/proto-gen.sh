#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
#
# Generate protobuf-c code from containerd's own .proto files, at build time.
#
# protoc-c writes its output under the proto's import path
# (github.com/containerd/containerd/api/services/tasks/v1/tasks.pb-c.c), but
# a meson custom_target can only declare outputs directly in its build
# directory.  So this wrapper generates into a scratch directory and flattens
# every file to "ctrd_<path with / as _>.pb-c.[ch]" (the containerd API
# prefix dropped), rewriting the generated #include lines to match.
#
# The `gogoproto/gogo.proto` import is a weak, options-only import: nothing
# generated refers to it, so its #include is dropped instead of generating
# gogo.proto and descriptor.proto for nothing.
#
# usage: proto-gen.sh PROTOC_C OUTDIR GOSRC GOGO_INC GOOGLE_INC PROTO...
#   PROTO is a path relative to GOSRC or GOOGLE_INC (google/protobuf/*.proto).
set -eu
protoc=$1 outdir=$2 gosrc=$3 gogo=$4 google=$5
shift 5
scratch=$(mktemp -d "${outdir}/.proto-gen.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
"$protoc" -I"$gosrc" -I"$gogo" -I"$google" --c_out="$scratch" "$@" 2>"$scratch.log" || {
    cat "$scratch.log" >&2; rm -f "$scratch.log"; exit 1; }
# "Import ... is unused" warnings for the weak gogo import are expected noise.
grep -v 'is unused' "$scratch.log" >&2 || true
rm -f "$scratch.log"
api=github.com/containerd/containerd/api/
for proto in "$@"; do
    base=${proto%.proto}
    flat=ctrd_$(printf '%s' "${base#"$api"}" | tr '/' '_')
    for ext in c h; do
        sed -e '/#include "gogoproto\/gogo.pb-c.h"/d' \
            -e "s|#include \"$api|#include \"|" \
            -e ':a' -e 's|\(#include "[^"/]*\)/\([^"]*\.pb-c\.h"\)|\1_\2|' -e 'ta' \
            -e 's|#include "\([^"]*\.pb-c\.h\)"|#include "ctrd_\1"|' \
            "$scratch/$base.pb-c.$ext" > "$outdir/$flat.pb-c.$ext.tmp"
        mv "$outdir/$flat.pb-c.$ext.tmp" "$outdir/$flat.pb-c.$ext"
    done
done
