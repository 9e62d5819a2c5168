/* grammar: JSON output constraints as llama.cpp GBNF grammars.
 *
 * A subset of JSON Schema is compiled to GBNF: object (properties in declared
 * order, required ones mandatory, optional ones any ordered subset; no other
 * keys), array (items, minItems, maxItems up to a small bound), string, number,
 * integer, boolean, null, type lists, enum, const, anyOf/oneOf, and local $ref
 * to #/$defs/... or #/definitions/.... A keyword drover does not compile makes
 * that node accept any JSON value, so output is always valid JSON. */
#include "engine/engine.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#define MAX_RULES  512
#define MAX_DEPTH  32
#define MAX_REPEAT 64

static const char base_rules[] =
    "value  ::= object | array | string | number | (\"true\" | \"false\" | \"null\") ws\n"
    "object ::= \"{\" ws ( string \":\" ws value (\",\" ws string \":\" ws value)* )? \"}\" ws\n"
    "array  ::= \"[\" ws ( value (\",\" ws value)* )? \"]\" ws\n"
    "string ::= \"\\\"\" ( [^\"\\\\\\x7F\\x00-\\x1F] | \"\\\\\" ([\"\\\\/bfnrt] | \"u\" "
    "[0-9a-fA-F]{4}) )* \"\\\"\" ws\n"
    "number ::= (\"-\"? ([0-9] | [1-9] [0-9]{0,15})) (\".\" [0-9]+)? ([eE] [-+]? [0-9]{1,3})? "
    "ws\n"
    "integer ::= \"-\"? ([0-9] | [1-9] [0-9]{0,15}) ws\n"
    "boolean ::= (\"true\" | \"false\") ws\n"
    "null ::= \"null\" ws\n"
    "ws     ::= | \" \" | \"\\n\" [ \\t]{0,20}\n";

struct gctx {
    struct drv_buf *out;
    json_t *root;
    int n_rules;
    struct drv_err *err;
};

/* Appends s as a GBNF string literal. */
static int put_literal(struct drv_buf *b, const char *s)
{
    int rc = drv_buf_append(b, "\"", 1);
    for (const char *p = s; rc == 0 && *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '"' || c == '\\')
            rc = drv_buf_appendf(b, "\\%c", c);
        else if (c < 0x20)
            rc = drv_buf_appendf(b, "\\x%02X", c);
        else
            rc = drv_buf_append(b, p, 1);
    }
    return rc ? rc : drv_buf_append(b, "\"", 1);
}

/* A JSON value as a GBNF literal of its compact JSON text, followed by ws. */
static int put_json_literal(struct drv_buf *b, json_t *v)
{
    char *t = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    if (t == NULL)
        return DRV_ENOMEM;
    int rc = put_literal(b, t);
    free(t);
    return rc ? rc : drv_buf_append(b, " ws", 3);
}

static int compile(struct gctx *g, json_t *s, int depth, char *name, size_t name_size);

/* Defines a new rule "rN ::= <body>" where body is produced by fn into a buffer. */
static int new_rule(struct gctx *g, char *name, size_t name_size)
{
    if (g->n_rules >= MAX_RULES)
        return drv_err_set(g->err, DRV_ETOOBIG, "format schema is too large");
    snprintf(name, name_size, "r%d", g->n_rules++);
    return 0;
}

static int compile_object(struct gctx *g, json_t *s, int depth, struct drv_buf *body)
{
    json_t *props = json_object_get(s, "properties");
    json_t *req = json_object_get(s, "required");
    if (!json_is_object(props) || json_object_size(props) == 0)
        return drv_buf_append(body, "object", 6);
    size_t n = json_object_size(props);
    char(*kv)[32] = calloc(n, sizeof(*kv));
    bool *is_req = calloc(n, sizeof(*is_req));
    if (kv == NULL || is_req == NULL) {
        free(kv);
        free(is_req);
        return DRV_ENOMEM;
    }
    int rc = 0;
    size_t i = 0;
    const char *key;
    json_t *sub;
    json_object_foreach(props, key, sub)
    {
        char vname[32];
        rc = compile(g, sub, depth + 1, vname, sizeof(vname));
        if (rc == 0)
            rc = new_rule(g, kv[i], sizeof(kv[i]));
        if (rc)
            break;
        /* kv rule: "\"key\"" ws ":" ws value */
        struct drv_buf line;
        drv_buf_init(&line, 1 << 20);
        json_t *k = json_string(key);
        rc = drv_buf_appendf(&line, "%s ::= ", kv[i]);
        if (rc == 0)
            rc = put_json_literal(&line, k);
        json_decref(k);
        if (rc == 0)
            rc = drv_buf_appendf(&line, " \":\" ws %s\n", vname);
        if (rc == 0)
            rc = drv_buf_append(g->out, line.data, line.len);
        drv_buf_release(&line);
        if (rc)
            break;
        size_t j;
        json_t *r;
        json_array_foreach(req, j, r) if (json_is_string(r) &&
                                          strcmp(json_string_value(r), key) == 0) is_req[i] = true;
        i++;
    }
    if (rc == 0)
        rc = drv_buf_append(body, "\"{\" ws ", 7);
    bool any_req = false;
    for (i = 0; rc == 0 && i < n; i++) {
        if (!is_req[i])
            continue;
        rc = drv_buf_appendf(body, "%s%s ", any_req ? "\",\" ws " : "", kv[i]);
        any_req = true;
    }
    if (rc == 0 && any_req) {
        for (i = 0; rc == 0 && i < n; i++)
            if (!is_req[i])
                rc = drv_buf_appendf(body, "(\",\" ws %s)? ", kv[i]);
    } else if (rc == 0) {
        /* no required property: any ordered subset of the optional ones */
        rc = drv_buf_append(body, "(", 1);
        bool first = true;
        for (i = 0; rc == 0 && i < n; i++) {
            rc = drv_buf_appendf(body, "%s%s ", first ? "" : "| ", kv[i]);
            first = false;
            for (size_t k = i + 1; rc == 0 && k < n; k++)
                rc = drv_buf_appendf(body, "(\",\" ws %s)? ", kv[k]);
        }
        if (rc == 0)
            rc = drv_buf_append(body, ")? ", 3);
    }
    if (rc == 0)
        rc = drv_buf_append(body, "\"}\" ws", 6);
    free(kv);
    free(is_req);
    return rc;
}

static int compile_array(struct gctx *g, json_t *s, int depth, struct drv_buf *body)
{
    json_t *items = json_object_get(s, "items");
    char item[32] = "value";
    int rc = 0;
    if (json_is_object(items))
        rc = compile(g, items, depth + 1, item, sizeof(item));
    if (rc)
        return rc;
    json_int_t lo = json_integer_value(json_object_get(s, "minItems"));
    json_t *jhi = json_object_get(s, "maxItems");
    json_int_t hi = json_is_integer(jhi) ? json_integer_value(jhi) : -1;
    if (lo < 0)
        lo = 0;
    if (lo > MAX_REPEAT)
        lo = MAX_REPEAT;
    if (hi > MAX_REPEAT)
        hi = -1;
    if (hi >= 0 && hi < lo)
        hi = lo;
    rc = drv_buf_append(body, "\"[\" ws ", 7);
    if (rc == 0 && hi == 0)
        return drv_buf_append(body, "\"]\" ws", 6);
    /* first item, then the rest with commas: ( item ("," ws item){lo-1,hi-1} )? */
    if (rc == 0)
        rc = drv_buf_appendf(body, "(%s ", item);
    if (rc == 0) {
        long rlo = lo > 0 ? (long)lo - 1 : 0;
        if (hi < 0)
            rc = drv_buf_appendf(body, "(\",\" ws %s){%ld,} ", item, rlo);
        else
            rc = drv_buf_appendf(body, "(\",\" ws %s){%ld,%ld} ", item, rlo, (long)hi - 1);
    }
    if (rc == 0)
        rc = drv_buf_append(body, lo > 0 ? ") " : ")? ", lo > 0 ? 2 : 3);
    return rc ? rc : drv_buf_append(body, "\"]\" ws", 6);
}

static int compile_type(struct gctx *g, json_t *s, const char *type, int depth,
                        struct drv_buf *body)
{
    if (strcmp(type, "object") == 0)
        return compile_object(g, s, depth, body);
    if (strcmp(type, "array") == 0)
        return compile_array(g, s, depth, body);
    static const char *const simple[] = {"string", "number", "integer", "boolean", "null"};
    for (size_t i = 0; i < sizeof(simple) / sizeof(simple[0]); i++)
        if (strcmp(type, simple[i]) == 0)
            return drv_buf_append(body, type, strlen(type));
    return drv_buf_append(body, "value", 5);
}

static json_t *resolve_ref(struct gctx *g, const char *ref)
{
    static const char *const prefixes[] = {"#/$defs/", "#/definitions/"};
    for (size_t i = 0; i < 2; i++) {
        size_t n = strlen(prefixes[i]);
        if (strncmp(ref, prefixes[i], n) == 0) {
            json_t *defs = json_object_get(g->root, i == 0 ? "$defs" : "definitions");
            return json_object_get(defs, ref + n);
        }
    }
    return NULL;
}

/* Compiles schema s into a rule; its name goes to name. */
static int compile(struct gctx *g, json_t *s, int depth, char *name, size_t name_size)
{
    if (depth > MAX_DEPTH)
        return drv_err_set(g->err, DRV_EINVAL, "format schema is nested too deeply");
    if (!json_is_object(s)) {
        drv_strlcpy(name, "value", name_size);
        return 0;
    }
    json_t *ref = json_object_get(s, "$ref");
    if (json_is_string(ref)) {
        json_t *target = resolve_ref(g, json_string_value(ref));
        if (target == NULL || target == s)
            return drv_err_set(g->err, DRV_EINVAL, "format schema: cannot resolve $ref \"%s\"",
                               json_string_value(ref));
        return compile(g, target, depth + 1, name, name_size);
    }
    struct drv_buf body;
    drv_buf_init(&body, 1 << 20);
    int rc = 0;
    json_t *v, *alts = json_object_get(s, "anyOf");
    if (!json_is_array(alts))
        alts = json_object_get(s, "oneOf");
    json_t *type = json_object_get(s, "type");
    if ((v = json_object_get(s, "const")) != NULL) {
        rc = put_json_literal(&body, v);
    } else if (json_is_array(v = json_object_get(s, "enum")) && json_array_size(v) > 0) {
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e)
        {
            if (i > 0 && (rc = drv_buf_append(&body, " | ", 3)) != 0)
                break;
            if ((rc = put_json_literal(&body, e)) != 0)
                break;
        }
    } else if (json_is_array(alts) && json_array_size(alts) > 0) {
        size_t i;
        json_t *a;
        json_array_foreach(alts, i, a)
        {
            char sub[32];
            if ((rc = compile(g, a, depth + 1, sub, sizeof(sub))) != 0)
                break;
            if ((rc = drv_buf_appendf(&body, "%s%s", i ? " | " : "", sub)) != 0)
                break;
        }
    } else if (json_is_string(type)) {
        rc = compile_type(g, s, json_string_value(type), depth, &body);
    } else if (json_is_array(type) && json_array_size(type) > 0) {
        size_t i;
        json_t *t;
        json_array_foreach(type, i, t)
        {
            if (i > 0 && (rc = drv_buf_append(&body, " | ", 3)) != 0)
                break;
            if ((rc = compile_type(g, s, json_is_string(t) ? json_string_value(t) : "", depth,
                                   &body)) != 0)
                break;
        }
    } else if (json_is_object(json_object_get(s, "properties"))) {
        rc = compile_object(g, s, depth, &body);
    } else {
        rc = drv_buf_append(&body, "value", 5);
    }
    if (rc == 0)
        rc = new_rule(g, name, name_size);
    if (rc == 0)
        rc = drv_buf_appendf(g->out, "%s ::= %s\n", name, body.data);
    drv_buf_release(&body);
    if (rc && g->err && g->err->code == 0)
        drv_err_set(g->err, rc, "format schema is too large");
    return rc;
}

int drv_json_schema_to_gbnf(const char *schema, struct drv_buf *out, struct drv_err *err)
{
    json_error_t jerr;
    json_t *root = json_loads(schema, 0, &jerr);
    if (root == NULL)
        return drv_err_set(err, DRV_EINVAL, "format schema is not valid JSON: %s", jerr.text);
    struct gctx g = {.out = out, .root = root, .err = err};
    char name[32];
    int rc = drv_buf_append(out, base_rules, sizeof(base_rules) - 1);
    if (rc == 0)
        rc = compile(&g, root, 0, name, sizeof(name));
    if (rc == 0)
        rc = drv_buf_appendf(out, "root ::= %s\n", name);
    json_decref(root);
    if (rc && err && err->code == 0)
        drv_err_set(err, rc, "cannot compile the format schema");
    return rc;
}
