#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# shellcheck disable=SC2016 # the snippets are single-quoted on purpose: they expand in the sandbox
#
# The security suite: real escape and exhaustion attempts, run through the
# toolruntime CLI against one isolating backend — containerd (runc) or kata
# (a QEMU microVM) — in the standard and hardened profiles (and dev where the
# difference is the point), each asserting the specific safe outcome, that
# the backend is left clean and that no sandbox process survives on the host.
#
# Cases live here and in cases/*.sh (one file per concern), each registered
# for the backends it applies to with `register_case "containerd kata" t_fn`.
#
# Environment:
#   TOOLRUNTIME_BIN             the CLI binary (set by meson)
#   TR_TEST_BACKEND             containerd (default) or kata
#   TR_TEST_CONTAINERD_SOCKET   containerd to use; required for the
#                               containerd backend (absent: skip, exit 77, or
#                               fail under CI=true); optional for kata, where
#                               cases that mix a VM and a container use it
#   TR_TEST_NAMESPACE           containerd namespace (default: default)
#   TR_TEST_IMAGE               sandbox image (default toolruntime-sandbox:latest);
#                               built with images/sandbox/build.sh when missing
#   TR_TEST_VM_DIR              kata: the directory holding vmlinuz, initrd.img
#                               and rootfs.ext4 (default /var/lib/toolruntime/vm)
#   TR_TEST_KATA_IMAGE          kata: run a container image's root in the guest
#                               (exec -b kata --image; needs the containerd of
#                               TR_TEST_CONTAINERD_SOCKET), converted into
#                               TR_TEST_VM_IMAGE_CACHE (default
#                               /var/lib/toolruntime/vm/images)
#   TR_TEST_ONLY                run only cases whose name contains this
#
# usage: tests/security/run.sh
set -u

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/security/lib.sh
. "$here/lib.sh"

skip_or_fail() {
    if [ "${CI:-}" = true ]; then
        echo "security: FAIL (CI=true): $*" >&2
        exit 1
    fi
    echo "security: SKIP: $*" >&2
    exit 77
}

: "${TOOLRUNTIME_BIN:?TOOLRUNTIME_BIN must name the toolruntime binary}"
[ -x "$TOOLRUNTIME_BIN" ] || { echo "security: $TOOLRUNTIME_BIN is not executable" >&2; exit 1; }
BACKEND=${TR_TEST_BACKEND:-containerd}
for tool in jq python3; do
    command -v "$tool" >/dev/null || skip_or_fail "$tool is not installed (apt-get install jq python3)"
done
[ "$(id -u)" = 0 ] || skip_or_fail "the suite drives the sandboxes as root"

NS=${TR_TEST_NAMESPACE:-default}
# Every case checks containerd right after its executions: exec waits for
# its sandbox's removal (t_cleanup_after_exit tests the detached default).
export TOOLRUNTIME_WAIT_CLEANUP=1
IMAGE=${TR_TEST_IMAGE:-toolruntime-sandbox:latest}
VM_DIR=${TR_TEST_VM_DIR:-/var/lib/toolruntime/vm}
EXTRA_EXEC_ARGS=()
# HAVE_CONTAINERD: a containerd the cases may use (required for the
# containerd backend; kata cases that mix a VM and a container use it too).
HAVE_CONTAINERD=0
if [ -n "${TR_TEST_CONTAINERD_SOCKET:-}" ] && [ -S "$TR_TEST_CONTAINERD_SOCKET" ] && command -v ctr >/dev/null; then
    HAVE_CONTAINERD=1
fi
case "$BACKEND" in
    containerd)
        [ -n "${TR_TEST_CONTAINERD_SOCKET:-}" ] || skip_or_fail "TR_TEST_CONTAINERD_SOCKET is not set (no containerd to test against)"
        [ "$HAVE_CONTAINERD" = 1 ] || skip_or_fail "no containerd socket at $TR_TEST_CONTAINERD_SOCKET (or no ctr)"
        ;;
    kata)
        command -v qemu-system-x86_64 >/dev/null || skip_or_fail "qemu-system-x86_64 is not installed"
        for f in vmlinuz initrd.img rootfs.ext4; do
            [ -f "$VM_DIR/$f" ] || skip_or_fail "no $VM_DIR/$f (toolruntime image build --vm)"
        done
        ;;
    *) echo "security: TR_TEST_BACKEND must be containerd or kata, not '$BACKEND'" >&2; exit 2 ;;
esac
if [ "$HAVE_CONTAINERD" = 1 ] && ! ctr -a "$TR_TEST_CONTAINERD_SOCKET" -n "$NS" images ls -q | grep -qx "$IMAGE"; then
    echo "security: $IMAGE missing in namespace $NS; building it"
    "$here/../../images/sandbox/build.sh" --ref "$IMAGE" --namespace "$NS" --socket "$TR_TEST_CONTAINERD_SOCKET" \
        || { echo "security: image build failed" >&2; exit 1; }
fi

WORK=$(mktemp -d /tmp/tr-security.XXXXXX)
LISTENER_PID=""
cleanup() {
    [ -n "$LISTENER_PID" ] && kill "$LISTENER_PID" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT

# ---- host-side bait -------------------------------------------------------
TOKEN=$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
SECRET="$WORK/host-secret-$TOKEN"
echo "TOP-SECRET-$TOKEN" > "$SECRET"
chmod 0644 "$SECRET" # readable by anyone on the host: only isolation protects it
chmod 0755 "$WORK"

# A TCP listener on the host's loopback that records every connection.
python3 - "$WORK/port" "$WORK/hits" <<'EOF' &
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 0))
s.listen(16)
with open(sys.argv[1] + ".tmp", "w") as f:
    f.write(str(s.getsockname()[1]))
import os
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
while True:
    c, _ = s.accept()
    with open(sys.argv[2], "a") as f:
        f.write("hit\n")
    try:
        c.sendall(b"HOST-LISTENER\n")
    finally:
        c.close()
EOF
LISTENER_PID=$!
for _ in $(seq 50); do [ -s "$WORK/port" ] && break; sleep 0.1; done
PORT=$(cat "$WORK/port")
: > "$WORK/hits"

# A canary in the caller's environment: it must not reach the sandbox.
export "TR_CANARY_$TOKEN=leaked-$TOKEN"

BASELINE_STATE=$(backend_state)
if [ "$BACKEND" = kata ]; then
    echo "security: binary $TOOLRUNTIME_BIN, backend kata, VM images in $VM_DIR"
else
    echo "security: binary $TOOLRUNTIME_BIN, containerd $TR_TEST_CONTAINERD_SOCKET ns $NS, image $IMAGE"
fi
echo "security: baseline $BASELINE_STATE"
case "$BASELINE_STATE" in
    "containers=0 tasks=0 leases=0 active_snapshots=0" | "qemu=0") ;;
    *) echo "security: warning: the backend is not empty before the suite; cases compare against this baseline" ;;
esac

# ---- cases ----------------------------------------------------------------

identity() { # PROFILE
    trx "$1" -l sh -c 'echo "who=$(whoami 2>/dev/null || echo none)"; echo "id=$(id -u):$(id -g):$(id -G)"; echo "host=$(hostname)"
        grep -E "^(CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs|Seccomp):" /proc/self/status | tr -d "\t" | sed "s/:/=/"'
    assert_eq "$RC" 0 "exit status"
    # Its own host uid, which no account (in the image or on the host) has.
    check_sandbox_uid
    assert_eq "$(kv who)" none "whoami"
    assert_eq "$(kv id)" "$SBX_UID:$SBX_UID:$SBX_UID" "uid:gid:groups"
    assert_ne "$(kv host)" "$(hostname)" "hostname (must not be the host's)"
    assert_ne "$(kv host)" "" "hostname"
    local cap
    for cap in CapInh CapPrm CapEff CapBnd CapAmb; do
        assert_eq "$(kv $cap)" 0000000000000000 "$cap"
    done
    assert_eq "$(kv NoNewPrivs)" 1 "no_new_privileges"
    if [ "$1" != dev ]; then
        assert_eq "$(kv Seccomp)" 2 "seccomp filter mode"
    fi
    assert_eq "$(j .error)" null "error"
    assert_eq "$(j .backend.kind)" "$BACKEND" "backend"
}
t_identity_standard() { identity standard; }
t_identity_hardened() { identity hardened; }

t_environment_and_fds() {
    local p
    for p in standard hardened; do
        # fd 7 is open on the secret in the caller: it must not be inherited.
        trx "$p" -c '
import os
print("env=" + " ".join(sorted(os.environ)))
print("canary=" + str(any("TR_CANARY" in k or "leaked-" in v for k, v in os.environ.items())))
fds = []
for fd in os.listdir("/proc/self/fd"):
    try:
        fds.append(fd + ":" + os.readlink("/proc/self/fd/" + fd))
    except OSError:
        pass
print("fds=" + " ".join(sorted(fds)))
print("tty=" + str([os.isatty(i) for i in (0, 1, 2)]))
try:
    open("/dev/tty"); print("devtty=open")
except OSError as e:
    print("devtty=" + str(e.errno))
' 7<"$SECRET"
        assert_eq "$RC" 0 "$p: exit status"
        assert_eq "$(kv canary)" False "$p: host environment canary"
        assert_not_contains "$(j .stdout)" "$TOKEN" "$p: output"
        assert_not_contains "$(kv fds)" "host-secret" "$p: inherited file descriptors"
        assert_eq "$(kv tty)" "[False, False, False]" "$p: stdio must not be a terminal"
        assert_ne "$(kv devtty)" "open" "$p: /dev/tty"
    done
}

t_host_secret_file() {
    local p
    for p in standard hardened; do
        trx "$p" -c "
import os
for path in ['$SECRET', '/proc/1/root$SECRET', '/proc/self/root$SECRET']:
    try:
        print('read=' + open(path).read().strip())
    except OSError as e:
        print('err=' + type(e).__name__)
found = []
for root, dirs, files in os.walk('/', onerror=lambda e: None):
    if root.startswith(('/proc', '/sys')):
        dirs[:] = []
        continue
    found += [f for f in files if 'host-secret' in f]
print('found=' + str(found))
"
        assert_eq "$RC" 0 "$p: exit status"
        assert_eq "$(kv read)" "" "$p: the host secret must not be readable"
        assert_eq "$(kv err)" FileNotFoundError "$p: reading the host path"
        assert_eq "$(kv found)" "[]" "$p: the host secret file must not be visible anywhere"
        assert_not_contains "$OUT" "TOP-SECRET" "$p: output"
    done
}

connect_snippet() {
    cat <<EOF
import socket
s = socket.socket()
s.settimeout(3)
try:
    s.connect(("127.0.0.1", $PORT))
    print("connect=ok " + s.recv(64).decode().strip())
except OSError as e:
    print("connect=" + type(e).__name__)
ifs = [l.split(":")[0].strip() for l in open("/proc/net/dev").readlines()[2:]]
print("ifs=" + ",".join(sorted(ifs)))
EOF
}

t_network_host_loopback() {
    local p
    for p in standard hardened; do
        : > "$WORK/hits"
        trx "$p" -c "$(connect_snippet)"
        assert_eq "$RC" 0 "$p: exit status"
        assert_eq "$(kv connect)" ConnectionRefusedError "$p: connecting to the host's 127.0.0.1:$PORT"
        assert_eq "$(kv ifs)" lo "$p: network interfaces (loopback only)"
        assert_eq "$(wc -l <"$WORK/hits")" 0 "$p: connections seen by the host listener"
    done
}

t_network_dev_reaches_host() {
    : > "$WORK/hits"
    trx dev -c "$(connect_snippet)"
    assert_eq "$RC" 0 "dev: exit status"
    assert_eq "$(kv connect)" "ok HOST-LISTENER" "dev: host network is reachable by design"
    assert_eq "$(wc -l <"$WORK/hits")" 1 "dev: connections seen by the host listener"
}

t_write_root() {
    local p
    for p in standard hardened; do
        trx "$p" -c '
import errno
for path in ["/pwned", "/etc/passwd", "/usr/bin/python3", "/run/toolruntime/x", "/var/tmp/x"]:
    try:
        open(path, "a").close()
        print(path + "=written")
    except OSError as e:
        print(path + "=" + errno.errorcode[e.errno])
open("/tmp/ok", "w").write("x")
print("tmp=ok")
'
        assert_eq "$RC" 0 "$p: exit status"
        # Creating a file shows the read-only root (EROFS); for existing
        # root-owned files the permission check may answer first (EACCES).
        assert_eq "$(kv /pwned)" EROFS "$p: write to /"
        assert_one_of "$(kv /etc/passwd)" "EROFS EACCES" "$p: write to /etc/passwd"
        assert_one_of "$(kv /usr/bin/python3)" "EROFS EACCES" "$p: write to /usr/bin/python3"
        assert_one_of "$(kv /run/toolruntime/x)" "EROFS EACCES ENOENT" "$p: write to /run/toolruntime"
        assert_eq "$(kv /var/tmp/x)" EROFS "$p: write to /var/tmp"
        assert_not_contains "$(j .stdout)" "=written" "$p: writes outside /tmp"
        assert_eq "$(kv tmp)" ok "$p: /tmp is writable"
    done
    # dev: the root is writable only by root; nobody still cannot.
    trx dev -c '
import errno
try:
    open("/pwned", "w"); print("root=written")
except OSError as e:
    print("root=" + errno.errorcode[e.errno])
'
    assert_eq "$(kv root)" EACCES "dev: write to / as nobody"
}

t_nothing_persists() {
    trx standard -c "open('/tmp/persist-$TOKEN', 'w').write('x'); print('wrote=1')"
    assert_eq "$(kv wrote)" 1 "first execution writes /tmp"
    trx standard -c "import os; print('exists=' + str(os.path.exists('/tmp/persist-$TOKEN')))"
    assert_eq "$(kv exists)" False "the next execution must not see it"
}

become_root() { # PROFILE
    trx "$1" -c '
import os, subprocess
try:
    os.setuid(0); print("setuid=ok")
except OSError as e:
    print("setuid=" + type(e).__name__)
try:
    os.setgid(0); print("setgid=ok")
except OSError as e:
    print("setgid=" + type(e).__name__)
r = subprocess.run(["su", "-c", "id -u", "root"], stdin=subprocess.DEVNULL, capture_output=True, text=True)
print("su_rc=" + str(r.returncode))
print("su_out=" + r.stdout.strip())
r = subprocess.run(["find", "/", "-xdev", "-perm", "/6000", "-type", "f"], capture_output=True, text=True)
print("setuid_files=" + ",".join(r.stdout.split()))
print("uid=" + str(os.getuid()) + ":" + str(os.geteuid()))
print("capeff=" + [l.split()[1] for l in open("/proc/self/status") if l.startswith("CapEff")][0])
'
    assert_eq "$RC" 0 "$1: exit status"
    assert_eq "$(kv setuid)" PermissionError "$1: setuid(0)"
    assert_eq "$(kv setgid)" PermissionError "$1: setgid(0)"
    assert_ne "$(kv su_rc)" 0 "$1: su root"
    assert_ne "$(kv su_out)" 0 "$1: su must not yield uid 0"
    assert_eq "$(kv setuid_files)" "" "$1: setuid/setgid files in the image"
    check_sandbox_uid
    assert_eq "$(kv uid)" "$SBX_UID:$SBX_UID" "$1: uid after the attempts"
    assert_eq "$(kv capeff)" 0000000000000000 "$1: effective capabilities"
}
t_become_root_standard() { become_root standard; }
t_become_root_hardened() { become_root hardened; }

# mount, unshare and ptrace through libc, reporting errno by name.
privileged_snippet() {
    cat <<EOF
import ctypes, errno, os, subprocess
libc = ctypes.CDLL(None, use_errno=True)
def call(name, *args):
    r = getattr(libc, name)(*args)
    return "ok" if r == 0 else errno.errorcode.get(ctypes.get_errno(), str(ctypes.get_errno()))
print("mount=" + call("mount", b"none", b"/tmp", b"tmpfs", 0, None))
print("umount=" + call("umount2", b"/proc", 2))
CLONE_NEWUSER, CLONE_NEWNS, CLONE_NEWNET = 0x10000000, 0x00020000, 0x40000000
print("unshare_user=" + call("unshare", CLONE_NEWUSER))
print("unshare_mnt=" + call("unshare", CLONE_NEWNS))
print("unshare_net=" + call("unshare", CLONE_NEWNET))
r = subprocess.run(["unshare", "-r", "id", "-u"], capture_output=True, text=True)
print("unshare_cmd=" + str(r.returncode))
print("setns=" + call("setns", os.open("/proc/self/ns/net", os.O_RDONLY), 0))
PTRACE_TRACEME, PTRACE_ATTACH = 0, 16
print("ptrace_attach_host=" + call("ptrace", PTRACE_ATTACH, $$, None, None))
print("procs=" + str(len([p for p in os.listdir("/proc") if p.isdigit()])))
print("ptrace_traceme=" + call("ptrace", PTRACE_TRACEME, 0, None, None))
print("chroot=" + call("chroot", b"/tmp"))
print("keys=" + call("syscall", 250, 0, -3))  # keyctl(KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION)
EOF
}

t_privileged_calls_standard() {
    trx standard -c "$(privileged_snippet)"
    assert_eq "$RC" 0 "exit status"
    assert_eq "$(kv mount)" EPERM "mount"
    assert_eq "$(kv umount)" EPERM "umount2"
    assert_eq "$(kv unshare_user)" EPERM "unshare(CLONE_NEWUSER)"
    assert_eq "$(kv unshare_mnt)" EPERM "unshare(CLONE_NEWNS)"
    assert_eq "$(kv unshare_net)" EPERM "unshare(CLONE_NEWNET)"
    assert_ne "$(kv unshare_cmd)" 0 "unshare -r"
    assert_eq "$(kv setns)" EPERM "setns"
    assert_eq "$(kv chroot)" EPERM "chroot"
    assert_eq "$(kv keys)" EPERM "keyctl"
    # standard keeps containerd's default filter, which allows ptrace
    # within the sandbox; what must hold is that nothing outside it can be
    # reached: the host pid does not exist in the sandbox's pid namespace.
    assert_eq "$(kv ptrace_attach_host)" ESRCH "ptrace(PTRACE_ATTACH, host pid $$)"
    assert_le "$(kv procs)" 3 "processes visible in /proc"
}

t_privileged_calls_hardened() {
    trx hardened -c "$(privileged_snippet)"
    assert_eq "$RC" 0 "exit status"
    local k
    for k in mount umount unshare_user unshare_mnt unshare_net setns chroot keys ptrace_attach_host ptrace_traceme; do
        assert_eq "$(kv $k)" EPERM "$k (denied by the seccomp filter)"
    done
    assert_ne "$(kv unshare_cmd)" 0 "unshare -r"
}

fork_bomb() { # PROFILE
    trx "$1" --pids 32 -t 20 -c '
import os, time
n = 0
err = ""
try:
    for i in range(500):
        pid = os.fork()
        if pid == 0:
            time.sleep(3)
            os._exit(0)
        n += 1
except OSError as e:
    err = type(e).__name__
print("forked=" + str(n))
print("err=" + err)
'
    assert_eq "$RC" 0 "$1: exit status"
    assert_le "$(kv forked)" 31 "$1: processes created under --pids 32"
    assert_ge "$(kv forked)" 5 "$1: some processes are allowed"
    assert_eq "$(kv err)" BlockingIOError "$1: fork fails with EAGAIN"
    assert_eq "$(j .limits_enforced.pids)" true "$1: limits_enforced.pids"
    assert_le "$RUN_MS" 15000 "$1: wall time without the boot (ms)"
}
t_fork_bomb_standard() { fork_bomb standard; }
t_fork_bomb_hardened() { fork_bomb hardened; }

t_fork_bomb_shell() {
    # The classic: it never ends by itself; the timeout must end it and
    # kill every process, and the host must stay responsive.
    trx standard -l sh --pids 32 -t 3 -c 'b() { b | b & }; b; sleep 60'
    assert_le "$RUN_MS" 12000 "wall time without the boot (ms)"
    assert_eq "$(j .limits_enforced.pids)" true "limits_enforced.pids"
    local t0
    t0=$(now_ms)
    /bin/true
    assert_le "$(( $(now_ms) - t0 ))" 1000 "host can still start a process (ms)"
}

memory_bomb() { # PROFILE
    trx "$1" --memory 64M -t 30 -c '
b = []
while True:
    b.append(bytearray(8 << 20))
'
    assert_eq "$RC" 125 "$1: exit status (runtime error)"
    assert_eq "$(j .error.code)" resource_limit "$1: error code"
    assert_eq "$(j .limits_enforced.memory)" true "$1: limits_enforced.memory"
    assert_le "$RUN_MS" 20000 "$1: wall time without the boot (ms)"
}
t_memory_bomb_standard() { memory_bomb standard; }
t_memory_bomb_hardened() { memory_bomb hardened; }

disk_fill() { # PROFILE
    trx "$1" --disk 8M -c "
import errno
n = 0
try:
    with open('/tmp/fill-$TOKEN', 'wb') as f:
        while True:
            f.write(b'x' * 65536)
            f.flush()
            n += 65536
except OSError as e:
    print('err=' + errno.errorcode[e.errno])
print('written=' + str(n))
import os
st = os.statvfs('/tmp')
print('tmp_size=' + str(st.f_blocks * st.f_frsize))
"
    assert_eq "$RC" 0 "$1: exit status"
    assert_eq "$(kv err)" ENOSPC "$1: filling /tmp"
    assert_le "$(kv written)" $((8 * 1024 * 1024)) "$1: bytes written"
    assert_le "$(kv tmp_size)" $((8 * 1024 * 1024)) "$1: size of /tmp"
    assert_eq "$(j .limits_enforced.disk)" true "$1: limits_enforced.disk"
    local leaked
    leaked=$(find /tmp /var/lib/containerd /run/containerd -xdev -name "fill-$TOKEN" 2>/dev/null | head -n 1)
    assert_eq "$leaked" "" "$1: the file must not exist on the host afterwards"
}
t_disk_fill_standard() { disk_fill standard; }
t_disk_fill_hardened() { disk_fill hardened; }

t_output_flood() {
    local p
    for p in standard hardened; do
        trx "$p" -t 20 -c '
import sys
chunk = "y" * 65535 + "\n"
for _ in range(1600):   # 100 MiB
    sys.stdout.write(chunk)
'
        assert_eq "$RC" 0 "$p: exit status"
        assert_eq "$(j .truncated.stdout)" true "$p: truncated.stdout"
        assert_le "$(j '.stdout | length')" $((1024 * 1024)) "$p: captured stdout (bytes)"
        assert_le "$RUN_MS" 15000 "$p: wall time without the boot (ms)"
    done
}

t_infinite_loop_timeout() {
    local p
    for p in standard hardened; do
        trx "$p" -t 1 -c 'while True: pass'
        assert_eq "$RC" 124 "$p: exit status"
        assert_eq "$(j .error.code)" timeout "$p: error code"
        assert_eq "$(j .limits_enforced.timeout)" true "$p: limits_enforced.timeout"
        assert_le "$RUN_MS" 6000 "$p: wall time without the boot (ms)"
    done
}

t_proc_and_sys_are_masked() {
    trx hardened -c '
import errno
for path in ["/proc/kcore", "/proc/keys", "/proc/timer_list", "/sys/firmware"]:
    try:
        import os
        if os.path.isdir(path):
            print(path + "=" + str(len(os.listdir(path))))
        else:
            print(path + "=" + str(len(open(path, "rb").read(16))))
    except OSError as e:
        print(path + "=" + errno.errorcode[e.errno])
for path in ["/proc/sys/kernel/hostname", "/proc/sysrq-trigger", "/sys/fs/cgroup/x"]:
    try:
        open(path, "w").write("x")
        print(path + "=written")
    except OSError as e:
        print(path + "=" + errno.errorcode[e.errno])
'
    assert_eq "$RC" 0 "exit status"
    # Masked means empty, or absent where this kernel has no such file.
    case "$(kv /proc/kcore)" in 0|ENOENT) ;; *) fail "/proc/kcore is readable: $(kv /proc/kcore)" ;; esac
    case "$(kv /proc/keys)" in 0|ENOENT) ;; *) fail "/proc/keys is readable: $(kv /proc/keys)" ;; esac
    assert_eq "$(kv /sys/firmware)" 0 "/sys/firmware is masked (empty)"
    assert_not_contains "$(j .stdout)" "=written" "writes to /proc/sys, sysrq, cgroupfs"
}

t_seccomp_profile_errors() {
    # A missing profile and a default-allow profile are refused, with
    # clear codes, before any container exists.
    trx hardened --seccomp /nonexistent/profile.json -c 'print(1)'
    assert_eq "$RC" 125 "missing profile: exit status"
    assert_eq "$(j .error.code)" invalid_request "missing profile: error code"
    assert_contains "$(j .error.message)" "/nonexistent/profile.json" "missing profile: message"
    echo '{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[]}' > "$WORK/allow.json"
    trx hardened --seccomp "$WORK/allow.json" -c 'print(1)'
    assert_eq "$RC" 125 "default-allow profile: exit status"
    assert_eq "$(j .error.code)" security_violation "default-allow profile: error code"
    # A valid profile that forbids mkdir: the snippet sees EPERM.
    python3 - "$WORK/nomkdir.json" <<'EOF'
import json, sys
# A permissive allowlist (everything python and sh use) without mkdir*.
names = """accept accept4 access arch_prctl bind brk capget capset chdir chmod chown clock_getres
clock_gettime clock_nanosleep close close_range connect dup dup2 dup3 epoll_create1 epoll_ctl
epoll_pwait epoll_wait eventfd2 execve exit exit_group faccessat faccessat2 fadvise64 fchdir
fchmod fchmodat fchown fchownat fcntl fdatasync flock fork fstat fstatfs fsync ftruncate futex
getcwd getdents64 getegid geteuid getgid getgroups getpeername getpgid getpgrp getpid getppid
getpriority getrandom getresgid getresuid getrlimit get_robust_list getrusage getsid getsockname
getsockopt gettid gettimeofday getuid ioctl kill listen lseek lstat madvise membarrier
mmap mprotect mremap munmap nanosleep newfstatat open openat pipe pipe2 poll ppoll prctl pread64
prlimit64 pselect6 pwrite64 read readlink readlinkat readv recvfrom recvmsg rename renameat
rseq rt_sigaction rt_sigprocmask rt_sigreturn sched_getaffinity sched_yield select sendmsg sendto
set_robust_list set_tid_address setsockopt sigaltstack socket socketpair stat statfs statx
sysinfo tgkill umask uname unlink unlinkat vfork wait4 waitid write writev clone clone3""".split()
json.dump({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1,
           "architectures": ["SCMP_ARCH_X86_64"],
           "syscalls": [{"names": names, "action": "SCMP_ACT_ALLOW"}]}, open(sys.argv[1], "w"))
EOF
    trx hardened --seccomp "$WORK/nomkdir.json" -c '
import os, errno
try:
    os.mkdir("/tmp/d"); print("mkdir=ok")
except OSError as e:
    print("mkdir=" + errno.errorcode[e.errno])
'
    assert_eq "$RC" 0 "custom profile: exit status"
    assert_eq "$(kv mkdir)" EPERM "custom profile: mkdir"
}

# The cases above run on containerd; cases/*.sh register their own.
for c in t_identity_standard t_identity_hardened t_environment_and_fds t_host_secret_file \
    t_network_host_loopback t_network_dev_reaches_host t_write_root t_nothing_persists \
    t_become_root_standard t_become_root_hardened t_privileged_calls_standard t_privileged_calls_hardened \
    t_fork_bomb_standard t_fork_bomb_hardened t_fork_bomb_shell t_memory_bomb_standard t_memory_bomb_hardened \
    t_disk_fill_standard t_disk_fill_hardened t_output_flood t_infinite_loop_timeout t_proc_and_sys_are_masked \
    t_seccomp_profile_errors; do
    register_case containerd "$c"
done
for f in "$here"/cases/*.sh; do
    [ -e "$f" ] || continue
    # shellcheck source=/dev/null
    . "$f"
done

# ---- run ------------------------------------------------------------------
for c in "${CASES[@]}"; do
    case "$c" in *"${TR_TEST_ONLY:-}"*) run_case "${c#t_}" "$c" ;; esac
done
if [ "$TESTS_RUN" = 0 ] && [ -z "${TR_TEST_ONLY:-}" ]; then
    echo "security: no case is registered for backend $BACKEND" >&2
    exit 1
fi

echo
if [ "$TESTS_FAILED" -gt 0 ]; then
    echo "security: $TESTS_FAILED of $TESTS_RUN cases FAILED: ${FAILED_NAMES[*]}"
    exit 1
fi
echo "security: all $TESTS_RUN cases passed"
