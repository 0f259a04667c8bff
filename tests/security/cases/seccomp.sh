# SPDX-License-Identifier: Apache-2.0
# shellcheck shell=bash
# shellcheck disable=SC2016 # the snippets are single-quoted on purpose: they expand in the sandbox
#
# The seccomp policy, the same on both isolating backends: one probe
# (seccomp_probe.py) makes the calls each profile decides on — io_uring,
# keys, perf, bpf, userfaultfd, every interesting socket family and netlink
# protocol, the kernel's 32-bit truncation of socket's arguments, and the
# i386 (int 0x80: socketcall, socket, getpid) and x32 ABIs — in a container
# and in a VM; the answers must be the expected ones, and identical between
# the two.  Plus the host uevent attack, and a custom --seccomp profile that
# tries to reopen the 32-bit and socket doors.

# $here: the suite directory, set by run.sh.
SECCOMP_PROBE="${here:?}/cases/seccomp_probe.py"

# seccomp_probe PROFILE [exec options...]: run the probe; PROBE holds its
# JSON answers ({} when it printed none, after a failure is recorded).
seccomp_probe() {
    local profile=$1
    shift
    trx "$profile" -l python -t 120 "$@" "$SECCOMP_PROBE"
    assert_eq "$RC" 0 "probe ($profile on ${TRX_BACKEND:-$BACKEND}): exit status"
    PROBE=$(j .stdout)
    if ! printf '%s' "$PROBE" | jq -e 'type == "object"' >/dev/null 2>&1; then
        fail "probe printed no JSON object: $(printf '%.300s' "$PROBE") stderr: $(j .stderr | head -c 300)"
        PROBE='{}'
    fi
}

# seccomp_expect PROFILE: compare PROBE with what PROFILE must answer.
#   EPERM   the filter's answer (or the kernel's own refusal, same effect)
#   SIGSYS  a foreign ABI: the calling thread is killed before the call runs
#   ok      allowed, and the call works in any sandbox
#   kernel  allowed: the kernel answers, anything but EPERM or SIGSYS
seccomp_expect() {
    local bad
    bad=$(printf '%s' "$PROBE" | python3 -c '
import json, sys
profile, got = sys.argv[1], json.load(sys.stdin)
both = {
    "add_key": "EPERM", "keyctl": "EPERM", "perf_event_open": "EPERM", "bpf": "EPERM",
    "userfaultfd": "EPERM", "io_uring_setup": "EPERM", "unshare_user": "EPERM",
    "socket_AF_VSOCK": "EPERM", "socket_AF_ALG": "EPERM", "socket_AF_PACKET": "EPERM",
    "socket_AF_XDP": "EPERM", "socket_vsock_high_bits": "EPERM",
    "socket_netlink_uevent_high_bits": "EPERM", "socket_AF_NETLINK_NETLINK_KOBJECT_UEVENT": "EPERM",
    "uevent_bind": "EPERM",
    "i386_socketcall_vsock": "SIGSYS", "i386_socket_vsock": "SIGSYS", "i386_getpid": "SIGSYS",
    "x32_getpid": "SIGSYS",
    "socket_AF_UNIX": "ok", "socket_AF_INET": "ok", "socket_AF_INET6": "ok", "socket_inet_tcp": "ok",
    "socket_AF_NETLINK_NETLINK_ROUTE": "ok", "socketpair_unix": "ok",
}
# What containerd 2.x allows and hardened refuses.
differ = ["ptrace", "socket_AF_NETLINK_NETLINK_AUDIT", "socket_AF_NETLINK_NETLINK_GENERIC",
          "socket_AF_NETLINK_NETLINK_SOCK_DIAG", "socket_AF_TIPC", "socket_AF_RDS", "socket_AF_KEY",
          "socket_AF_BLUETOOTH", "socket_inet_sctp", "socket_inet_dccp", "socketpair_tipc"]
want = dict(both)
for k in differ:
    want[k] = "kernel" if profile == "standard" else "EPERM"
want["ptrace"] = "ok" if profile == "standard" else "EPERM"
bad = []
for k, w in sorted(want.items()):
    g = got.get(k)
    if (w == "kernel" and g in (None, "EPERM", "SIGSYS")) or (w != "kernel" and g != w):
        bad.append("%s=%s (want %s)" % (k, g, w))
missing = sorted(set(got) - set(want))
if missing:
    bad.append("unexpected probes: " + " ".join(missing))
print("; ".join(bad))
' "$1")
    [ -z "$bad" ] || fail "$1 seccomp answers: $bad"
}

# The answers of the backend under test, kept for the container-vs-VM case.
declare -A SECCOMP_ANSWERS=()

t_seccomp_probe_standard() {
    seccomp_probe standard
    seccomp_expect standard
    SECCOMP_ANSWERS[standard]=$PROBE
}

t_seccomp_probe_hardened() {
    seccomp_probe hardened
    seccomp_expect hardened
    SECCOMP_ANSWERS[hardened]=$PROBE
}

# The same probe gives the same answers, to the byte, in a container and in
# a VM of the same profile (issue 9: one policy for both backends).
t_seccomp_container_equals_vm() {
    if [ "$HAVE_CONTAINERD" != 1 ]; then
        [ "${CI:-}" = true ] && fail "no containerd to compare the VM with (TR_TEST_CONTAINERD_SOCKET)"
        note "SKIP: no containerd to compare the VM with"
        return 0
    fi
    local p vm ct
    for p in standard hardened; do
        vm=${SECCOMP_ANSWERS[$p]:-}
        if [ -z "$vm" ]; then
            seccomp_probe "$p"
            vm=$PROBE
        fi
        TRX_BACKEND=containerd seccomp_probe "$p"
        ct=$PROBE
        if [ "$(printf '%s' "$vm" | jq -S -c .)" != "$(printf '%s' "$ct" | jq -S -c .)" ]; then
            fail "$p: container and VM differ: $(jq -n -c --argjson a "$ct" --argjson b "$vm" \
                '[$a | keys[] as $k | select($a[$k] != $b[$k]) | "\($k): container \($a[$k]) vm \($b[$k])"]')"
        fi
    done
}

# The host's device events must not reach a sandbox: the uevent socket is
# refused; were it opened, a uevent the host triggers meanwhile must not
# arrive.
t_seccomp_uevent_from_host() {
    local p
    for p in standard hardened; do
        ( sleep 4
          for _ in 1 2 3 4 5 6; do
              echo change > /sys/devices/virtual/mem/null/uevent 2>/dev/null
              sleep 1
          done ) &
        local trigger=$!
        trx "$p" -t 60 -c '
import socket, time
try:
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, 15)
    s.bind((0, 1))
except OSError as e:
    import errno
    print("open=" + errno.errorcode[e.errno])
else:
    print("open=ok")
    s.settimeout(1.0)
    end, got = time.time() + 12, 0
    while time.time() < end:
        try:
            got += len(s.recv(65536)) > 0
        except socket.timeout:
            pass
    print("received=%d" % got)
'
        wait "$trigger" 2>/dev/null
        assert_eq "$RC" 0 "$p: exit status"
        assert_eq "$(kv open)" EPERM "$p: NETLINK_KOBJECT_UEVENT socket"
        [ -z "$(kv received)" ] || assert_eq "$(kv received)" 0 "$p: host uevents received"
    done
}

# A custom profile (hardened --seccomp) that allows every socket call and
# names the i386 and x32 ABIs reopens neither door: the native-ABI and
# socket layers are applied on top of it.
t_seccomp_custom_profile_layers() {
    python3 - "$WORK/seccomp-open.json" <<'EOF'
import json, sys
names = """accept accept4 access arch_prctl bind brk capget capset chdir chmod chown clock_getres
clock_gettime clock_nanosleep close close_range connect dup dup2 dup3 epoll_create1 epoll_ctl
epoll_pwait epoll_wait eventfd2 execve exit exit_group faccessat faccessat2 fadvise64 fchdir
fchmod fchmodat fchown fchownat fcntl fdatasync flock fork fstat fstatfs fsync ftruncate futex
getcwd getdents64 getegid geteuid getgid getgroups getpeername getpgid getpgrp getpid getppid
getpriority getrandom getresgid getresuid getrlimit get_robust_list getrusage getsid getsockname
getsockopt gettid gettimeofday getuid ioctl kill listen lseek lstat madvise membarrier mkdir
mmap mprotect mremap munmap nanosleep newfstatat open openat pipe pipe2 poll ppoll prctl pread64
prlimit64 pselect6 pwrite64 read readlink readlinkat readv recvfrom recvmsg rename renameat
rseq rt_sigaction rt_sigprocmask rt_sigreturn sched_getaffinity sched_yield select sendmsg sendto
set_robust_list set_tid_address setsockopt sigaltstack socket socketpair socketcall stat statfs
statx sysinfo tgkill umask uname unlink unlinkat vfork wait4 waitid write writev clone clone3""".split()
json.dump({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1,
           "archMap": [{"architecture": "SCMP_ARCH_X86_64",
                        "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]}],
           "syscalls": [{"names": names, "action": "SCMP_ACT_ALLOW"}]}, open(sys.argv[1], "w"))
EOF
    seccomp_probe hardened --seccomp "$WORK/seccomp-open.json"
    local k
    for k in i386_socketcall_vsock i386_socket_vsock i386_getpid x32_getpid; do
        assert_eq "$(printf '%s' "$PROBE" | jq -r ".$k")" SIGSYS "custom profile: $k"
    done
    for k in socket_AF_VSOCK socket_vsock_high_bits socket_AF_NETLINK_NETLINK_KOBJECT_UEVENT uevent_bind \
        socket_AF_TIPC socket_inet_sctp socketpair_tipc; do
        assert_eq "$(printf '%s' "$PROBE" | jq -r ".$k")" EPERM "custom profile: $k"
    done
    for k in socket_AF_UNIX socket_AF_INET socket_AF_NETLINK_NETLINK_ROUTE socketpair_unix; do
        assert_eq "$(printf '%s' "$PROBE" | jq -r ".$k")" ok "custom profile: $k"
    done
}

register_case "containerd kata" t_seccomp_probe_standard
register_case "containerd kata" t_seccomp_probe_hardened
register_case kata t_seccomp_container_equals_vm
register_case "containerd kata" t_seccomp_uevent_from_host
register_case "containerd kata" t_seccomp_custom_profile_layers
# With the guest filter in place this holds in a VM too.
register_case kata t_privileged_calls_hardened
