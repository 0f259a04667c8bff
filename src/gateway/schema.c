/* SPDX-License-Identifier: Apache-2.0 */
/* Tool metadata sanitisation and argument validation (schema.h). */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/schema.h"
#include "util/macros.h"

/* Where a check's error goes: the code and op it carries and the caller's
 * out-parameter. */
typedef struct sink {
        tr_code code;
        const char *op;
        tr_error **ret_err;
} sink;

static int fail(const sink *k, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(const sink *k, const char *fmt, ...) {
        if (k->ret_err) {
                char msg[512];
                va_list ap;
                va_start(ap, fmt);
                vsnprintf(msg, sizeof(msg), fmt, ap);
                va_end(ap);
                tr_error_set(k->ret_err, k->code, TR_BACKEND_NONE, k->op, "%s", msg);
        }
        return -EINVAL;
}

static int oom(const sink *k) {
        tr_error_set(k->ret_err, TR_E_INTERNAL, TR_BACKEND_NONE, k->op, "out of memory");
        return -ENOMEM;
}

bool tr__tool_name_valid(const char *s, size_t max) {
        size_t n = 0;
        if (!s || !*s)
                return false;
        for (; s[n]; n++) {
                unsigned char c = (unsigned char) s[n];
                if (n >= max)
                        return false;
                if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
                      c == '-' || c == '.' || c == '/'))
                        return false;
        }
        return true;
}

char *tr__text_sanitize(const char *s, size_t max) {
        size_t n = strlen(s);
        if (n > max) {
                n = max;
                /* Back up to the start of a UTF-8 sequence. */
                while (n > 0 && ((unsigned char) s[n] & 0xC0) == 0x80)
                        n--;
        }
        char *out = malloc(n + 1);
        if (!out)
                return NULL;
        size_t o = 0;
        for (size_t i = 0; i < n; i++) {
                unsigned char c = (unsigned char) s[i];
                /* Control characters could rewrite a terminal or hide text
                 * from a reviewer; keep only line structure. */
                if ((c < 0x20 && c != '\n' && c != '\t') || c == 0x7f)
                        continue;
                out[o++] = (char) c;
        }
        out[o] = 0;
        return out;
}

/* ---- schema structure --------------------------------------------------- */

static const char *const json_types[] = { "object", "array", "string", "number", "integer", "boolean", "null" };

static bool type_name_valid(const char *t) {
        for (size_t i = 0; i < ARRAY_SIZE(json_types); i++)
                if (streq(t, json_types[i]))
                        return true;
        return false;
}

typedef struct walk {
        size_t nodes;
        const sink *k;
} walk;

static int check_node(json_t *s, unsigned depth, walk *w, const char *path);

static int check_sub(json_t *s, unsigned depth, walk *w, const char *path, const char *key) {
        char p[256];
        snprintf(p, sizeof(p), "%s/%s", path, key);
        return check_node(s, depth + 1, w, p);
}

/* Check the keywords the validator interprets; leave others alone but count
 * and bound everything. */
static int check_node(json_t *s, unsigned depth, walk *w, const char *path) {
        if (depth > TR_TOOL_MAX_SCHEMA_DEPTH)
                return fail(w->k, "schema nested deeper than %d at %s", TR_TOOL_MAX_SCHEMA_DEPTH, path);
        if (++w->nodes > TR_TOOL_MAX_SCHEMA_NODES)
                return fail(w->k, "schema has more than %d nodes", TR_TOOL_MAX_SCHEMA_NODES);
        if (json_is_boolean(s))
                return 0; /* true / false schemas */
        if (!json_is_object(s))
                return fail(w->k, "schema at %s is not an object", path);

        json_t *type = json_object_get(s, "type");
        if (type) {
                if (json_is_string(type)) {
                        if (!type_name_valid(json_string_value(type)))
                                return fail(w->k, "unknown type at %s", path);
                } else if (json_is_array(type)) {
                        size_t i;
                        json_t *t;
                        json_array_foreach(type, i, t) if (!json_is_string(t) ||
                                                           !type_name_valid(json_string_value(
                                                                   t))) return fail(w->k, "unknown type at %s", path);
                } else
                        return fail(w->k, "\"type\" at %s must be a string or an array", path);
        }
        json_t *req = json_object_get(s, "required");
        if (req) {
                if (!json_is_array(req))
                        return fail(w->k, "\"required\" at %s must be an array", path);
                size_t i;
                json_t *r;
                json_array_foreach(req, i, r) if (!json_is_string(r)) return fail(
                        w->k, "\"required\" at %s must hold strings", path);
        }
        json_t *en = json_object_get(s, "enum");
        if (en && !json_is_array(en))
                return fail(w->k, "\"enum\" at %s must be an array", path);
        json_t *props = json_object_get(s, "properties");
        if (props) {
                if (!json_is_object(props))
                        return fail(w->k, "\"properties\" at %s must be an object", path);
                const char *k;
                json_t *v;
                json_object_foreach(props, k, v) {
                        int r = check_sub(v, depth, w, path, k);
                        if (r < 0)
                                return r;
                }
        }
        static const char *const subs[] = { "items", "additionalProperties" };
        for (size_t i = 0; i < ARRAY_SIZE(subs); i++) {
                json_t *v = json_object_get(s, subs[i]);
                if (v) {
                        int r = check_sub(v, depth, w, path, subs[i]);
                        if (r < 0)
                                return r;
                }
        }
        static const char *const nums[] = { "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum" };
        for (size_t i = 0; i < ARRAY_SIZE(nums); i++) {
                json_t *v = json_object_get(s, nums[i]);
                /* draft-04 used booleans for the exclusive ones: ignore those. */
                if (v && !json_is_number(v) && !json_is_boolean(v))
                        return fail(w->k, "\"%s\" at %s must be a number", nums[i], path);
        }
        static const char *const counts[] = { "minLength", "maxLength", "minItems", "maxItems" };
        for (size_t i = 0; i < ARRAY_SIZE(counts); i++) {
                json_t *v = json_object_get(s, counts[i]);
                if (v && (!json_is_integer(v) || json_integer_value(v) < 0))
                        return fail(w->k, "\"%s\" at %s must be a non-negative integer", counts[i], path);
        }
        return 0;
}

int tr__schema_check(json_t *schema, json_t **ret_schema, const char *op, tr_error **ret_err) {
        const sink k = { TR_E_INVALID_REQUEST, op, ret_err };
        if (!schema || json_is_null(schema)) {
                json_t *s = json_pack("{s:s}", "type", "object");
                if (!s)
                        return oom(&k);
                *ret_schema = s;
                return 0;
        }
        if (!json_is_object(schema))
                return fail(&k, "the input schema must be a JSON object");
        json_t *type = json_object_get(schema, "type");
        if (type && !(json_is_string(type) && streq(json_string_value(type), "object")))
                return fail(&k, "the input schema must describe an object (\"type\": \"object\")");
        size_t sz = json_dumpb(schema, NULL, 0, JSON_COMPACT);
        if (sz == 0 || sz > TR_TOOL_MAX_SCHEMA)
                return fail(&k, "the input schema exceeds %d bytes", TR_TOOL_MAX_SCHEMA);
        walk w = { .k = &k };
        int r = check_node(schema, 0, &w, "#");
        if (r < 0)
                return r;
        *ret_schema = json_incref(schema);
        return 0;
}

/* ---- validation ------------------------------------------------------------ */

static bool is_type(json_t *v, const char *t) {
        if (streq(t, "object"))
                return json_is_object(v);
        if (streq(t, "array"))
                return json_is_array(v);
        if (streq(t, "string"))
                return json_is_string(v);
        if (streq(t, "number"))
                return json_is_number(v);
        if (streq(t, "integer")) {
                if (json_is_integer(v))
                        return true;
                if (json_is_real(v)) {
                        double d = json_real_value(v);
                        return isfinite(d) && floor(d) == d;
                }
                return false;
        }
        if (streq(t, "boolean"))
                return json_is_boolean(v);
        if (streq(t, "null"))
                return json_is_null(v);
        return false;
}

static const char *type_of(json_t *v) {
        switch (json_typeof(v)) {
        case JSON_OBJECT: return "object";
        case JSON_ARRAY: return "array";
        case JSON_STRING: return "string";
        case JSON_INTEGER: return "integer";
        case JSON_REAL: return "number";
        case JSON_TRUE:
        case JSON_FALSE: return "boolean";
        default: return "null";
        }
}

static size_t utf8_len(const char *s, size_t n) {
        size_t cps = 0;
        for (size_t i = 0; i < n; i++)
                if (((unsigned char) s[i] & 0xC0) != 0x80)
                        cps++;
        return cps;
}

static double num(json_t *v) {
        return json_number_value(v);
}

static int validate(json_t *s, json_t *v, const char *path, unsigned depth, const sink *snk) {
        /* The schema was bounded by tr__schema_check, and validation recurses
         * only where the schema does, so `depth` stays small. */
        if (depth > TR_TOOL_MAX_SCHEMA_DEPTH + 1)
                return 0;
        if (json_is_false(s))
                return fail(snk, "%s: no value is allowed here", path);
        if (!json_is_object(s))
                return 0;

        json_t *type = json_object_get(s, "type");
        if (json_is_string(type) && !is_type(v, json_string_value(type)))
                return fail(snk, "%s: expected %s, got %s", path, json_string_value(type), type_of(v));
        if (json_is_array(type)) {
                bool ok = false;
                size_t i;
                json_t *t;
                json_array_foreach(type, i, t) if (json_is_string(t) && is_type(v, json_string_value(t))) ok = true;
                if (!ok)
                        return fail(snk, "%s: %s is not one of the allowed types", path, type_of(v));
        }
        json_t *en = json_object_get(s, "enum");
        if (json_is_array(en)) {
                bool ok = false;
                size_t i;
                json_t *e;
                json_array_foreach(en, i, e) if (json_equal(e, v)) ok = true;
                if (!ok)
                        return fail(snk, "%s: value is not one of the allowed values", path);
        }
        json_t *cst = json_object_get(s, "const");
        if (cst && !json_equal(cst, v))
                return fail(snk, "%s: value must equal the schema's const", path);

        if (json_is_number(v)) {
                json_t *b;
                if (json_is_number(b = json_object_get(s, "minimum")) && num(v) < num(b))
                        return fail(snk, "%s: below the minimum %g", path, num(b));
                if (json_is_number(b = json_object_get(s, "maximum")) && num(v) > num(b))
                        return fail(snk, "%s: above the maximum %g", path, num(b));
                if (json_is_number(b = json_object_get(s, "exclusiveMinimum")) && num(v) <= num(b))
                        return fail(snk, "%s: must be above %g", path, num(b));
                if (json_is_number(b = json_object_get(s, "exclusiveMaximum")) && num(v) >= num(b))
                        return fail(snk, "%s: must be below %g", path, num(b));
        }
        if (json_is_string(v)) {
                size_t n = utf8_len(json_string_value(v), json_string_length(v));
                json_t *b;
                if (json_is_integer(b = json_object_get(s, "minLength")) && (json_int_t) n < json_integer_value(b))
                        return fail(snk, "%s: shorter than %lld characters", path, (long long) json_integer_value(b));
                if (json_is_integer(b = json_object_get(s, "maxLength")) && (json_int_t) n > json_integer_value(b))
                        return fail(snk, "%s: longer than %lld characters", path, (long long) json_integer_value(b));
        }
        if (json_is_array(v)) {
                json_t *b;
                json_int_t n = (json_int_t) json_array_size(v);
                if (json_is_integer(b = json_object_get(s, "minItems")) && n < json_integer_value(b))
                        return fail(snk, "%s: fewer than %lld items", path, (long long) json_integer_value(b));
                if (json_is_integer(b = json_object_get(s, "maxItems")) && n > json_integer_value(b))
                        return fail(snk, "%s: more than %lld items", path, (long long) json_integer_value(b));
                json_t *items = json_object_get(s, "items");
                if (items) {
                        size_t i;
                        json_t *it;
                        json_array_foreach(v, i, it) {
                                char p[512];
                                snprintf(p, sizeof(p), "%s[%zu]", path, i);
                                int r = validate(items, it, p, depth + 1, snk);
                                if (r < 0)
                                        return r;
                        }
                }
        }
        if (json_is_object(v)) {
                json_t *req = json_object_get(s, "required");
                size_t i;
                json_t *r;
                if (json_is_array(req))
                        json_array_foreach(
                                req, i,
                                r) if (json_is_string(r) &&
                                       !json_object_get(
                                               v, json_string_value(
                                                          r))) return fail(snk, "%s: missing required property \"%s\"",
                                                                           path, json_string_value(r));
                json_t *props = json_object_get(s, "properties");
                json_t *addl = json_object_get(s, "additionalProperties");
                const char *k;
                json_t *pv;
                json_object_foreach(v, k, pv) {
                        char p[512];
                        snprintf(p, sizeof(p), "%s.%s", path, k);
                        json_t *ps = json_object_get(props, k);
                        int rr = 0;
                        if (ps)
                                rr = validate(ps, pv, p, depth + 1, snk);
                        else if (addl)
                                rr = validate(addl, pv, p, depth + 1, snk);
                        if (rr < 0)
                                return rr;
                }
        }
        return 0;
}

int tr__schema_validate(json_t *schema, json_t *value, tr_error **ret_err) {
        const sink k = { TR_E_INVALID_ARGUMENTS, "validate", ret_err };
        return validate(schema, value, "args", 0, &k);
}

int tr__tags_check(json_t *tags, json_t **ret_tags, const char *op, tr_error **ret_err) {
        const sink k = { TR_E_INVALID_REQUEST, op, ret_err };
        if (tags && !json_is_null(tags) && !json_is_array(tags))
                return fail(&k, "\"tags\" must be an array of strings");
        if (json_array_size(tags) > TR_TOOL_MAX_TAGS)
                return fail(&k, "more than %d tags", TR_TOOL_MAX_TAGS);
        json_t *out = json_array();
        if (!out)
                return oom(&k);
        size_t i;
        json_t *t;
        json_array_foreach(tags, i, t) {
                if (!json_is_string(t) || json_string_length(t) == 0 || json_string_length(t) > TR_TOOL_MAX_TAG) {
                        json_decref(out);
                        return fail(&k, "a tag must be a string of 1 to %d bytes", TR_TOOL_MAX_TAG);
                }
                char *c = tr__text_sanitize(json_string_value(t), TR_TOOL_MAX_TAG);
                if (!c || json_array_append_new(out, json_string(c)) < 0) {
                        free(c);
                        json_decref(out);
                        return oom(&k);
                }
                free(c);
        }
        *ret_tags = out;
        return 0;
}

int tr__example_check(json_t *ex, json_t **ret_example, const char *op, tr_error **ret_err) {
        const sink k = { TR_E_INVALID_REQUEST, op, ret_err };
        if (!json_is_object(ex))
                return fail(&k, "an example must be an object");
        json_t *d = json_object_get(ex, "description");
        json_t *args = json_object_get(ex, "args");
        json_t *res = json_object_get(ex, "result");
        if (d && !json_is_string(d))
                return fail(&k, "an example's \"description\" must be a string");
        if (!json_is_object(args))
                return fail(&k, "an example needs \"args\", an object");
        json_t *out = json_object();
        if (!out)
                return oom(&k);
        _cleanup_free_ char *desc = tr__text_sanitize(d ? json_string_value(d) : "", TR_TOOL_MAX_DESCRIPTION);
        if (!desc || json_object_set_new(out, "description", json_string(desc)) < 0 ||
            json_object_set(out, "args", args) < 0 || (res && json_object_set(out, "result", res) < 0)) {
                json_decref(out);
                return oom(&k);
        }
        size_t sz = json_dumpb(out, NULL, 0, JSON_COMPACT);
        if (sz > TR_TOOL_MAX_EXAMPLE) {
                json_decref(out);
                return fail(&k, "an example exceeds %d bytes", TR_TOOL_MAX_EXAMPLE);
        }
        *ret_example = out;
        return 0;
}
