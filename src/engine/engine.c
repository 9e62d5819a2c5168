/* engine: the model registry, lifecycle and the backend face of the engine. */
#include "engine/engine_int.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct drv_engine_params drv_engine_default_params(void)
{
    struct drv_engine_params p = {
        .n_parallel = 0,
        .n_ctx = 0,
        .n_threads = 0,
        .n_threads_batch = 0,
        .n_batch = 512,
        .max_loaded = 2,
        .max_queue = 64,
        .keep_alive_ms = 5 * 60 * 1000,
        .n_gpu_layers = -1,
        .kv_type = GGML_TYPE_F16,
    };
    return p;
}

bool drv_engine_parse_kv_type(const char *s, int *out)
{
    static const struct {
        const char *name;
        int type;
    } kv[] = {{"f16", GGML_TYPE_F16}, {"q8_0", GGML_TYPE_Q8_0}, {"q4_0", GGML_TYPE_Q4_0}};
    for (size_t i = 0; i < sizeof(kv) / sizeof(kv[0]); i++) {
        if (strcmp(s, kv[i].name) == 0) {
            *out = kv[i].type;
            return true;
        }
    }
    return false;
}

int64_t drv_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- llama.cpp log -> drover log ---- */

/* llama.cpp says why a load failed only in its log: keep the last error line of
 * each thread so the user gets the reason. */
static _Thread_local char last_llama_error[256];

const char *drv_engine_last_llama_error(void)
{
    return last_llama_error;
}

static void llama_log_to_drover(enum ggml_log_level level, const char *text, void *ud)
{
    (void)ud;
    if (level == GGML_LOG_LEVEL_CONT)
        return;
    if (level == GGML_LOG_LEVEL_ERROR) {
        drv_strlcpy(last_llama_error, text, sizeof(last_llama_error));
        size_t n = strlen(last_llama_error);
        while (n > 0 && (last_llama_error[n - 1] == '\n' || last_llama_error[n - 1] == ' '))
            last_llama_error[--n] = '\0';
    }
    enum drv_log_level l = level == GGML_LOG_LEVEL_ERROR  ? DRV_LOG_ERROR
                           : level == GGML_LOG_LEVEL_WARN ? DRV_LOG_WARN
                                                          : DRV_LOG_DEBUG;
    drv_log(l, "llama: %s", text);
}

static pthread_once_t llama_once = PTHREAD_ONCE_INIT;
static void llama_init_once(void)
{
    llama_log_set(llama_log_to_drover, NULL);
    llama_backend_init();
}

/* ---- jobs ---- */

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

void drv_job_free(struct drv_job *j)
{
    if (j == NULL)
        return;
    free(j->prompt);
    free(j->system);
    free(j->suffix);
    for (size_t i = 0; i < j->n_messages; i++) {
        free((char *)j->messages[i].role);
        free((char *)j->messages[i].content);
    }
    free(j->messages);
    for (size_t i = 0; i < j->n_stop; i++)
        free(j->stop[i]);
    free(j->stop);
    free(j->grammar);
    for (size_t i = 0; i < j->n_inputs; i++)
        free(j->inputs[i]);
    free(j->inputs);
    free(j);
}

static struct drv_job *job_copy(const struct drv_gen_request *r)
{
    struct drv_job *j = calloc(1, sizeof(*j));
    if (j == NULL)
        return NULL;
    j->kind = r->kind;
    j->prompt = strdup(r->prompt ? r->prompt : "");
    j->system = dup_or_null(r->system);
    j->suffix = dup_or_null(r->suffix);
    j->raw = r->raw;
    bool ok = j->prompt && (!r->system || j->system) && (!r->suffix || j->suffix);
    if (r->n_messages) {
        j->messages = calloc(r->n_messages, sizeof(*j->messages));
        ok = ok && j->messages;
        for (size_t i = 0; ok && i < r->n_messages; i++) {
            j->messages[i].role = strdup(r->messages[i].role ? r->messages[i].role : "user");
            j->messages[i].content = strdup(r->messages[i].content ? r->messages[i].content : "");
            j->n_messages = i + 1;
            ok = j->messages[i].role && j->messages[i].content;
        }
    }
    if (ok && r->n_stop) {
        j->stop = calloc(r->n_stop, sizeof(*j->stop));
        ok = j->stop != NULL;
        for (size_t i = 0; ok && i < r->n_stop; i++) {
            j->stop[i] = strdup(r->stop[i] ? r->stop[i] : "");
            j->n_stop = i + 1;
            ok = j->stop[i] != NULL;
        }
    }
    j->sampling = r->sampling;
    j->num_predict = r->num_predict;
    j->format = r->format;
    j->think = r->think;
    j->truncate = r->truncate;
    j->keep_alive_ms = r->keep_alive_ms;
    j->cancel = r->cancel;
    if (!ok) {
        drv_job_free(j);
        return NULL;
    }
    return j;
}

void drv_job_fail(struct drv_job *j, const char *model, int status, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    struct drv_gen_event ev = {
        .kind = DRV_EV_ERROR, .status = status, .message = msg, .model = model};
    j->sink(j->sink_ud, &ev);
    drv_job_free(j);
}

/* ---- registry ---- */

static void canonical_name(const char *in, char *out, size_t out_size)
{
    if (strchr(in, ':'))
        drv_strlcpy(out, in, out_size);
    else
        snprintf(out, out_size, "%s:latest", in);
}

static struct drv_emodel *find_model(struct drv_engine *e, const char *name)
{
    char want[160];
    canonical_name(name, want, sizeof(want));
    for (int i = 0; i < e->n_models; i++)
        if (strcmp(e->models[i]->name, want) == 0)
            return e->models[i];
    for (int i = 0; i < e->n_aliases; i++)
        if (strcmp(e->aliases[i].name, want) == 0)
            return e->aliases[i].target;
    return NULL;
}

int drv_engine_add_alias(struct drv_engine *e, const char *alias, const char *target,
                         struct drv_err *err)
{
    char canon[160];
    canonical_name(alias, canon, sizeof(canon));
    if (strlen(canon) >= sizeof(e->aliases[0].name))
        return drv_err_set(err, DRV_EINVAL, "alias '%s' is too long", alias);
    pthread_mutex_lock(&e->mu);
    int rc = 0;
    struct drv_emodel *m = find_model(e, target);
    if (m == NULL) {
        rc = drv_err_set(err, DRV_ENOENT, "alias %s: no model named '%s'", alias, target);
    } else if (find_model(e, canon)) {
        rc = drv_err_set(err, DRV_EINVAL, "alias %s: the name is taken", alias);
    } else {
        struct drv_alias *a = realloc(e->aliases, (size_t)(e->n_aliases + 1) * sizeof(*a));
        if (a == NULL) {
            rc = drv_err_set(err, DRV_ENOMEM, "out of memory");
        } else {
            e->aliases = a;
            drv_strlcpy(a[e->n_aliases].name, canon, sizeof(a[0].name));
            a[e->n_aliases++].target = m;
        }
    }
    pthread_mutex_unlock(&e->mu);
    return rc;
}

int drv_engine_add_model(struct drv_engine *e, const char *name, const char *path,
                         struct drv_err *err)
{
    char canon[160];
    canonical_name(name, canon, sizeof(canon));
    if (strlen(canon) >= sizeof(((struct drv_emodel *)0)->name))
        return drv_err_set(err, DRV_EINVAL, "model name '%s' is too long", name);
    if (strlen(path) >= PATH_MAX)
        return drv_err_set(err, DRV_EINVAL, "path too long");
    struct drv_emodel *m = calloc(1, sizeof(*m));
    if (m == NULL)
        return drv_err_set(err, DRV_ENOMEM, "out of memory");
    struct drv_err ierr;
    drv_err_init(&ierr);
    if (drv_gguf_inspect_file(path, &m->info, &ierr) != 0) {
        free(m);
        return drv_err_set(err, ierr.code, "%s: %s", path, ierr.msg);
    }
    struct stat st;
    m->mtime = stat(path, &st) == 0 ? (int64_t)st.st_mtime : 0;
    drv_strlcpy(m->name, canon, sizeof(m->name));
    drv_strlcpy(m->path, path, sizeof(m->path));
    m->engine = e;
    m->keep_alive_ms = e->p.keep_alive_ms;
    pthread_cond_init(&m->cond, NULL);

    pthread_mutex_lock(&e->mu);
    int rc = 0;
    if (find_model(e, canon)) {
        rc = drv_err_set(err, DRV_EINVAL, "a model named '%s' is already registered", canon);
    } else if (e->n_models == e->cap_models) {
        int cap = e->cap_models ? e->cap_models * 2 : 8;
        struct drv_emodel **n = realloc(e->models, (size_t)cap * sizeof(*n));
        if (n == NULL) {
            rc = drv_err_set(err, DRV_ENOMEM, "out of memory");
        } else {
            e->models = n;
            e->cap_models = cap;
        }
    }
    if (rc == 0)
        e->models[e->n_models++] = m;
    pthread_mutex_unlock(&e->mu);
    if (rc) {
        pthread_cond_destroy(&m->cond);
        free(m);
    }
    return rc;
}

/* out = a/b; false when it does not fit */
static bool join_path(char *out, size_t out_size, const char *a, const char *b)
{
    int n = snprintf(out, out_size, "%s/%s", a, b);
    return n > 0 && (size_t)n < out_size;
}

int drv_engine_add_dir(struct drv_engine *e, const char *dir, struct drv_err *err)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return drv_err_set(err, errno == ENOENT ? DRV_ENOENT : DRV_EIO, "%s: %s", dir,
                           strerror(errno));
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.' || !drv_str_has_suffix(de->d_name, ".gguf"))
            continue;
        char path[PATH_MAX], stem[256];
        if (!join_path(path, sizeof(path), dir, de->d_name))
            continue;
        drv_strlcpy(stem, de->d_name, sizeof(stem));
        stem[strlen(stem) - 5] = '\0';
        struct drv_err e2;
        drv_err_init(&e2);
        if (drv_engine_add_model(e, stem, path, &e2) == 0)
            n++;
        else
            drv_log(DRV_LOG_WARN, "skipping %s: %s", path, e2.msg);
    }
    closedir(d);
    return n;
}

static bool safe_component(const char *s)
{
    if (s[0] == '\0' || s[0] == '.')
        return false;
    for (const char *p = s; *p; p++)
        if (*p == '/' || *p == '\\' || (unsigned char)*p < 0x20)
            return false;
    return true;
}

/* One manifest: find the model layer's blob and register it. */
static int add_ollama_manifest(struct drv_engine *e, const char *root, const char *mpath,
                               const char *name)
{
    json_error_t jerr;
    json_t *j = json_load_file(mpath, 0, &jerr);
    if (j == NULL)
        return -1;
    const char *digest = NULL;
    json_t *layers = json_object_get(j, "layers"), *l;
    size_t i;
    json_array_foreach(layers, i, l)
    {
        const char *mt = json_string_value(json_object_get(l, "mediaType"));
        if (mt && strcmp(mt, "application/vnd.ollama.image.model") == 0)
            digest = json_string_value(json_object_get(l, "digest"));
    }
    int rc = -1;
    if (digest && strncmp(digest, "sha256:", 7) == 0 && strlen(digest) == 7 + 64 &&
        strspn(digest + 7, "0123456789abcdef") == 64) {
        char blob[PATH_MAX];
        int n = snprintf(blob, sizeof(blob), "%s/blobs/sha256-%s", root, digest + 7);
        if (n < 0 || (size_t)n >= sizeof(blob))
            return json_decref(j), -1;
        struct drv_err e2;
        drv_err_init(&e2);
        rc = drv_engine_add_model(e, name, blob, &e2);
        if (rc)
            drv_log(DRV_LOG_WARN, "ollama model %s: %s", name, e2.msg);
    }
    json_decref(j);
    return rc;
}

int drv_engine_add_ollama_store(struct drv_engine *e, const char *dir, struct drv_err *err)
{
    /* manifests/<host>/<namespace>/<model>/<tag> */
    char base[PATH_MAX];
    DIR *hosts = join_path(base, sizeof(base), dir, "manifests") ? opendir(base) : NULL;
    if (hosts == NULL)
        return drv_err_set(err, DRV_ENOENT, "%s: no Ollama manifests", dir);
    int n = 0;
    struct dirent *h;
    while ((h = readdir(hosts)) != NULL) {
        if (!safe_component(h->d_name))
            continue;
        char hp[PATH_MAX];
        DIR *nss = join_path(hp, sizeof(hp), base, h->d_name) ? opendir(hp) : NULL;
        if (nss == NULL)
            continue;
        struct dirent *ns;
        while ((ns = readdir(nss)) != NULL) {
            if (!safe_component(ns->d_name))
                continue;
            char np[PATH_MAX];
            DIR *ms = join_path(np, sizeof(np), hp, ns->d_name) ? opendir(np) : NULL;
            if (ms == NULL)
                continue;
            struct dirent *md;
            while ((md = readdir(ms)) != NULL) {
                if (!safe_component(md->d_name))
                    continue;
                char mp[PATH_MAX];
                DIR *tags = join_path(mp, sizeof(mp), np, md->d_name) ? opendir(mp) : NULL;
                if (tags == NULL)
                    continue;
                struct dirent *t;
                while ((t = readdir(tags)) != NULL) {
                    if (!safe_component(t->d_name))
                        continue;
                    char tp[PATH_MAX], name[300];
                    int nn;
                    if (!join_path(tp, sizeof(tp), mp, t->d_name))
                        continue;
                    bool library = strcmp(h->d_name, "registry.ollama.ai") == 0 &&
                                   strcmp(ns->d_name, "library") == 0;
                    if (library)
                        nn = snprintf(name, sizeof(name), "%s:%s", md->d_name, t->d_name);
                    else if (strcmp(h->d_name, "registry.ollama.ai") == 0)
                        nn = snprintf(name, sizeof(name), "%s/%s:%s", ns->d_name, md->d_name,
                                      t->d_name);
                    else
                        nn = snprintf(name, sizeof(name), "%s/%s/%s:%s", h->d_name, ns->d_name,
                                      md->d_name, t->d_name);
                    if (nn > 0 && (size_t)nn < sizeof(name) &&
                        add_ollama_manifest(e, dir, tp, name) == 0)
                        n++;
                }
                closedir(tags);
            }
            closedir(ms);
        }
        closedir(nss);
    }
    closedir(hosts);
    return n;
}

/* ---- backend ops ---- */

/* With e->mu held: asks least-recently-used idle models to unload until the
 * loaded ones (not counting those already unloading) plus `room` new ones fit
 * --max-loaded. A busy model is never evicted: when all are busy the limit is
 * exceeded, and an idling model calls this again (room 0) to restore it. */
static void enforce_max_loaded(struct drv_engine *e, int room, const struct drv_emodel *want)
{
    int loaded = 0;
    for (int i = 0; i < e->n_models; i++)
        loaded += e->models[i]->state != DRV_MODEL_UNLOADED && !e->models[i]->stop;
    for (; loaded + room > e->p.max_loaded; loaded--) {
        struct drv_emodel *lru = NULL;
        for (int i = 0; i < e->n_models; i++) {
            struct drv_emodel *m = e->models[i];
            if (m == want || m->state != DRV_MODEL_READY || m->stop || m->n_active || m->n_queued)
                continue;
            if (lru == NULL || m->last_used_ns < lru->last_used_ns)
                lru = m;
        }
        if (lru == NULL) {
            if (room)
                drv_log(DRV_LOG_WARN, "max_loaded %d exceeded: every loaded model is busy",
                        e->p.max_loaded);
            return;
        }
        if (want)
            drv_log(DRV_LOG_INFO, "unloading %s to make room for %s", lru->name, want->name);
        else
            drv_log(DRV_LOG_INFO, "unloading %s: more than %d models loaded", lru->name,
                    e->p.max_loaded);
        lru->stop = true;
        pthread_cond_signal(&lru->cond);
    }
}

/* With e->mu held: slots of m not running a request (before m is loaded: the
 * configured count, or 1 when it is chosen at load time). */
static int free_slots(const struct drv_engine *e, const struct drv_emodel *m)
{
    /* n_slots is written by the loading thread before it sets READY under e->mu */
    int slots = m->state == DRV_MODEL_READY ? m->n_slots : e->p.n_parallel ? e->p.n_parallel : 1;
    return slots > m->n_active ? slots - m->n_active : 0;
}

/* Queues j for the named model (starting its thread when it is not loaded).
 * Takes ownership of j. */
static int enqueue(struct drv_engine *e, const char *model, struct drv_job *j, struct drv_err *err)
{
    j->t_arrival = drv_now_ns();
    pthread_mutex_lock(&e->mu);
    struct drv_emodel *m = find_model(e, model);
    int rc = 0;
    if (e->closing) {
        rc = drv_err_set(err, DRV_ETOOBIG, "server is shutting down");
    } else if (m == NULL) {
        rc = drv_err_set(err, DRV_ENOENT, "model \"%s\" not found", model);
    } else if (m->n_queued >= e->p.max_queue + free_slots(e, m)) {
        /* the bound is on requests waiting beyond the free slots: jobs the
         * scheduler has not picked up yet do not count against it */
        rc = drv_err_set(err, DRV_ETOOBIG, "model \"%s\" is busy: %d requests queued", m->name,
                         m->n_queued);
    }
    if (rc) {
        pthread_mutex_unlock(&e->mu);
        drv_job_free(j);
        return rc;
    }
    if (m->q_tail)
        m->q_tail->next = j;
    else
        m->q_head = j;
    m->q_tail = j;
    m->n_queued++;
    m->last_used_ns = j->t_arrival;
    atomic_fetch_add(&m->requests, 1);
    if (!m->thread_running) {
        /* joins a thread that unloaded itself and exited */
        if (m->state == DRV_MODEL_UNLOADED && m->thread) {
            pthread_join(m->thread, NULL);
            m->thread = 0;
        }
        enforce_max_loaded(e, 1, m);
        m->stop = false;
        m->state = DRV_MODEL_LOADING;
        m->thread_running = true;
        if (pthread_create(&m->thread, NULL, drv_sched_main, m) != 0) {
            m->thread_running = false;
            m->state = DRV_MODEL_UNLOADED;
            m->thread = 0;
            m->q_head = m->q_tail = NULL;
            m->n_queued = 0;
            pthread_mutex_unlock(&e->mu);
            /* only this job can be in a queue without a thread */
            drv_job_free(j);
            return drv_err_set(err, DRV_ENOMEM, "cannot start a scheduler thread");
        }
    } else {
        pthread_cond_signal(&m->cond);
    }
    pthread_mutex_unlock(&e->mu);
    return 0;
}

void drv_engine_evict_over_limit(struct drv_engine *e)
{
    enforce_max_loaded(e, 0, NULL);
}

static int engine_generate(struct drv_backend *b, const struct drv_gen_request *req,
                           drv_gen_sink sink, void *sink_ud, struct drv_err *err)
{
    if (req->model == NULL || req->model[0] == '\0')
        return drv_err_set(err, DRV_EINVAL, "model is required");
    struct drv_job *j = job_copy(req);
    if (j == NULL)
        return drv_err_set(err, DRV_ENOMEM, "out of memory");
    if (req->format == DRV_FORMAT_SCHEMA && req->format_schema) {
        /* compiled now, so a bad schema is a 400 before anything is queued */
        struct drv_buf g;
        drv_buf_init(&g, 4u << 20);
        int rc = drv_json_schema_to_gbnf(req->format_schema, &g, err);
        if (rc) {
            drv_buf_release(&g);
            drv_job_free(j);
            return rc == DRV_ENOMEM ? rc : DRV_EINVAL;
        }
        j->grammar = drv_buf_steal(&g);
    }
    j->sink = sink;
    j->sink_ud = sink_ud;
    return enqueue(b->impl, req->model, j, err);
}

static int engine_embed(struct drv_backend *b, const struct drv_embed_request *req, drv_embed_cb cb,
                        void *cb_ud, struct drv_err *err)
{
    if (req->model == NULL || req->model[0] == '\0')
        return drv_err_set(err, DRV_EINVAL, "model is required");
    struct drv_job *j = calloc(1, sizeof(*j));
    if (j == NULL)
        return drv_err_set(err, DRV_ENOMEM, "out of memory");
    j->embed_cb = cb;
    j->embed_ud = cb_ud;
    j->truncate = req->truncate;
    j->keep_alive_ms = req->keep_alive_ms;
    if (req->n_inputs) {
        j->inputs = calloc(req->n_inputs, sizeof(*j->inputs));
        for (size_t i = 0; j->inputs && i < req->n_inputs; i++) {
            j->inputs[i] = strdup(req->inputs[i] ? req->inputs[i] : "");
            if (j->inputs[i] == NULL)
                break;
            j->n_inputs = i + 1;
        }
        if (j->n_inputs != req->n_inputs) {
            drv_job_free(j);
            return drv_err_set(err, DRV_ENOMEM, "out of memory");
        }
    }
    return enqueue(b->impl, req->model, j, err);
}

static void fill_desc(const struct drv_emodel *m, struct drv_model_desc *d)
{
    memset(d, 0, sizeof(*d));
    drv_strlcpy(d->name, m->name, sizeof(d->name));
    drv_strlcpy(d->model, m->name, sizeof(d->model));
    const char *blob = strstr(m->path, "/blobs/sha256-");
    if (blob)
        drv_strlcpy(d->digest, blob + strlen("/blobs/sha256-"), sizeof(d->digest));
    drv_strlcpy(d->family, m->info.arch, sizeof(d->family));
    drv_fmt_count(m->info.n_params, d->parameter_size, sizeof(d->parameter_size));
    drv_strlcpy(d->quantization, m->info.quant, sizeof(d->quantization));
    d->size = m->info.file_size;
    d->modified_at = m->mtime;
    d->embedding_length = m->info.hp.n_embd;
    d->has_chat_template = m->info.has_chat_template;
    d->n_params = m->info.n_params;
    d->n_ctx_train = m->info.hp.n_ctx_train;
    d->block_count = m->info.hp.n_block;
    d->head_count = m->info.hp.n_head;
    d->head_count_kv = m->info.hp.n_head_kv;
    const struct drv_hparams *hp = &m->info.hp;
    d->key_length = hp->head_dim_k;
    d->value_length = hp->head_dim_v;
    d->key_length_swa = hp->head_dim_k_swa;
    d->value_length_swa = hp->head_dim_v_swa;
    d->feed_forward_length = hp->n_ff;
    d->sliding_window = hp->n_swa;
    d->expert_count = hp->n_expert;
    d->expert_used_count = hp->n_expert_used;
    d->expert_feed_forward_length = hp->n_ff_exp;
    d->vocab_size = hp->n_vocab;
    d->size_resident = m->size_resident;
    d->size_vram = m->size_vram;
    d->context_length = m->n_ctx_slot;
    d->expires_at = m->expires_at_ms > 0 ? m->expires_at_ms / 1000 : 0;
}

static int engine_list(struct drv_backend *b, struct drv_model_desc *out, int cap, bool running)
{
    struct drv_engine *e = b->impl;
    int n = 0;
    pthread_mutex_lock(&e->mu);
    for (int i = 0; i < e->n_models; i++) {
        struct drv_emodel *m = e->models[i];
        if (running && m->state != DRV_MODEL_READY)
            continue;
        if (n < cap)
            fill_desc(m, &out[n]);
        n++;
    }
    for (int i = 0; !running && i < e->n_aliases; i++) {
        if (n < cap) {
            fill_desc(e->aliases[i].target, &out[n]);
            drv_strlcpy(out[n].name, e->aliases[i].name, sizeof(out[n].name));
            drv_strlcpy(out[n].model, e->aliases[i].name, sizeof(out[n].model));
        }
        n++;
    }
    pthread_mutex_unlock(&e->mu);
    return n;
}

static int engine_list_models(struct drv_backend *b, struct drv_model_desc *out, int cap)
{
    return engine_list(b, out, cap, false);
}

static int engine_list_running(struct drv_backend *b, struct drv_model_desc *out, int cap)
{
    return engine_list(b, out, cap, true);
}

static const struct drv_backend_ops engine_ops = {
    .generate = engine_generate,
    .embed = engine_embed,
    .list_models = engine_list_models,
    .list_running = engine_list_running,
};

void drv_engine_init_llama(void)
{
    pthread_once(&llama_once, llama_init_once);
}

struct drv_engine *drv_engine_new(const struct drv_engine_params *params, struct drv_err *err)
{
    drv_engine_init_llama();
    struct drv_engine *e = calloc(1, sizeof(*e));
    if (e == NULL) {
        drv_err_set(err, DRV_ENOMEM, "out of memory");
        return NULL;
    }
    e->p = params ? *params : drv_engine_default_params();
    if (e->p.n_parallel < 0)
        e->p.n_parallel = 0;
    if (e->p.n_batch < 32)
        e->p.n_batch = 32;
    if (e->p.max_loaded < 1)
        e->p.max_loaded = 1;
    if (e->p.max_queue < 0)
        e->p.max_queue = 0;
    pthread_mutex_init(&e->mu, NULL);
    e->backend.ops = &engine_ops;
    e->backend.impl = e;
    return e;
}

struct drv_backend *drv_engine_backend(struct drv_engine *e)
{
    return &e->backend;
}

void drv_engine_free(struct drv_engine *e)
{
    if (e == NULL)
        return;
    pthread_mutex_lock(&e->mu);
    e->closing = true;
    for (int i = 0; i < e->n_models; i++) {
        e->models[i]->stop = true;
        pthread_cond_signal(&e->models[i]->cond);
    }
    pthread_mutex_unlock(&e->mu);
    for (int i = 0; i < e->n_models; i++) {
        struct drv_emodel *m = e->models[i];
        if (m->thread)
            pthread_join(m->thread, NULL);
        pthread_cond_destroy(&m->cond);
        free(m);
    }
    free(e->models);
    free(e->aliases);
    pthread_mutex_destroy(&e->mu);
    free(e);
}

void drv_engine_metrics(struct drv_engine *e, struct drv_engine_metrics *out)
{
    memset(out, 0, sizeof(*out));
    struct drv_engine_model_metrics mm;
    pthread_mutex_lock(&e->mu);
    for (int i = 0; i < e->n_models; i++) {
        drv_engine_model_metrics_of(e->models[i], &mm);
        out->requests_total += mm.requests;
        out->prompt_tokens_total += mm.prompt_tokens;
        out->generated_tokens_total += mm.generated_tokens;
        out->busy_slots += mm.busy_slots;
        out->queued += mm.queued;
        out->loaded_models += mm.loaded;
    }
    pthread_mutex_unlock(&e->mu);
}

/* With e->mu held. */
void drv_engine_model_metrics_of(const struct drv_emodel *m, struct drv_engine_model_metrics *out)
{
    drv_strlcpy(out->name, m->name, sizeof(out->name));
    out->requests = atomic_load(&m->requests);
    out->prompt_tokens = atomic_load(&m->prompt_tokens);
    out->generated_tokens = atomic_load(&m->generated_tokens);
    out->loads = atomic_load(&m->loads);
    out->truncated = atomic_load(&m->truncated);
    out->busy_slots = m->n_active;
    out->queued = m->n_queued;
    out->loaded = m->state == DRV_MODEL_READY;
}

int drv_engine_model_metrics(struct drv_engine *e, struct drv_engine_model_metrics *out, int cap)
{
    pthread_mutex_lock(&e->mu);
    int n = e->n_models;
    for (int i = 0; i < n && i < cap; i++)
        drv_engine_model_metrics_of(e->models[i], &out[i]);
    pthread_mutex_unlock(&e->mu);
    return n;
}
