#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Pull through a real registry (docker-registry on loopback, basic auth):
# exec --image pulls a missing image and runs it; a wrong password, an
# unknown tag, a blob whose bytes do not match its digest and a registry that
# stops mid-blob (faulty_proxy.py in front of the registry) each fail clearly
# and leave no content, snapshot or lease behind; the hardened profile pulls
# only digest-pinned references.
set -u
S=${TR_TEST_CONTAINERD_SOCKET:-}
TR=${TOOLRUNTIME_BIN:?}
# The checks look at containerd right after exec: it waits for the removal.
export TOOLRUNTIME_WAIT_CLEANUP=1
skip() { if [ "${CI:-}" = true ]; then echo "FAIL: $*"; exit 1; fi; echo "SKIP: $*"; exit 77; }
[ -S "$S" ] || skip "TR_TEST_CONTAINERD_SOCKET not set"
command -v docker-registry >/dev/null || skip "docker-registry missing"
command -v htpasswd >/dev/null || skip "htpasswd (apache2-utils) missing"
ctr -a "$S" images check name==toolruntime-sandbox:latest | grep -q complete || skip "sandbox image missing"
D=$(mktemp -d /tmp/tr-images-test.XXXXXX)
PORT=$((20000 + RANDOM % 20000)) REG=127.0.0.1:$PORT REF=127.0.0.1:$PORT/sandbox:latest
htpasswd -Bbn alice s3cret > "$D/htpasswd"
cat > "$D/config.yml" <<EOC
version: 0.1
log: {level: warn}
storage: {filesystem: {rootdirectory: $D/data}}
http: {addr: $REG}
auth: {htpasswd: {realm: test, path: $D/htpasswd}}
EOC
docker-registry serve "$D/config.yml" > "$D/reg.log" 2>&1 &
RPID=$!
PPID_=""
cleanup() {
    [ -n "$PPID_" ] && kill "$PPID_" 2>/dev/null && wait "$PPID_" 2>/dev/null
    kill "$RPID" 2>/dev/null; wait "$RPID" 2>/dev/null
    ctr -a "$S" images rm "$REF" "$REG/tiny:latest" "${PINNED:-none}" >/dev/null 2>&1
    rm -rf "$D"
}
trap cleanup EXIT
for _ in $(seq 50); do curl -s -o /dev/null "http://$REG/v2/" && break; sleep 0.1; done
printf '{"auths":{"%s":{"auth":"%s"}}}' "$REG" "$(printf alice:s3cret | base64)" > "$D/good.json"
printf '{"auths":{"%s":{"auth":"%s"}}}' "$REG" "$(printf alice:wrong | base64)" > "$D/bad.json"
ctr -a "$S" images tag --force toolruntime-sandbox:latest "$REF" >/dev/null
ctr -a "$S" images push --plain-http -u alice:s3cret "$REF" >/dev/null || { echo "FAIL: push"; exit 1; }
ctr -a "$S" images rm "$REF" >/dev/null
fails=0
ok() { echo "ok - $1"; }
bad() { echo "not ok - $1: $2"; fails=$((fails + 1)); }
leases() { ctr -a "$S" leases ls -q | grep -c toolruntime-pull; }
pull() { "$TR" image pull --socket "$S" --insecure-registry "$REG" "$@"; }

out=$(pull --registry-config "$D/bad.json" "$REF" 2>&1)
if [ $? -ne 0 ] && grep -q "refused the credentials" <<<"$out" && [ "$(leases)" = 0 ]; then ok "wrong password: $(tail -n1 <<<"$out")"; else bad "wrong password" "$out"; fi
out=$(pull --registry-config "$D/good.json" "127.0.0.1:$PORT/sandbox:nope" 2>&1)
if [ $? -ne 0 ] && grep -q "not found" <<<"$out" && [ "$(leases)" = 0 ]; then ok "unknown tag: $(tail -n1 <<<"$out")"; else bad "unknown tag" "$out"; fi
out=$(pull "$REF" 2>&1)
if [ $? -ne 0 ] && grep -q "refused" <<<"$out"; then ok "no credentials"; else bad "no credentials" "$out"; fi
out=$("$TR" exec --json --socket "$S" --insecure-registry "$REG" --registry-config "$D/good.json" --image "$REF" \
        -c '__out = 1 + 2' 2>&1)
if jq -e '.value == 3' <<<"$out" >/dev/null && [ "$(leases)" = 0 ]; then ok "exec pulls and runs"; else bad "exec pull" "$out"; fi
ctr -a "$S" images ls -q | grep -qx "$REF" && ok "image record" || bad "image record" "missing"
out=$("$TR" exec --json -p hardened --socket "$S" --image "127.0.0.1:$PORT/sandbox:other" -c '__out = 1' 2>&1)
grep -q "pinned by digest" <<<"$out" && ok "hardened refuses unpinned pull" || bad "hardened" "$out"

# hardened: a reference pinned by digest may be pulled (its content cannot
# change under the name), and runs.
dg=$(curl -s -u alice:s3cret -o /dev/null -D - -H "Accept: application/vnd.oci.image.manifest.v1+json" \
        "http://$REG/v2/sandbox/manifests/latest" | tr -d '\r' | awk -F': ' 'tolower($1) == "docker-content-digest" {print $2}')
PINNED="$REG/sandbox@$dg"
out=$("$TR" exec --json -p hardened --socket "$S" --insecure-registry "$REG" --registry-config "$D/good.json" \
        --image "$PINNED" -c '__out = 2 * 21' 2>&1)
if jq -e '.value == 42' <<<"$out" >/dev/null && [ "$(leases)" = 0 ]; then ok "hardened pulls a pinned ref"; else bad "hardened pinned" "$out"; fi

# A small two-layer image of random bytes, nothing else shares: after a
# failed pull none of its blobs may be in the content store.  The first
# layer is fetched and written before the second fails, so the lease is
# what must take it away.
mkdir -p "$D/l1" "$D/l2"
head -c 300000 /dev/urandom > "$D/l1/a"
head -c 300000 /dev/urandom > "$D/l2/b"
{ umoci init --layout "$D/tiny" && umoci new --image "$D/tiny:latest" &&
  umoci insert --image "$D/tiny:latest" "$D/l1" /one && umoci insert --image "$D/tiny:latest" "$D/l2" /two; } \
  >/dev/null 2>&1 || { echo "FAIL: umoci could not make the test image"; exit 1; }
tar -C "$D/tiny" -cf - . | ctr -a "$S" images import --base-name "$REG/tiny" - >/dev/null
ctr -a "$S" images push --plain-http -u alice:s3cret "$REG/tiny:latest" >/dev/null || { echo "FAIL: push tiny"; exit 1; }
ctr -a "$S" images rm --sync "$REG/tiny:latest" >/dev/null
man=$(curl -s -u alice:s3cret -H "Accept: application/vnd.oci.image.manifest.v1+json" "http://$REG/v2/tiny/manifests/latest")
blobs=$(jq -r '.config.digest, .layers[].digest' <<<"$man")
last=$(jq -r '.layers[-1].digest' <<<"$man")
snaps_before=$(ctr -a "$S" snapshots ls | wc -l)
leftovers() {
    local n=0 b
    for b in $blobs; do ctr -a "$S" content ls -q | grep -qx "$b" && n=$((n + 1)); done
    [ "$(ctr -a "$S" snapshots ls | wc -l)" = "$snaps_before" ] || n=$((n + 100))
    n=$((n + $(leases)))
    echo $n
}
[ "$(leftovers)" = 0 ] || { echo "FAIL: the test image's blobs are still in containerd before the test"; exit 1; }
PPORT=$((PORT + 1)) PROXY=127.0.0.1:$((PORT + 1))
printf '{"auths":{"%s":{"auth":"%s"}}}' "$PROXY" "$(printf alice:s3cret | base64)" > "$D/proxy.json"
proxy() {
    [ -n "$PPID_" ] && kill "$PPID_" 2>/dev/null && wait "$PPID_" 2>/dev/null
    python3 "$(dirname "$0")/faulty_proxy.py" "$PPORT" "$REG" "$last" "$1" > "$D/proxy.out" 2>&1 &
    PPID_=$!
    for _ in $(seq 50); do grep -q ready "$D/proxy.out" && break; sleep 0.1; done
}
ppull() { "$TR" image pull --socket "$S" --insecure-registry "$PROXY" --registry-config "$D/proxy.json" "$PROXY/tiny:latest" 2>&1; }

out=$("$TR" image pull --socket "$S" --insecure-registry "$REG" --registry-config "$D/bad.json" "$REG/tiny:latest" 2>&1)
if [ $? -ne 0 ] && [ "$(leftovers)" = 0 ]; then ok "wrong password leaves nothing"; else bad "wrong password leftovers" "$out"; fi
out=$("$TR" image pull --socket "$S" --insecure-registry "$REG" --registry-config "$D/good.json" "$REG/tiny:nope" 2>&1)
if [ $? -ne 0 ] && [ "$(leftovers)" = 0 ]; then ok "unknown tag leaves nothing"; else bad "unknown tag leftovers" "$out"; fi
proxy flip
out=$(ppull)
if [ $? -ne 0 ] && grep -q "digest mismatch" <<<"$out" && [ "$(leftovers)" = 0 ]; then ok "digest mismatch: $(tail -n1 <<<"$out")"; else bad "digest mismatch" "$out (leftovers $(leftovers))"; fi
proxy cut
out=$(ppull)
if [ $? -ne 0 ] && grep -qi "registry" <<<"$out" && [ "$(leftovers)" = 0 ]; then ok "registry stops mid-blob: $(tail -n1 <<<"$out")"; else bad "mid-blob" "$out (leftovers $(leftovers))"; fi
# The same pull through an honest path works: the failures above were the
# faults', and a working pull does leave the blobs.
out=$("$TR" image pull --socket "$S" --insecure-registry "$REG" --registry-config "$D/good.json" "$REG/tiny:latest" 2>&1)
if [ $? -eq 0 ] && [ "$(leftovers)" != 0 ]; then ok "honest pull of the same image"; else bad "honest pull" "$out"; fi
exit $((fails > 0))
