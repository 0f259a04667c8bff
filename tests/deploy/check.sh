#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# The deployment files in deploy/: syntax and the fields that matter.  They
# cannot run here (no kubelet; the unit would replace the host's service),
# so this is what can be checked: the Kubernetes manifests parse and carry
# what the README promises, the systemd unit passes `systemd-analyze
# verify` (against the built binary), and `serve` accepts serve.json.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$here/../..
: "${TOOLRUNTIME_BIN:?}"
fail=0

python3 - "$root/deploy/kubernetes" <<'PY' || fail=1
import glob, os, sys, yaml
docs = []
for f in sorted(glob.glob(os.path.join(sys.argv[1], "*.yaml"))):
    with open(f) as fh:
        docs += [(os.path.basename(f), d) for d in yaml.safe_load_all(fh) if d]
kinds = {d["kind"]: (f, d) for f, d in docs}
for k in ("DaemonSet", "Service", "Secret", "Namespace", "RuntimeClass"):
    assert k in kinds, "no %s in deploy/kubernetes" % k
for f, d in docs:
    assert d.get("apiVersion") and d.get("metadata", {}).get("name"), f
ds = kinds["DaemonSet"][1]
pod = ds["spec"]["template"]["spec"]
c = pod["containers"][0]
assert c["args"][0] == "serve", c["args"]
assert any(a.startswith("--token-file=") for a in c["args"]), "a non-loopback listener needs a token"
assert ds["spec"]["selector"]["matchLabels"] == ds["spec"]["template"]["metadata"]["labels"]
svc = kinds["Service"][1]
assert svc["spec"]["selector"] == ds["spec"]["template"]["metadata"]["labels"]
mounts = {m["name"] for m in c["volumeMounts"]}
vols = {v["name"] for v in pod["volumes"]}
assert mounts <= vols, mounts - vols
print("ok - kubernetes manifests: %d documents" % len(docs))
PY

if command -v systemd-analyze >/dev/null; then
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    sed "s|/usr/local/bin/toolruntime|$TOOLRUNTIME_BIN|" "$root/deploy/toolruntime-serve.service" > "$tmp/toolruntime-serve.service"
    # containerd.service may not exist here: verify the unit alone.
    if out=$(systemd-analyze verify --man=no "$tmp/toolruntime-serve.service" 2>&1 | grep -v 'containerd.service' | grep .); then
        echo "not ok - systemd-analyze verify: $out"
        fail=1
    else
        echo "ok - systemd unit verifies"
    fi
elif [ "${CI:-}" = true ]; then
    echo "not ok - systemd-analyze is missing"
    fail=1
fi

if "$TOOLRUNTIME_BIN" serve --config "$root/deploy/serve.json" --help >/dev/null; then
    echo "ok - serve accepts deploy/serve.json"
else
    echo "not ok - serve refuses deploy/serve.json"
    fail=1
fi
exit $fail
