#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Pull through a real registry (docker-registry on loopback, basic auth):
# exec --image pulls a missing image and runs it; a wrong password and an
# unknown tag fail clearly and leave no content, snapshot or lease behind.
set -u
S=${TR_TEST_CONTAINERD_SOCKET:-}
TR=${TOOLRUNTIME_BIN:?}
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
cleanup() { kill "$RPID" 2>/dev/null; wait "$RPID" 2>/dev/null; ctr -a "$S" images rm "$REF" >/dev/null 2>&1; rm -rf "$D"; }
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
if [ $? -ne 0 ] && grep -q "refused the credentials" <<<"$out" && [ "$(leases)" = 0 ]; then ok "wrong password"; else bad "wrong password" "$out"; fi
out=$(pull --registry-config "$D/good.json" "127.0.0.1:$PORT/sandbox:nope" 2>&1)
if [ $? -ne 0 ] && grep -q "not found" <<<"$out" && [ "$(leases)" = 0 ]; then ok "unknown tag"; else bad "unknown tag" "$out"; fi
out=$(pull "$REF" 2>&1)
if [ $? -ne 0 ] && grep -q "refused" <<<"$out"; then ok "no credentials"; else bad "no credentials" "$out"; fi
out=$("$TR" exec --json --socket "$S" --insecure-registry "$REG" --registry-config "$D/good.json" --image "$REF" \
        -c '__out = 1 + 2' 2>&1)
if jq -e '.value == 3' <<<"$out" >/dev/null && [ "$(leases)" = 0 ]; then ok "exec pulls and runs"; else bad "exec pull" "$out"; fi
ctr -a "$S" images ls -q | grep -qx "$REF" && ok "image record" || bad "image record" "missing"
out=$("$TR" exec --json -p hardened --socket "$S" --image "127.0.0.1:$PORT/sandbox:other" -c '__out = 1' 2>&1)
grep -q "pinned by digest" <<<"$out" && ok "hardened refuses unpinned pull" || bad "hardened" "$out"
exit $((fails > 0))
