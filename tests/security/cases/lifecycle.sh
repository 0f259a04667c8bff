# SPDX-License-Identifier: Apache-2.0
# shellcheck shell=bash
# The execution lifecycle as users see it on the isolating backends: output
# streams to the terminal while the snippet runs (issue 10).

t_output_streams_live() {
    local bargs lag out
    mapfile -t bargs < <(backend_args "$BACKEND")
    read -r lag out < <(python3 "$here/../cli/stream_lag.py" "$TOOLRUNTIME_BIN" exec -p standard "${bargs[@]}" \
        "${EXTRA_EXEC_ARGS[@]}" -c 'import time
for i in range(3): print(i, flush=True); time.sleep(1)' 2>"$WORK/stderr")
    [ "$out" = '"0\n1\n2\n"' ] || fail "stdout was $out (stderr: $(head -c 300 "$WORK/stderr"))"
    [ "${lag:--1}" -ge 1500 ] || fail "the first line came only $lag ms before the end"
}
register_case "containerd kata" t_output_streams_live
