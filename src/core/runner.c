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
 * What the runners read on stdin: "<marker> <code length>\n", the code, and
 * then the snippet's own standard input (tr_request_set_stdin), which the
 * snippet reads as its stdin; EOF after it.  The runners read the first two
 * exactly (unbuffered: nothing of the snippet's input is consumed).
 *
 * The Python runner.  It takes the marker line off stdin, runs the snippet in
 * a fresh __main__-like globals dict, prints a traceback without its own
 * frame, and emits `__out` only after the snippet's threads ended and its
 * output was flushed, as "\n<marker><json>\n" (the newline makes the marker
 * start a line; the core strips both).  The value goes straight to fd 1, so
 * a snippet that replaced or closed sys.stdout still returns it.  A value the
 * host could not read (not JSON, a lone surrogate, an integer beyond 64
 * bits) is reported on stderr with exit status 1: the user reads why.
 */
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
        "def _tr_main():\n"
        "    head = b''\n"
        "    while not head.endswith(b'\\n'):\n"
        "        c = os.read(0, 1)\n"
        "        if not c:\n"
        "            break\n"
        "        head += c\n"
        "    mark, _, n = head.rstrip(b'\\n').partition(b' ')\n"
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
        "    return status\n"
        "def _tr_check_ints(v):\n"
        "    st = [v]\n"
        "    while st:\n"
        "        x = st.pop()\n"
        "        if type(x) is int and not -2**63 <= x < 2**63:\n"
        "            raise ValueError('integer %d does not fit in 64 bits' % x)\n"
        "        if isinstance(x, dict):\n"
        "            st.extend(x.values())\n"
        "        elif isinstance(x, (list, tuple)):\n"
        "            st.extend(x)\n"
        "sys.exit(_tr_main())\n";

/* The sh runner: read the marker line, then exactly the script (dd reads
 * the count in one full block: no byte of the snippet's input; the `x`
 * keeps trailing newlines that $(...) would strip), define
 * `trvalue` and eval the script.  `trvalue JSON...` writes its arguments
 * (joined by spaces, newlines turned into spaces so that an indented JSON
 * text stays one line) as the value line. */
static const char sh_runner[] = "IFS=' ' read -r __tr_m __tr_n\n"
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
                                "  printf '\\n%s%s%s\\n' \"$__tr_m\" \"$__tr_o\" \"$__tr_v\"\n"
                                "}\n"
                                "eval \"$__tr_code\"\n";

int tr__runner_argv(const tr_request *req, const char *python, const char *sh, char ***ret_argv, tr_error **ret_err) {
        _cleanup_strv_ char **argv = NULL;
        const char *lang = tr_request_effective_language(req);
        int r;
        if (streq(lang, "python"))
                r = (tr__strv_push(&argv, python ? python : "python3") < 0 || tr__strv_push(&argv, "-c") < 0 ||
                     tr__strv_push(&argv, python_runner) < 0)
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
        char head[128];
        int hl = snprintf(head, sizeof(head), "%s %zu\n", ex->marker, code_len);
        if (hl < 0 || (size_t) hl >= sizeof(head))
                return -EINVAL;
        char *d = malloc((size_t) hl + code_len + in_len + 1);
        if (!d)
                return -ENOMEM;
        memcpy(d, head, (size_t) hl);
        if (code_len)
                memcpy(d + hl, code, code_len);
        if (in_len)
                memcpy(d + hl + code_len, in, in_len);
        d[(size_t) hl + code_len + in_len] = '\0';
        *ret_data = d;
        *ret_len = (size_t) hl + code_len + in_len;
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
