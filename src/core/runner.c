/* SPDX-License-Identifier: Apache-2.0 */
#include "core/runner.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "util/macros.h"
#include "util/strv.h"

/*
 * What the one-shot runners read on stdin: "<marker> <code length> <file
 * count>\n"; per input file (tr_request_add_file) "<path length> <data
 * length>\n", the path and the data, which the runner writes under its
 * working directory (the Python runner through _tr_walk; the sh runner,
 * whose sandbox is fresh and so holds no planted link, with mkdir -p and
 * dd); the code; then the snippet's own standard input
 * (tr_request_set_stdin), which the snippet reads as its stdin; EOF after
 * it.  The runners read everything before the stdin exactly (unbuffered:
 * nothing of the snippet's input is consumed).
 *
 * The Python runner.  It takes the marker line off stdin, runs the snippet in
 * a fresh __main__-like globals dict, prints a traceback without its own
 * frame, and emits `__out` only after the snippet's threads ended and its
 * output was flushed, as "\n<marker><json>\n" (the newline makes the marker
 * start a line; the core strips both).  The value goes straight to fd 1, so
 * a snippet that replaced or closed sys.stdout still returns it.  A value the
 * host could not read (not JSON, a lone surrogate, an integer beyond 64
 * bits) is reported on stderr with exit status 1: the user reads why.
 *
 * Both one-shot runners end with done lines once the snippet is over:
 * "\n<marker>#\n" on stderr, then "\n<marker>#STATUS\n" on stdout (after
 * the value line), so the host knows that every byte of output is in and
 * the exit status without waiting for the process to exit (plan.h:
 * tr__exec_done).  Python writes them after the snippet's non-daemon
 * threads, its atexit handlers (multiprocessing's joins among them) and a
 * flush, then leaves with os._exit: the interpreter's own teardown would
 * only cost time nobody waits for.  A snippet that dies by a signal, calls
 * os._exit or closes fd 1 or 2 writes none, and the host waits for the exit
 * as before.
 */
/* The one path walker of both Python runners (input files, session files):
 * `path` relative to the directory `home`, each component opened with
 * O_NOFOLLOW from its parent's fd (so a symlink anywhere fails ELOOP or
 * ENOTDIR instead of leading out), missing directories created when asked.
 * The same rules as tr__path_check: no "", ".", ".." component, no NUL.
 * Returns the parent directory's fd and the last component. */
/* The value's integer check, the same in the one-shot and the session
 * runner: JSON integers the host reads are 64-bit. */
#define PY_CHECK_INTS                                                              \
        "def _tr_check_ints(v):\n"                                                 \
        "    st = [v]\n"                                                           \
        "    while st:\n"                                                          \
        "        x = st.pop()\n"                                                   \
        "        if type(x) is int and not -2**63 <= x < 2**63:\n"                 \
        "            raise ValueError('integer %d does not fit in 64 bits' % x)\n" \
        "        if isinstance(x, dict):\n"                                        \
        "            st.extend(x.values())\n"                                      \
        "        elif isinstance(x, (list, tuple)):\n"                             \
        "            st.extend(x)\n"

#define PY_WALK                                                                                                        \
        "def _tr_walk(home, path, create):\n"                                                                          \
        "    parts = path.split(b'/')\n"                                                                               \
        "    if not path or b'\\0' in path or path.startswith(b'/') or any(c in (b'', b'.', b'..') for c in parts):\n" \
        "        raise OSError(22, 'refused path (absolute, or an empty, . or .. component)')\n"                       \
        "    d = os.open('.', os.O_RDONLY | os.O_DIRECTORY, dir_fd=home)\n"                                            \
        "    try:\n"                                                                                                   \
        "        for c in parts[:-1]:\n"                                                                               \
        "            fl = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW\n"                                              \
        "            try:\n"                                                                                           \
        "                n = os.open(c, fl, dir_fd=d)\n"                                                               \
        "            except FileNotFoundError:\n"                                                                      \
        "                if not create:\n"                                                                             \
        "                    raise\n"                                                                                  \
        "                try:\n"                                                                                       \
        "                    os.mkdir(c, 0o755, dir_fd=d)\n"                                                           \
        "                except FileExistsError:\n"                                                                    \
        "                    pass\n"                                                                                   \
        "                n = os.open(c, fl, dir_fd=d)\n"                                                               \
        "            os.close(d)\n"                                                                                    \
        "            d = n\n"                                                                                          \
        "    except BaseException:\n"                                                                                  \
        "        os.close(d)\n"                                                                                        \
        "        raise\n"                                                                                              \
        "    return d, parts[-1]\n"

static const char python_runner[] =
        "import sys, os\n"
        "def _tr_read(n):\n"
        "    b = b''\n"
        "    while len(b) < n:\n"
        "        c = os.read(0, n - len(b))\n"
        "        if not c:\n"
        "            break\n"
        "        b += c\n"
        "    return b\n"
        "def _tr_line():\n"
        "    head = b''\n"
        "    while not head.endswith(b'\\n'):\n"
        "        c = os.read(0, 1)\n"
        "        if not c:\n"
        "            break\n"
        "        head += c\n"
        "    return head.split()\n"
        "_tr_mark = [b'']\n" PY_WALK "def _tr_main():\n"
        "    mark, n, nf = (_tr_line() + [b'0', b'0'])[:3]\n"
        "    _tr_mark[0] = mark\n"
        "    home = os.open('.', os.O_RDONLY | os.O_DIRECTORY)\n"
        "    for _ in range(int(nf)):\n"
        "        pl, dl = _tr_line()\n"
        "        p = _tr_read(int(pl))\n"
        "        data = _tr_read(int(dl))\n"
        "        try:\n"
        "            d, name = _tr_walk(home, p, True)\n"
        "            try:\n"
        "                fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644, dir_fd=d)\n"
        "            finally:\n"
        "                os.close(d)\n"
        "            with os.fdopen(fd, 'wb') as f:\n"
        "                f.write(data)\n"
        "        except OSError as e:\n"
        "            os.write(2, ('toolruntime: input file %s: %s\\n' % (p.decode('utf-8', 'replace'), "
        "e.strerror)).encode())\n"
        "            return 1\n"
        "    os.close(home)\n"
        "    src = _tr_read(int(n or 0))\n"
        "    sys.argv = ['<snippet>'] + sys.argv[1:]\n"
        "    g = {'__name__': '__main__', '__builtins__': __builtins__}\n"
        "    status = 0\n"
        "    try:\n"
        "        exec(compile(src, '<snippet>', 'exec'), g)\n"
        "    except SystemExit as e:\n"
        "        if e.code is None:\n"
        "            status = 0\n"
        "        elif isinstance(e.code, int):\n"
        "            status = e.code & 0xff\n"
        "        else:\n"
        "            print(e.code, file=sys.stderr)\n"
        "            status = 1\n"
        "    except BaseException as e:\n"
        "        import traceback\n"
        "        traceback.print_exception(type(e), e, e.__traceback__.tb_next)\n"
        "        status = 1\n"
        "    th = sys.modules.get('threading')\n"
        "    if th:\n"
        "        for t in th.enumerate():\n"
        "            if t is not th.main_thread() and not t.daemon:\n"
        "                t.join()\n"
        "    for f in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):\n"
        "        try:\n"
        "            f.flush()\n"
        "        except Exception:\n"
        "            pass\n"
        "    if '__out' in g:\n"
        "        import json\n"
        "        try:\n"
        "            v = g['__out']\n"
        "            s = json.dumps(v, allow_nan=False, ensure_ascii=False, separators=(',', ':'))\n"
        "            b = s.encode('utf-8')\n"
        "            _tr_check_ints(v)\n"
        "        except (TypeError, ValueError, RecursionError) as e:\n"
        "            os.write(2, ('toolruntime: __out is not JSON-serialisable: %s\\n' % e).encode('utf-8', "
        "'replace'))\n"
        "            status = status or 1\n"
        "        else:\n"
        "            b = b'\\n' + mark + b + b'\\n'\n"
        "            while b:\n"
        "                b = b[os.write(1, b):]\n"
        "    return status\n" PY_CHECK_INTS "def _tr_done(status):\n"
        "    mark = _tr_mark[0]\n"
        "    if not mark:\n"
        "        return status\n"
        "    try:\n"
        "        import atexit\n"
        "        atexit._run_exitfuncs()\n"
        "    except BaseException:\n"
        "        pass\n"
        "    for f in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):\n"
        "        try:\n"
        "            f.flush()\n"
        "        except Exception:\n"
        "            pass\n"
        "    try:\n"
        "        os.write(2, b'\\n' + mark + b'#\\n')\n"
        "        os.write(1, b'\\n' + mark + b'#%d\\n' % status)\n"
        "    except OSError:\n"
        "        return status\n"
        "    os._exit(status)\n"
        "sys.exit(_tr_done(_tr_main()))\n";

/*
 * The session runner (tr_exec_session): one Python interpreter serving
 * commands on stdin until EOF, its state (the snippet's globals) kept from
 * one execution to the next.  It keeps the command pipe on a private fd and
 * points fd 0 at /dev/null, so a snippet reading stdin cannot eat commands.
 * Commands (one header line, then exact byte counts; see session.c):
 *
 *   x VALMARK ENDMARK CODELEN STDINLEN\n CODE STDIN
 *       run CODE with sys.stdin reading STDIN; `__out` is removed from the
 *       globals first and sent after the run as the one-shot runner does
 *       ("\n" VALMARK JSON "\n"); then "\n" ENDMARK STATUS "\n" on stdout and
 *       "\n" ENDMARK "\n" on stderr: the host splits the streams there.
 *       SIGINT raises KeyboardInterrupt only while the snippet (and the
 *       join of its threads) runs; elsewhere it is ignored, so an interrupt
 *       that arrives late cannot kill the runner.  The SDK's tool gateway
 *       connection (toolruntime.tools) to a unix socket is closed first:
 *       each execution has its own gateway session there, and the SDK
 *       reconnects on first use (an inherited "fd:" stream stays open; the
 *       backend serves it per execution).
 *   p ENDMARK PATHLEN\n PATH
 *       upload: answers "\n" ENDMARK "go\n" (or "err ERRNO TEXT\n"), then
 *       reads chunks "LEN\n" DATA until "0\n" (commit: the temporary file is
 *       renamed over PATH) or "-1\n" (abort); answers "ok" or "err ...".
 *       A write error (ENOSPC) is remembered and the rest consumed.
 *   g ENDMARK PATHLEN\n PATH
 *       download: "\n" ENDMARK "size N\n" and exactly N raw bytes (a file
 *       that shrank meanwhile is padded with zeros), or "err ERRNO TEXT".
 *
 * Answers are single os.write()s, so a snippet's own output never splits
 * them; the "\n" before each marker makes it start a line, and the host
 * strips it (like the value line).
 */
static const char python_session_runner[] =
        "import sys, os, io, signal\n"
        "def _tr_noop(s, f):\n"
        "    pass\n"
        "signal.signal(signal.SIGINT, _tr_noop)\n"
        "_tr_cmd = os.dup(0)\n"
        "_tr_n = os.open('/dev/null', os.O_RDONLY)\n"
        "os.dup2(_tr_n, 0)\n"
        "os.close(_tr_n)\n"
        "_tr_home = os.open('.', os.O_RDONLY | os.O_DIRECTORY)\n"
        "_tr_buf = bytearray()\n"
        "_tr_g = {'__name__': '__main__', '__builtins__': __builtins__}\n"
        "def _tr_fill():\n"
        "    c = os.read(_tr_cmd, 65536)\n"
        "    if not c:\n"
        "        os._exit(0)\n"
        "    _tr_buf.extend(c)\n"
        "def _tr_line():\n"
        "    while b'\\n' not in _tr_buf:\n"
        "        _tr_fill()\n"
        "    i = _tr_buf.index(b'\\n')\n"
        "    l = bytes(_tr_buf[:i])\n"
        "    del _tr_buf[:i + 1]\n"
        "    return l.split()\n"
        "def _tr_read(n):\n"
        "    while len(_tr_buf) < n:\n"
        "        _tr_fill()\n"
        "    b = bytes(_tr_buf[:n])\n"
        "    del _tr_buf[:n]\n"
        "    return b\n"
        "def _tr_put_all(fd, b):\n"
        "    while b:\n"
        "        b = b[os.write(fd, b):]\n"
        "def _tr_say(end, s):\n"
        "    _tr_put_all(1, b'\\n' + end + s + b'\\n')\n"
        "def _tr_err(end, e):\n"
        "    _tr_say(end, b'err %d %s' % (e.errno or 5, (e.strerror or str(e)).encode('utf-8', 'replace')))\n" PY_WALK
        "def _tr_join(before):\n"
        "    th = sys.modules.get('threading')\n"
        "    if th:\n"
        "        for t in th.enumerate():\n"
        "            if t is not th.main_thread() and not t.daemon and t not in before:\n"
        "                t.join()\n"
        "def _tr_run(src):\n"
        "    th = sys.modules.get('threading')\n"
        "    before = set(th.enumerate()) if th else set()\n"
        "    try:\n"
        "        signal.signal(signal.SIGINT, signal.default_int_handler)\n"
        "        exec(compile(src, '<snippet>', 'exec'), _tr_g)\n"
        "        _tr_join(before)\n"
        "    finally:\n"
        "        signal.signal(signal.SIGINT, _tr_noop)\n"
        "def _tr_exec(mark, end, src, data):\n"
        "    _tr_g.pop('__out', None)\n"
        "    m = sys.modules.get('toolruntime.tools')\n"
        "    gw = getattr(m, '_gateway', None)\n"
        "    if gw is not None and os.environ.get('TOOLRUNTIME_GATEWAY', '').startswith('unix:'):\n"
        "        try:\n"
        "            gw.close()\n"
        "        except Exception:\n"
        "            pass\n"
        "    sys.stdin = io.TextIOWrapper(io.BytesIO(data), encoding='utf-8', errors='surrogateescape')\n"
        "    status = 0\n"
        "    try:\n"
        "        _tr_run(src)\n"
        "    except SystemExit as e:\n"
        "        if e.code is None:\n"
        "            status = 0\n"
        "        elif isinstance(e.code, int):\n"
        "            status = e.code & 0xff\n"
        "        else:\n"
        "            print(e.code, file=sys.stderr)\n"
        "            status = 1\n"
        "    except BaseException as e:\n"
        "        signal.signal(signal.SIGINT, _tr_noop)\n"
        "        import traceback\n"
        "        tb = e.__traceback__\n"
        "        while tb is not None and tb.tb_frame.f_code.co_filename != '<snippet>':\n"
        "            tb = tb.tb_next\n"
        "        traceback.print_exception(type(e), e, tb)\n"
        "        status = 1\n"
        "    for f in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):\n"
        "        try:\n"
        "            f.flush()\n"
        "        except Exception:\n"
        "            pass\n"
        "    b = b''\n"
        "    if '__out' in _tr_g:\n"
        "        import json\n"
        "        try:\n"
        "            v = _tr_g['__out']\n"
        "            s = json.dumps(v, allow_nan=False, ensure_ascii=False, separators=(',', ':'))\n"
        "            _tr_check_ints(v)\n"
        "            b = b'\\n' + mark + s.encode('utf-8') + b'\\n'\n"
        "        except (TypeError, ValueError, RecursionError) as e:\n"
        "            _tr_put_all(2, ('toolruntime: __out is not JSON-serialisable: %s\\n' % e).encode('utf-8', "
        "'replace'))\n"
        "            status = status or 1\n"
        "    _tr_put_all(2, b'\\n' + end + b'\\n')\n"
        "    _tr_put_all(1, b + b'\\n' + end + b'%d\\n' % status)\n" PY_CHECK_INTS "def _tr_upload(end, path):\n"
        "    import stat\n"
        "    tmp = b'.tr-upload-' + os.urandom(8).hex().encode()\n"
        "    try:\n"
        "        d, name = _tr_walk(_tr_home, path, True)\n"
        "    except OSError as e:\n"
        "        return _tr_err(end, e)\n"
        "    try:\n"
        "        if stat.S_ISLNK(os.lstat(name, dir_fd=d).st_mode):\n"
        "            raise OSError(40, 'the target is a symlink')\n"
        "    except FileNotFoundError:\n"
        "        pass\n"
        "    except OSError as e:\n"
        "        os.close(d)\n"
        "        return _tr_err(end, e)\n"
        "    try:\n"
        "        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644, dir_fd=d)\n"
        "    except OSError as e:\n"
        "        os.close(d)\n"
        "        return _tr_err(end, e)\n"
        "    _tr_say(end, b'go')\n"
        "    err = None\n"
        "    while True:\n"
        "        n = int(_tr_line()[0])\n"
        "        if n <= 0:\n"
        "            break\n"
        "        c = _tr_read(n)\n"
        "        if err is None:\n"
        "            try:\n"
        "                _tr_put_all(fd, c)\n"
        "            except OSError as e:\n"
        "                err = e\n"
        "    os.close(fd)\n"
        "    if n == 0 and err is None:\n"
        "        try:\n"
        "            os.rename(tmp, name, src_dir_fd=d, dst_dir_fd=d)\n"
        "        except OSError as e:\n"
        "            err = e\n"
        "    if n != 0 or err is not None:\n"
        "        try:\n"
        "            os.unlink(tmp, dir_fd=d)\n"
        "        except OSError:\n"
        "            pass\n"
        "    os.close(d)\n"
        "    if err is not None:\n"
        "        return _tr_err(end, err)\n"
        "    _tr_say(end, b'ok' if n == 0 else b'aborted')\n"
        "def _tr_download(end, path):\n"
        "    import stat\n"
        "    try:\n"
        "        d, name = _tr_walk(_tr_home, path, False)\n"
        "        try:\n"
        "            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=d)\n"
        "        finally:\n"
        "            os.close(d)\n"
        "    except OSError as e:\n"
        "        return _tr_err(end, e)\n"
        "    st = os.fstat(fd)\n"
        "    if not stat.S_ISREG(st.st_mode):\n"
        "        os.close(fd)\n"
        "        return _tr_err(end, OSError(21, 'not a regular file'))\n"
        "    left = st.st_size\n"
        "    _tr_say(end, b'size %d' % left)\n"
        "    while left > 0:\n"
        "        try:\n"
        "            c = os.read(fd, min(left, 65536))\n"
        "        except OSError:\n"
        "            c = b''\n"
        "        if not c:\n"
        "            c = bytes(min(left, 65536))\n"
        "        _tr_put_all(1, c)\n"
        "        left -= len(c)\n"
        "    os.close(fd)\n"
        "while True:\n"
        "    h = _tr_line()\n"
        "    if h[0] == b'x':\n"
        "        src = _tr_read(int(h[3]))\n"
        "        _tr_exec(h[1], h[2], src, _tr_read(int(h[4])))\n"
        "    elif h[0] == b'p':\n"
        "        _tr_upload(h[1], _tr_read(int(h[2])))\n"
        "    elif h[0] == b'g':\n"
        "        _tr_download(h[1], _tr_read(int(h[2])))\n"
        "    else:\n"
        "        os._exit(2)\n";

/* The sh runner: read the marker line, then exactly the script (dd reads
 * the count in one full block: no byte of the snippet's input; the `x`
 * keeps trailing newlines that $(...) would strip), define
 * `trvalue` and eval the script in a subshell, so that its `exit` and its
 * EXIT trap end there and the done lines still follow all of its output.  `trvalue JSON...` writes its arguments
 * (joined by spaces, newlines turned into spaces so that an indented JSON
 * text stays one line) as the value line. */
static const char sh_runner[] =
        "IFS=' ' read -r __tr_m __tr_n __tr_f\n"
        "__tr_i=0\n"
        "while [ \"$__tr_i\" -lt \"${__tr_f:-0}\" ]; do\n"
        "  IFS=' ' read -r __tr_pl __tr_dl\n"
        "  __tr_p=$(dd bs=\"$__tr_pl\" count=1 iflag=fullblock 2>/dev/null; echo x)\n"
        "  __tr_p=${__tr_p%x}\n"
        "  mkdir -p -- \"$(dirname -- \"$__tr_p\")\" && if [ \"$__tr_dl\" -gt 0 ]; then\n"
        "    dd bs=\"$__tr_dl\" count=1 iflag=fullblock of=\"$__tr_p\" 2>/dev/null\n"
        "  else : >\"$__tr_p\"; fi || { echo \"toolruntime: input file $__tr_p\" >&2; exit 1; }\n"
        "  __tr_i=$((__tr_i + 1))\n"
        "done\n"
        "__tr_code=\n"
        "[ \"$__tr_n\" -gt 0 ] && __tr_code=$(dd bs=\"$__tr_n\" count=1 iflag=fullblock "
        "2>/dev/null; echo x) && __tr_code=${__tr_code%x}\n"
        "trvalue() {\n"
        "  __tr_v=$*; __tr_o=\n"
        "  while :; do\n"
        "    case $__tr_v in\n"
        "    *'\n'*) __tr_o=$__tr_o${__tr_v%%'\n'*}' '; __tr_v=${__tr_v#*'\n'};;\n"
        "    *) break;;\n"
        "    esac\n"
        "  done\n"
        "  case $__tr_o$__tr_v in '#'*) echo 'trvalue: not JSON' >&2; return 1;; esac\n"
        "  printf '\\n%s%s%s\\n' \"$__tr_m\" \"$__tr_o\" \"$__tr_v\"\n"
        "}\n"
        "(eval \"$__tr_code\")\n"
        "__tr_s=$?\n"
        "printf '\\n%s#\\n' \"$__tr_m\" >&2\n"
        "printf '\\n%s#%d\\n' \"$__tr_m\" \"$__tr_s\"\n"
        "exit $__tr_s\n";

/* What a one-shot Python runner prepared ahead of its code (a pool's)
 * does while it waits: the imports and code paths an execution then needs
 * (the value's json, a compile), paid for before the request instead of on
 * it.  Under TCG in a microVM `import json` alone costs about 300 ms;
 * natively about 10 ms of CPU, which each pooled sandbox now spends whether
 * its snippet sets `__out` or not.  traceback (an error's, about as
 * costly) is left to the executions that fail. */
#define PY_PREWARM                                                                      \
        "import json, atexit\n"                                                         \
        "json.dumps({'a': [1, 2.5, 'x', None]}, allow_nan=False, ensure_ascii=False)\n" \
        "exec(compile('_tr_w = [1]', '<warm>', 'exec'), {})\n"

int tr__runner_argv(const tr_exec *ex, const char *python, const char *sh, char ***ret_argv, tr_error **ret_err) {
        const tr_request *req = ex->req;
        _cleanup_strv_ char **argv = NULL;
        const char *lang = tr_request_effective_language(req);
        int r;
        if (req->session && !streq(lang, "python"))
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_NONE, "runner",
                                    "sessions run Python only, not '%s'", lang);
        if (streq(lang, "python"))
                r = (tr__strv_push(&argv, python ? python : "python3") < 0 || tr__strv_push(&argv, "-c") < 0 ||
                     (req->session ? tr__strv_push(&argv, python_session_runner)
                                   : tr__strv_pushf(&argv, "%s%s", ex->ahead ? PY_PREWARM : "", python_runner)) < 0)
                            ? -ENOMEM
                            : 0;
        else if (streq(lang, "sh"))
                r = (tr__strv_push(&argv, sh ? sh : "/bin/sh") < 0 || tr__strv_push(&argv, "-c") < 0 ||
                     tr__strv_push(&argv, sh_runner) < 0)
                            ? -ENOMEM
                            : 0;
        else
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_NONE, "runner", "unknown language '%s'",
                                    lang);
        /* The snippet's arguments follow: python -c puts them in
         * sys.argv[1:]; sh -c takes the first as $0, so name it first. */
        if (r >= 0 && streq(lang, "sh") && tr__strv_push(&argv, "sh") < 0)
                r = -ENOMEM;
        for (size_t i = 0; r >= 0 && i < tr_request_arg_count(req); i++)
                if (tr__strv_push(&argv, tr_request_arg_at(req, i)) < 0)
                        r = -ENOMEM;
        if (r < 0)
                return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, "runner", "out of memory");
        *ret_argv = TAKE_PTR(argv);
        return 0;
}

int tr__runner_stdin(const tr_exec *ex, char **ret_data, size_t *ret_len) {
        size_t code_len = 0, in_len = 0;
        const char *code = tr_request_code(ex->req, &code_len);
        const char *in = tr_request_stdin(ex->req, &in_len);
        size_t nf = tr_request_file_count(ex->req);
        char head[128];
        int hl = snprintf(head, sizeof(head), "%s %zu %zu\n", ex->marker, code_len, nf);
        if (hl < 0 || (size_t) hl >= sizeof(head))
                return -EINVAL;
        /* Each file's header line is at most 2 * 20 digits, a space and a
         * newline. */
        size_t total = (size_t) hl + code_len + in_len + nf * 48;
        for (size_t i = 0; i < nf; i++)
                total += strlen(ex->req->files[i].path) + ex->req->files[i].len;
        char *d = malloc(total + 1);
        if (!d)
                return -ENOMEM;
        char *p = mempcpy(d, head, (size_t) hl);
        for (size_t i = 0; i < nf; i++) {
                const tr__req_file *f = &ex->req->files[i];
                size_t pl = strlen(f->path);
                p += snprintf(p, 48, "%zu %zu\n", pl, f->len);
                p = mempcpy(p, f->path, pl);
                if (f->len)
                        p = mempcpy(p, f->data, f->len);
        }
        if (code_len)
                p = mempcpy(p, code, code_len);
        if (in_len)
                p = mempcpy(p, in, in_len);
        *p = '\0';
        *ret_data = d;
        *ret_len = (size_t) (p - d);
        return 0;
}

static const char *const base_env[] = {
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "LANG=C.UTF-8",
        "HOME=/tmp",
        "PYTHONUNBUFFERED=1",
        "PYTHONDONTWRITEBYTECODE=1",
        NULL,
};

const char *const *tr__runner_base_env(void) {
        return base_env;
}
