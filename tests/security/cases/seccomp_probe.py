# SPDX-License-Identifier: Apache-2.0
# The seccomp probe: runs inside a sandbox (container or VM) and prints one
# JSON object, {probe: outcome}, for the syscalls the profiles decide on.
# Each probe runs in a forked child, so a call the filter answers by killing
# the caller (a foreign ABI) is reported as "SIGSYS" and the rest go on.
#
# Outcomes: "ok" (the call succeeded), an errno name ("EPERM", ...), or a
# signal name.  tests/security/cases/seccomp.sh compares them with what each
# profile must answer, and a container's with a VM's.
#
# Every call uses arguments that make it fail harmlessly should the filter
# let it through.
import ctypes
import errno
import json
import mmap
import os
import signal
import socket
import struct

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long

AF = {"AF_UNIX": 1, "AF_INET": 2, "AF_INET6": 10, "AF_NETLINK": 16, "AF_PACKET": 17, "AF_KEY": 15,
      "AF_RDS": 21, "AF_TIPC": 30, "AF_BLUETOOTH": 31, "AF_ALG": 38, "AF_VSOCK": 40, "AF_XDP": 44}
NETLINK = {"NETLINK_ROUTE": 0, "NETLINK_SOCK_DIAG": 4, "NETLINK_AUDIT": 9, "NETLINK_KOBJECT_UEVENT": 15,
           "NETLINK_GENERIC": 16}


def sys(nr, *args):
    """A raw syscall with 64-bit arguments; raises OSError on failure."""
    r = libc.syscall(ctypes.c_long(nr), *[ctypes.c_long(a) for a in args])
    if r == -1:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return r


def close_if_fd(r):
    if isinstance(r, int) and r >= 0:
        try:
            os.close(r)
        except OSError:
            pass


def in_child(fn):
    """Run fn() in a child; its outcome as a string."""
    rd, wr = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(rd)
        try:
            close_if_fd(fn())
            out = "ok"
        except OSError as e:
            out = errno.errorcode.get(e.errno, str(e.errno))
        except Exception as e:  # noqa: BLE001 - reported, not hidden
            out = "error:" + type(e).__name__
        os.write(wr, out.encode())
        os._exit(0)
    os.close(wr)
    _, status = os.waitpid(pid, 0)
    got = os.read(rd, 100).decode()
    os.close(rd)
    if os.WIFSIGNALED(status):
        return signal.Signals(os.WTERMSIG(status)).name
    return got or "exit:%d" % os.WEXITSTATUS(status)


# x86_64 syscall numbers.
NR = {"io_uring_setup": 425, "add_key": 248, "keyctl": 250, "perf_event_open": 298, "bpf": 321,
      "userfaultfd": 323, "socket": 41, "socketpair": 53, "ptrace": 101, "unshare": 272, "getpid": 39}
X32_BIT = 0x40000000


def p_io_uring():
    params = ctypes.create_string_buffer(120)
    return sys(NR["io_uring_setup"], 1, ctypes.addressof(params))


def p_add_key():
    # KEY_SPEC_PROCESS_KEYRING
    return sys(NR["add_key"], ctypes.addressof(ctypes.create_string_buffer(b"user")),
               ctypes.addressof(ctypes.create_string_buffer(b"tr-probe")),
               ctypes.addressof(ctypes.create_string_buffer(b"x")), 1, -2)


def p_keyctl():
    # KEYCTL_GET_KEYRING_ID of the session keyring, no create.
    return sys(NR["keyctl"], 0, -3, 0) and None


def p_perf():
    attr = ctypes.create_string_buffer(128)
    struct.pack_into("<IIQ", attr, 0, 1, 128, 0)  # PERF_TYPE_SOFTWARE, size, CPU_CLOCK
    return sys(NR["perf_event_open"], ctypes.addressof(attr), 0, -1, -1, 0)


def p_bpf():
    attr = ctypes.create_string_buffer(128)
    struct.pack_into("<IIII", attr, 0, 2, 4, 4, 1)  # BPF_MAP_TYPE_ARRAY, 4-byte key/value, 1 entry
    return sys(NR["bpf"], 0, ctypes.addressof(attr), 128)  # BPF_MAP_CREATE


def p_userfaultfd():
    return sys(NR["userfaultfd"], os.O_CLOEXEC)


def p_ptrace():
    return sys(NR["ptrace"], 0x4206, os.getppid(), 0, 0) and None  # PTRACE_SEIZE the parent


def p_socket(family, stype=socket.SOCK_DGRAM, proto=0):
    return lambda: sys(NR["socket"], family, stype | socket.SOCK_CLOEXEC, proto)


def p_socketpair(family):
    def run():
        fds = (ctypes.c_int * 2)()
        sys(NR["socketpair"], family, socket.SOCK_STREAM, 0, ctypes.addressof(fds))
        os.close(fds[0])
        os.close(fds[1])
    return run


def p_uevent_bind():
    """Open a uevent socket and join the kernel's broadcast group."""
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, 15)
    s.bind((0, 1))
    s.close()


def i386(code_fn):
    """Run 32-bit-ABI machine code (int 0x80) from a page below 4 GiB."""
    def run():
        MAP_32BIT = 0x40
        libc.mmap.restype = ctypes.c_void_p
        libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                              ctypes.c_long]
        page = libc.mmap(None, 4096, mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC,
                         mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | MAP_32BIT, -1, 0)
        if page is None or page == ctypes.c_void_p(-1).value:
            raise OSError(ctypes.get_errno(), "mmap")
        code = code_fn(page)
        ctypes.memmove(page, code, len(code))
        fn = ctypes.CFUNCTYPE(ctypes.c_int)(page)
        r = fn()
        if r < 0:
            raise OSError(-r, os.strerror(-r))
        return r
    return run


def int80(eax, ebx=0, ecx=0, edx=0):
    # push rbx; mov eax/ebx/ecx/edx, imm32; int 0x80; pop rbx; ret
    return (b"\x53" + b"\xb8" + struct.pack("<I", eax) + b"\xbb" + struct.pack("<I", ebx) +
            b"\xb9" + struct.pack("<I", ecx) + b"\xba" + struct.pack("<I", edx) + b"\xcd\x80\x5b\xc3")


def socketcall_vsock(page):
    # socketcall(SYS_SOCKET, args) with args = [AF_VSOCK, SOCK_STREAM, 0] at page+0x100
    args = page + 0x100
    ctypes.memmove(args, struct.pack("<III", 40, 1, 0), 12)
    return int80(102, 1, args)


PROBES = {
    "io_uring_setup": p_io_uring,
    "add_key": p_add_key,
    "keyctl": p_keyctl,
    "perf_event_open": p_perf,
    "bpf": p_bpf,
    "userfaultfd": p_userfaultfd,
    "ptrace": p_ptrace,
    "unshare_user": lambda: sys(NR["unshare"], 0x10000000) and None,
    "uevent_bind": p_uevent_bind,
    # The kernel truncates socket's int family to 32 bits; a filter that
    # compares 64 must not be fooled by 0x1_00000028 (AF_VSOCK).
    "socket_vsock_high_bits": p_socket(AF["AF_VSOCK"] | (1 << 32), socket.SOCK_STREAM),
    "socket_netlink_uevent_high_bits": p_socket(AF["AF_NETLINK"], socket.SOCK_DGRAM, 15 | (1 << 32)),
    "socket_inet_sctp": p_socket(AF["AF_INET"], socket.SOCK_STREAM, 132),
    "socket_inet_dccp": p_socket(AF["AF_INET"], 6, 33),
    "socket_inet_tcp": p_socket(AF["AF_INET"], socket.SOCK_STREAM, 0),
    "socketpair_unix": p_socketpair(AF["AF_UNIX"]),
    "socketpair_tipc": p_socketpair(AF["AF_TIPC"]),
    # The i386 ABI: socketcall and the direct socket(359), and a harmless
    # getpid(20) to show the whole ABI is refused; x32's getpid.
    "i386_socketcall_vsock": i386(socketcall_vsock),
    "i386_socket_vsock": i386(lambda page: int80(359, 40, 1, 0)),
    "i386_getpid": i386(lambda page: int80(20)),
    "x32_getpid": lambda: sys(X32_BIT | NR["getpid"]),
}
for name, fam in AF.items():
    if name != "AF_NETLINK":
        PROBES["socket_" + name] = p_socket(fam, socket.SOCK_STREAM if fam in (1, 2, 10, 40) else socket.SOCK_DGRAM)
for name, proto in NETLINK.items():
    PROBES["socket_AF_NETLINK_" + name] = p_socket(AF["AF_NETLINK"], socket.SOCK_DGRAM, proto)

print(json.dumps({k: in_child(fn) for k, fn in sorted(PROBES.items())}, sort_keys=True))
