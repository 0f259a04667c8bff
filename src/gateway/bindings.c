/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The typed-binding generator: Python source (a module, a .pyi stub, or
 * compact signatures) from the tools' JSON Schemas, on the host.
 *
 * Schemas, names and descriptions come from tool sources and are untrusted.
 * Nothing of them is ever pasted into the output as code: every identifier
 * (module, function, parameter, type name) is rebuilt from [A-Za-z0-9_],
 * kept clear of keywords, builtins and the generator's own names (which all
 * start with '_'), and made unique; every text (descriptions, property keys,
 * enum values, the schema itself) is emitted as a JSON string literal, which
 * is also a valid Python string literal.  Sizes are bounded: nesting depth,
 * properties, enum values and union members are capped, and so is the
 * output.
 */
#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "toolruntime.h"
#include "util/macros.h"

/* The module must fit in one gateway reply with its envelope. */
#define MAX_MODULE  (1024 * 1024 - 8192)
#define MAX_OUTPUT  (8 * 1024 * 1024)
#define MAX_IDENT   64
#define MAX_DEPTH   3
#define MAX_PROPS   128
#define MAX_ENUM    64
#define MAX_UNION   16
#define MAX_NAMES   4096
#define MAX_DOC     4096
#define SIG_DOC_LEN 100

static const char *const reserved[] = {
        /* keywords (and soft keywords) */
        "False", "None", "True", "and", "as", "assert", "async", "await", "break", "class", "continue", "def", "del",
        "elif", "else", "except", "finally", "for", "from", "global", "if", "import", "in", "is", "lambda", "nonlocal",
        "not", "or", "pass", "raise", "return", "try", "while", "with", "yield", "match", "case", "type",
        /* builtins the generated code names in annotations */
        "str", "int", "float", "bool", "list", "dict", "object", "print", "len", "isinstance"
};

typedef struct names {
        char *v[MAX_NAMES];
        size_t n;
} names;

static void names_done(names *s) {
        for (size_t i = 0; i < s->n; i++)
                free(s->v[i]);
        s->n = 0;
}

static bool names_has(const names *s, const char *x) {
        for (size_t i = 0; i < s->n; i++)
                if (streq(s->v[i], x))
                        return true;
        return false;
}

/* A Python identifier from untrusted text: ASCII letters, digits and '_'
 * only, not starting with a digit or '_' (the generator's names start with
 * '_'), no keyword or builtin, at most MAX_IDENT bytes; unique within `used`
 * (a suffix _2, _3, ... when taken).  NULL when out of memory or names. */
static char *ident(const char *s, const char *fallback, names *used) {
        char base[MAX_IDENT + 16];
        size_t n = 0;
        for (const char *p = s ? s : ""; *p && n < MAX_IDENT; p++)
                base[n++] = isalnum((unsigned char) *p) && !((unsigned char) *p & 0x80) ? *p : '_';
        base[n] = 0;
        if (n == 0 || base[0] == '_' || isdigit((unsigned char) base[0])) {
                char tmp[MAX_IDENT + 16];
                snprintf(tmp, sizeof(tmp), "%s%s", fallback, n && base[0] != '_' ? "_" : "");
                size_t k = strlen(tmp);
                snprintf(tmp + k, sizeof(tmp) - k, "%.*s", MAX_IDENT, base);
                memcpy(base, tmp, sizeof(base));
        }
        for (size_t i = 0; i < ARRAY_SIZE(reserved); i++)
                if (streq(base, reserved[i])) {
                        memcpy(base + strlen(base), "_", 2);
                        break;
                }
        char cand[MAX_IDENT + 32];
        snprintf(cand, sizeof(cand), "%s", base);
        for (int k = 2; used && names_has(used, cand); k++)
                snprintf(cand, sizeof(cand), "%s_%d", base, k);
        if (used && used->n >= MAX_NAMES)
                return NULL;
        char *d = strdup(cand);
        if (d && used)
                used->v[used->n++] = strdup(d);
        return d;
}

/* A JSON value as a Python literal: strings, numbers, true/false/null. */
static char *py_literal(json_t *v) {
        if (json_is_true(v))
                return strdup("True");
        if (json_is_false(v))
                return strdup("False");
        if (json_is_null(v))
                return strdup("None");
        if (json_is_string(v) || json_is_integer(v) || json_is_real(v))
                /* A JSON string literal is a Python one (jansson never
                 * escapes '/' unless asked). */
                return json_dumps(v, JSON_ENCODE_ANY);
        return NULL;
}

static char *str_literal(const char *s) {
        json_t *j = json_string(s ? s : "");
        char *r = j ? json_dumps(j, JSON_ENCODE_ANY) : NULL;
        json_decref(j);
        return r;
}

typedef struct gen {
        FILE *types;   /* TypedDict definitions, emitted before the functions */
        names *used;   /* module-level names */
        const char *t; /* prefix of typing names: "_t." or "" */
        bool sig;      /* compact signatures */
        bool stub;     /* a .pyi: no bodies */
        int err;
} gen;

static char *type_of(gen *g, json_t *schema, const char *base, int depth);

static char *join_union(gen *g, json_t *arr, const char *base, int depth) {
        _cleanup_free_ char *acc = NULL;
        size_t n = 0;
        size_t i;
        json_t *m;
        json_array_foreach(arr, i, m) {
                if (i >= MAX_UNION)
                        return strdup(g->sig ? "Any" : "_t.Any");
                _cleanup_free_ char *ti = type_of(g, m, base, depth + 1);
                if (!ti)
                        return NULL;
                char *next = NULL;
                if (asprintf(&next, "%s%s%s", acc ? acc : "", acc ? ", " : "", ti) < 0)
                        return NULL;
                free(acc);
                acc = next;
                n++;
        }
        if (n == 0)
                return strdup(g->sig ? "Any" : "_t.Any");
        if (n == 1)
                return TAKE_PTR(acc);
        char *r = NULL;
        return asprintf(&r, "%sUnion[%s]", g->t, acc) < 0 ? NULL : r;
}

static char *simple_type(gen *g, const char *ty, json_t *schema, const char *base, int depth) {
        char *r = NULL;
        if (streq(ty, "string"))
                return strdup("str");
        if (streq(ty, "integer"))
                return strdup("int");
        if (streq(ty, "number"))
                return strdup("float");
        if (streq(ty, "boolean"))
                return strdup("bool");
        if (streq(ty, "null"))
                return strdup("None");
        if (streq(ty, "array")) {
                json_t *items = json_object_get(schema, "items");
                _cleanup_free_ char *it =
                        json_is_object(items) ? type_of(g, items, base, depth + 1) : strdup(g->sig ? "Any" : "_t.Any");
                return it && asprintf(&r, "%sList[%s]", g->t, it) >= 0 ? r : NULL;
        }
        if (streq(ty, "object")) {
                json_t *props = json_object_get(schema, "properties");
                if (g->sig || !json_is_object(props) || json_object_size(props) == 0 || depth >= MAX_DEPTH ||
                    json_object_size(props) > MAX_PROPS)
                        return asprintf(&r, "%sDict[str, %sAny]", g->t, g->t) < 0 ? NULL : r;
                /* A TypedDict in functional form: keys stay the schema's
                 * own (quoted) strings, whatever characters they hold. */
                _cleanup_free_ char *name = ident(base, "T", g->used);
                _cleanup_free_ char *qname = str_literal(name);
                if (!name || !qname)
                        return NULL;
                _cleanup_free_ char *body = NULL;
                size_t blen = 0;
                FILE *b = open_memstream(&body, &blen);
                if (!b)
                        return NULL;
                const char *k;
                json_t *ps;
                json_object_foreach(props, k, ps) {
                        _cleanup_free_ char *qk = str_literal(k);
                        char sub[MAX_IDENT * 2 + 8];
                        snprintf(sub, sizeof(sub), "%.*s_%.*s", MAX_IDENT, name, MAX_IDENT, k);
                        _cleanup_free_ char *tk = type_of(g, ps, sub, depth + 1);
                        if (!qk || !tk) {
                                fclose(b);
                                return NULL;
                        }
                        fprintf(b, "%s: %s, ", qk, tk);
                }
                fclose(b);
                fprintf(g->types, "%s = _t.TypedDict(%s, {%s}, total=False)\n", name, qname, body ? body : "");
                return TAKE_PTR(name);
        }
        return strdup(g->sig ? "Any" : "_t.Any");
}

/* The Python annotation for a schema, defining TypedDicts on the way. */
static char *type_of(gen *g, json_t *schema, const char *base, int depth) {
        char *r = NULL;
        if (!json_is_object(schema) || depth > MAX_DEPTH + 2)
                return strdup(g->sig ? "Any" : "_t.Any");
        json_t *en = json_object_get(schema, "enum"), *cst = json_object_get(schema, "const");
        if ((json_is_array(en) && json_array_size(en) > 0 && json_array_size(en) <= MAX_ENUM) || cst) {
                json_t *vals = cst ? json_pack("[O]", cst) : json_incref(en);
                _cleanup_free_ char *acc = NULL;
                size_t i;
                json_t *v;
                bool ok = vals != NULL;
                json_array_foreach(vals, i, v) {
                        _cleanup_free_ char *lit = py_literal(v);
                        char *next = NULL;
                        if (!lit || asprintf(&next, "%s%s%s", acc ? acc : "", acc ? ", " : "", lit) < 0) {
                                ok = false;
                                break;
                        }
                        free(acc);
                        acc = next;
                }
                json_decref(vals);
                if (ok && acc)
                        return asprintf(&r, "%sLiteral[%s]", g->t, acc) < 0 ? NULL : r;
        }
        json_t *ty = json_object_get(schema, "type");
        if (json_is_string(ty))
                return simple_type(g, json_string_value(ty), schema, base, depth);
        if (json_is_array(ty)) {
                json_t *alts = json_array();
                size_t i;
                json_t *t1;
                json_array_foreach(ty, i, t1) {
                        json_t *sub = json_deep_copy(schema);
                        json_object_set(sub, "type", t1);
                        json_array_append_new(alts, sub);
                }
                char *u = join_union(g, alts, base, depth);
                json_decref(alts);
                return u;
        }
        json_t *any = json_object_get(schema, "anyOf");
        if (!json_is_array(any))
                any = json_object_get(schema, "oneOf");
        if (json_is_array(any))
                return join_union(g, any, base, depth);
        if (json_is_object(json_object_get(schema, "properties")))
                return simple_type(g, "object", schema, base, depth);
        return strdup(g->sig ? "Any" : "_t.Any");
}

static char *camel(const char *fn, const char *suffix) {
        char buf[MAX_IDENT + 32];
        size_t n = 0;
        bool up = true;
        for (const char *p = fn; *p && n < MAX_IDENT; p++) {
                if (*p == '_') {
                        up = true;
                        continue;
                }
                buf[n++] = up ? (char) toupper((unsigned char) *p) : *p;
                up = false;
        }
        snprintf(buf + n, sizeof(buf) - n, "%s", suffix);
        return strdup(buf);
}

/* The first line of a text, at most `max` bytes, cut on a UTF-8 boundary. */
static char *first_line(const char *s, size_t max) {
        size_t n = strcspn(s ? s : "", "\r\n");
        if (n > max) {
                n = max;
                while (n > 0 && ((unsigned char) s[n] & 0xC0) == 0x80)
                        n--;
        }
        return strndup(s ? s : "", n);
}

/* The parameter list, the call's argument dict and the docstring's Args
 * section of one tool (three malloc()ed strings). */
static int gen_params(gen *g, json_t *in, const char *abase, char **ret_params, char **ret_call, char **ret_doc) {
        char *params = NULL, *call = NULL, *args_doc = NULL;
        size_t plen = 0, clen = 0, alen = 0;
        json_t *props = json_object_get(in, "properties");
        json_t *req = json_object_get(in, "required");
        FILE *pf = open_memstream(&params, &plen), *cf = open_memstream(&call, &clen),
             *af = open_memstream(&args_doc, &alen);
        if (!pf || !cf || !af) {
                if (pf)
                        fclose(pf);
                if (cf)
                        fclose(cf);
                if (af)
                        fclose(af);
                free(params);
                free(call);
                free(args_doc);
                return -ENOMEM;
        }
        names pnames = { .n = 0 };
        const char *k;
        json_t *ps;
        size_t np = 0;
        /* Required parameters first (a keyword-only list may mix them, but
         * the order reads better), then the optional ones. */
        for (int pass = 0; pass < 2 && json_is_object(props); pass++) {
                json_object_foreach(props, k, ps) {
                        bool required = false;
                        size_t i;
                        json_t *rq;
                        json_array_foreach(req, i, rq) {
                                if (json_is_string(rq) && streq(json_string_value(rq), k))
                                        required = true;
                        }
                        if (required != (pass == 0) || np >= MAX_PROPS)
                                continue;
                        np++;
                        _cleanup_free_ char *pn = ident(k, "arg", &pnames);
                        char tbase[MAX_IDENT * 2 + 8];
                        snprintf(tbase, sizeof(tbase), "%.*s_%.*s", MAX_IDENT, abase ? abase : "Args", MAX_IDENT,
                                 pn ? pn : "");
                        _cleanup_free_ char *pt = pn ? type_of(g, ps, tbase, 1) : NULL;
                        _cleanup_free_ char *qk = str_literal(k);
                        _cleanup_free_ char *pd =
                                first_line(json_string_value(json_object_get(ps, "description")), 200);
                        if (!pn || !pt || !qk || !pd) {
                                fclose(pf);
                                fclose(cf);
                                fclose(af);
                                names_done(&pnames);
                                free(params);
                                free(call);
                                free(args_doc);
                                return -ENOMEM;
                        }
                        fprintf(pf, "%s%s: %s%s", ftell(pf) > 0 ? ", " : "", pn, pt,
                                required ? "" : (g->sig || g->stub ? " = ..." : " = _UNSET"));
                        fprintf(cf, "%s: %s, ", qk, pn);
                        fprintf(af, "    %s: %s%s\n", pn, pd, required ? "" : " (optional)");
                }
        }
        names_done(&pnames);
        fclose(pf);
        fclose(cf);
        fclose(af);

        *ret_params = params;
        *ret_call = call;
        *ret_doc = args_doc;
        return 0;
}

/* One tool: its types into g->types, its function into `out`. */
static int gen_tool(gen *g, FILE *out, json_t *tool, const char *modname, size_t idx) {
        const char *id = json_string_value(json_object_get(tool, "id"));
        const char *name = json_string_value(json_object_get(tool, "name"));
        const char *desc = json_string_value(json_object_get(tool, "description"));
        json_t *in = json_object_get(tool, "input_schema");
        json_t *outs = json_object_get(tool, "output_schema");
        if (!id || !name)
                return 0;
        _cleanup_free_ char *fn = ident(name, "tool", g->used);
        if (!fn)
                return -ENOMEM;

        /* The return type first: it may define a TypedDict. */
        _cleanup_free_ char *rbase = camel(fn, "Result");
        _cleanup_free_ char *abase = camel(fn, "Args");
        _cleanup_free_ char *rtype =
                json_is_object(outs) ? type_of(g, outs, rbase, 0) : strdup(g->sig ? "Any" : "_t.Any");
        if (!rtype || !rbase)
                return -ENOMEM;

        _cleanup_free_ char *params = NULL, *call = NULL, *args_doc = NULL;
        if (gen_params(g, in, abase, &params, &call, &args_doc) < 0)
                return -ENOMEM;

        if (g->sig) {
                _cleanup_free_ char *d = first_line(desc, SIG_DOC_LEN);
                fprintf(out, "%s.%s(%s) -> %s%s%s\n", modname, fn, params ? params : "", rtype, d && *d ? "  # " : "",
                        d ? d : "");
                return 0;
        }

        _cleanup_free_ char *doc_text = NULL;
        _cleanup_free_ char *d = strndup(desc ? desc : "", MAX_DOC);
        if (asprintf(&doc_text, "%s\n\nTool %s.%s%s", d ? d : "", id, args_doc && *args_doc ? "\n\nArgs:\n" : "",
                     args_doc ? args_doc : "") < 0)
                return -ENOMEM;
        _cleanup_free_ char *doc = str_literal(doc_text);
        if (!doc)
                return -ENOMEM;
        bool any = params && *params;
        fprintf(out, "\n\ndef %s(%s%s) -> %s:\n    %s\n", fn, any ? "*, " : "", any ? params : "", rtype, doc);
        if (g->stub) {
                fputs("    ...\n", out);
                return 0;
        }
        /* The SDK validates the arguments against the schema (a JSON text,
         * parsed once, in the sandbox) and then calls through the gateway. */
        _cleanup_free_ char *schema_text = json_is_object(in) ? json_dumps(in, JSON_COMPACT) : strdup("{}");
        _cleanup_free_ char *qschema = schema_text ? str_literal(schema_text) : NULL;
        _cleanup_free_ char *qid = str_literal(id);
        _cleanup_free_ char *qfn = str_literal(fn);
        if (!qschema || !qid || !qfn)
                return -ENOMEM;
        fprintf(out, "    return _tr._call(_SPEC_%zu, {%s})\n\n\n_SPEC_%zu = _tr._Spec(%s, %s, %s)\n", idx,
                call ? call : "", idx, qid, qfn, qschema);
        return 0;
}

static int gen_namespace(tr_gateway *gw, const char *ns, const char *modname, tr_bindings_kind kind, FILE *out,
                         tr_error **ret_err) {
        _cleanup_free_ char *text = NULL;
        int r = tr_gateway_list_tools(gw, NULL, ns, &text, ret_err);
        if (r < 0)
                return r;
        json_t *tools = json_loads(text, 0, NULL);
        if (!json_is_array(tools)) {
                json_decref(tools);
                return tr_error_set(ret_err, TR_E_PROTOCOL, TR_BACKEND_NONE, "bindings", "list_tools is not an array");
        }
        names used = { .n = 0 };
        _cleanup_free_ char *types = NULL, *funcs = NULL;
        size_t tlen = 0, flen = 0;
        gen g = {
                .types = open_memstream(&types, &tlen),
                .used = &used,
                .t = kind == TR_BINDINGS_SIGNATURES ? "" : "_t.",
                .sig = kind == TR_BINDINGS_SIGNATURES,
                .stub = kind == TR_BINDINGS_STUB,
        };
        FILE *ff = open_memstream(&funcs, &flen);
        size_t i;
        json_t *t;
        r = g.types && ff ? 0 : -ENOMEM;
        json_array_foreach(tools, i, t) {
                if (r < 0)
                        break;
                r = gen_tool(&g, ff, t, modname, i);
        }
        if (g.types)
                fclose(g.types);
        if (ff)
                fclose(ff);
        names_done(&used);
        json_decref(tools);
        if (r < 0)
                return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, "bindings", "out of memory");
        if (kind == TR_BINDINGS_SIGNATURES) {
                fputs(funcs ? funcs : "", out);
                return 0;
        }
        _cleanup_free_ char *qns = str_literal(ns);
        fprintf(out,
                "# Generated by toolruntime from the tools' schemas: do not edit.\n"
                "import typing as _t\n%s\n__toolruntime_namespace__ = %s\n\n%s%s",
                kind == TR_BINDINGS_MODULE ? "\nimport toolruntime as _tr\nfrom toolruntime import _UNSET\n" : "",
                qns ? qns : "\"\"", types ? types : "", funcs ? funcs : "");
        return 0;
}

TR_PUBLIC int tr_gateway_python_bindings(tr_gateway *gw, const char *module, tr_bindings_kind kind, char **ret_text,
                                         char **ret_namespace, tr_error **ret_err) {
        if (!gw || !ret_text || (unsigned) kind > TR_BINDINGS_SIGNATURES || (!module && kind == TR_BINDINGS_MODULE))
                return tr_error_set(ret_err, TR_E_INVALID_REQUEST, TR_BACKEND_NONE, "bindings", "invalid argument");
        _cleanup_free_ char *ns_text = NULL;
        int r = tr_gateway_list_namespaces(gw, NULL, &ns_text, ret_err);
        if (r < 0)
                return r;
        json_t *nss = json_loads(ns_text, 0, NULL);
        _cleanup_free_ char *text = NULL;
        size_t len = 0;
        FILE *out = open_memstream(&text, &len);
        if (!out) {
                json_decref(nss);
                return tr_error_set(ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, "bindings", "out of memory");
        }
        /* Module names in namespace order, so that two namespaces that
         * sanitise alike always get the same names. */
        names mods = { .n = 0 };
        _cleanup_free_ char *found_ns = NULL;
        size_t i;
        json_t *jn;
        json_array_foreach(nss, i, jn) {
                const char *ns = json_string_value(jn);
                _cleanup_free_ char *mod = ns ? ident(ns, "ns", &mods) : NULL;
                if (!mod || r < 0)
                        continue;
                if (module && !streq(module, mod))
                        continue;
                if (!module && kind == TR_BINDINGS_STUB)
                        fprintf(out, "%s# file: toolruntime/tools/%s.pyi\n", i ? "\n" : "", mod);
                r = gen_namespace(gw, ns, mod, kind, out, ret_err);
                if (module) {
                        found_ns = strdup(ns);
                        break;
                }
        }
        names_done(&mods);
        json_decref(nss);
        fclose(out);
        if (r < 0)
                return r;
        if (module && !found_ns)
                return tr_error_set(ret_err, TR_E_TOOL_NOT_FOUND, TR_BACKEND_NONE, "bindings",
                                    "no tool namespace is importable as toolruntime.tools.%.64s", module);
        if (len > (kind == TR_BINDINGS_MODULE ? MAX_MODULE : MAX_OUTPUT))
                return tr_error_set(ret_err, TR_E_TOOL_FAILED, TR_BACKEND_NONE, "bindings",
                                    "the generated bindings (%zu bytes) exceed the cap", len);
        *ret_text = TAKE_PTR(text);
        if (ret_namespace)
                *ret_namespace = TAKE_PTR(found_ns);
        return 0;
}
