/* http: a real server on 127.0.0.1 (ephemeral port), driven with libcurl and, where
 * the client has to misbehave on purpose, with a raw socket.
 *
 * Handlers and producer threads never call cmocka asserts (they are not on the
 * test thread); they report through the globals below and the test asserts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <curl/curl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "http/http.h"

/* ---- shared state between handlers, producers and the test ------------------ */

static atomic_int g_handler_calls;
static atomic_size_t g_received;   /* bytes the lockstep client has received */
static atomic_int g_prod_failures; /* producer saw something wrong */
static atomic_int g_prod_rc;       /* last nonzero write() result */
static atomic_bool g_prod_saw_cancel;
static atomic_bool g_prod_go; /* lets a holding producer finish */
static atomic_int g_streams_opened;
static atomic_int g_flood_done;
static atomic_int g_deferred;              /* streams the /defer handler parked */
static atomic_bool g_cancel_seen;          /* a deferred producer saw its cancel flag */
static atomic_uint_fast64_t g_t_cancel_ns; /* when it did */
static atomic_long g_handler_tid;          /* thread of the last /json or /stream handler: with
                                              a thread per connection, says which connection */

static struct {
    pthread_mutex_t mu;
    pthread_t t[128];
    int n;
} g_prod = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void reset_pump_globals(void);

static void reset_globals(void)
{
    atomic_store(&g_handler_calls, 0);
    atomic_store(&g_received, 0);
    atomic_store(&g_prod_failures, 0);
    atomic_store(&g_prod_rc, 0);
    atomic_store(&g_prod_saw_cancel, false);
    atomic_store(&g_prod_go, false);
    atomic_store(&g_streams_opened, 0);
    atomic_store(&g_flood_done, 0);
    atomic_store(&g_deferred, 0);
    atomic_store(&g_cancel_seen, false);
    atomic_store(&g_t_cancel_ns, 0);
    atomic_store(&g_handler_tid, 0);
    reset_pump_globals();
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Polls cond until true or ms elapse; true when it became true. */
static bool wait_flag(atomic_bool *flag, int ms)
{
    for (int i = 0; i < ms; i++) {
        if (atomic_load(flag))
            return true;
        sleep_ms(1);
    }
    return atomic_load(flag);
}

static bool wait_size(atomic_size_t *v, size_t target, int ms)
{
    for (int i = 0; i < ms; i++) {
        if (atomic_load(v) >= target)
            return true;
        sleep_ms(1);
    }
    return atomic_load(v) >= target;
}

struct prod_arg {
    struct drv_http_stream *s;
    int id;
    char mode[16];
};

static void spawn_producer(void *(*fn)(void *), struct drv_http_stream *s, int id, const char *mode)
{
    struct prod_arg *a = calloc(1, sizeof(*a));
    a->s = s;
    a->id = id;
    snprintf(a->mode, sizeof(a->mode), "%s", mode ? mode : "");
    pthread_mutex_lock(&g_prod.mu);
    if (g_prod.n < (int)(sizeof(g_prod.t) / sizeof(g_prod.t[0])) &&
        pthread_create(&g_prod.t[g_prod.n], NULL, fn, a) == 0) {
        g_prod.n++;
    } else {
        atomic_fetch_add(&g_prod_failures, 1);
        drv_http_stream_close(s);
        free(a);
    }
    pthread_mutex_unlock(&g_prod.mu);
}

static void join_producers(void)
{
    pthread_mutex_lock(&g_prod.mu);
    int n = g_prod.n;
    g_prod.n = 0;
    pthread_mutex_unlock(&g_prod.mu);
    for (int i = 0; i < n; i++)
        pthread_join(g_prod.t[i], NULL);
}

/* ---- handlers ------------------------------------------------------------------ */

static void h_json(struct drv_http_req *req, void *ud)
{
    (void)ud;
    atomic_fetch_add(&g_handler_calls, 1);
    atomic_store(&g_handler_tid, (long)gettid());
    drv_http_respond(req, 200, "application/json", "{\"ok\":true}", 11);
}

static void h_info(struct drv_http_req *req, void *ud)
{
    (void)ud;
    atomic_fetch_add(&g_handler_calls, 1);
    json_t *o = json_pack("{s:s?, s:s?, s:s?, s:s?, s:s, s:s}", "q", drv_http_req_query(req, "q"),
                          "h", drv_http_req_header(req, "x-drover-test"), "missing_q",
                          drv_http_req_query(req, "nope"), "missing_h",
                          drv_http_req_header(req, "X-Not-There"), "addr",
                          drv_http_req_client_addr(req), "method", drv_http_req_method(req));
    char *s = json_dumps(o, JSON_COMPACT);
    drv_http_respond(req, 200, "application/json", s, strlen(s));
    free(s);
    json_decref(o);
}

static void h_echo(struct drv_http_req *req, void *ud)
{
    (void)ud;
    atomic_fetch_add(&g_handler_calls, 1);
    size_t len;
    const char *body = drv_http_req_body(req, &len);
    drv_http_req_add_header(req, "X-Nul-Terminated", body[len] == '\0' ? "yes" : "no");
    drv_http_respond(req, 200, "application/octet-stream", body, len);
}

static void h_busy(struct drv_http_req *req, void *ud)
{
    (void)ud;
    atomic_fetch_add(&g_handler_calls, 1);
    drv_http_req_add_header(req, "Retry-After", "5");
    drv_http_respond_json_error(req, 503, "busy \"now\"\n\\ é");
}

static void h_silent(struct drv_http_req *req, void *ud)
{
    (void)req;
    (void)ud;
    atomic_fetch_add(&g_handler_calls, 1);
}

static void h_twice(struct drv_http_req *req, void *ud)
{
    (void)ud;
    atomic_fetch_add(&g_handler_calls, 1);
    drv_http_respond(req, 201, "text/plain", "first", 5);
    if (drv_http_respond(req, 200, "text/plain", "second", 6) == 0)
        atomic_fetch_add(&g_prod_failures, 1);
    if (drv_http_stream_open(req, 200, "text/plain") != NULL)
        atomic_fetch_add(&g_prod_failures, 1);
}

/* Writes 10 chunks, each only after the client has received the previous one:
 * a server that buffered the stream until close would stall this. */
static void *p_lockstep(void *arg)
{
    struct prod_arg *a = arg;
    size_t sent = 0;
    for (int i = 0; i < 10; i++) {
        char chunk[32];
        int n = snprintf(chunk, sizeof(chunk), "chunk-%d\n", i);
        sleep_ms(3);
        if (drv_http_stream_write(a->s, chunk, (size_t)n) != 0) {
            atomic_fetch_add(&g_prod_failures, 1);
            break;
        }
        sent += (size_t)n;
        if (!wait_size(&g_received, sent, 5000)) {
            atomic_fetch_add(&g_prod_failures, 1);
            break;
        }
    }
    drv_http_stream_close(a->s);
    free(a);
    return NULL;
}

/* Writes one chunk, then (mode "idle") waits for the cancel flag, or (mode "busy")
 * keeps writing until a write fails. Reports the write result. */
static void *p_until_cancel(void *arg)
{
    struct prod_arg *a = arg;
    atomic_bool *cancel = drv_http_stream_cancel_flag(a->s);
    int rc = drv_http_stream_write(a->s, "hello\n", 6);
    if (rc != 0)
        atomic_fetch_add(&g_prod_failures, 1);
    if (strcmp(a->mode, "busy") == 0) {
        for (int i = 0; i < 5000 && rc == 0; i++) {
            sleep_ms(1);
            rc = drv_http_stream_write(a->s, "tick\n", 5);
        }
    } else {
        wait_flag(cancel, 5000);
        rc = drv_http_stream_write(a->s, "late\n", 5);
    }
    atomic_store(&g_prod_saw_cancel, atomic_load(cancel));
    atomic_store(&g_prod_rc, rc);
    wait_flag(&g_prod_go, 5000); /* the test may free the server before we close */
    drv_http_stream_close(a->s);
    free(a);
    return NULL;
}

static void *p_short(void *arg)
{
    struct prod_arg *a = arg;
    for (int i = 0; i < 3; i++) {
        char chunk[32];
        int n = snprintf(chunk, sizeof(chunk), "%d-%d;", a->id, i);
        if (drv_http_stream_write(a->s, chunk, (size_t)n) != 0)
            atomic_fetch_add(&g_prod_failures, 1);
        sleep_ms(1);
    }
    drv_http_stream_close(a->s);
    free(a);
    return NULL;
}

/* Writes as fast as it can into a client that never reads. */
static void *p_flood(void *arg)
{
    struct prod_arg *a = arg;
    char kb[1024];
    memset(kb, 'f', sizeof(kb));
    int rc = 0;
    for (int i = 0; i < 64 * 1024 && rc == 0; i++)
        rc = drv_http_stream_write(a->s, kb, sizeof(kb));
    atomic_store(&g_prod_rc, rc);
    atomic_store(&g_prod_saw_cancel, atomic_load(drv_http_stream_cancel_flag(a->s)));
    drv_http_stream_close(a->s);
    free(a);
    atomic_store(&g_flood_done, 1);
    return NULL;
}

static void h_stream(struct drv_http_req *req, void *ud)
{
    (void)ud;
    atomic_fetch_add(&g_handler_calls, 1);
    atomic_store(&g_handler_tid, (long)gettid());
    const char *kind = drv_http_req_query(req, "kind");
    const char *id = drv_http_req_query(req, "id");
    const char *mode = drv_http_req_query(req, "mode");
    void *(*fn)(void *) = p_lockstep;
    if (kind && strcmp(kind, "cancel") == 0)
        fn = p_until_cancel;
    else if (kind && strcmp(kind, "short") == 0)
        fn = p_short;
    else if (kind && strcmp(kind, "flood") == 0)
        fn = p_flood;
    drv_http_req_add_header(req, "Cache-Control", "no-cache");
    struct drv_http_stream *s = drv_http_stream_open(req, 200, "application/x-ndjson");
    if (s == NULL)
        return;
    atomic_fetch_add(&g_streams_opened, 1);
    if (strcmp(drv_http_req_method(req), "HEAD") == 0) {
        if (!atomic_load(drv_http_stream_cancel_flag(s)))
            atomic_fetch_add(&g_prod_failures, 1);
        drv_http_stream_close(s);
        return;
    }
    spawn_producer(fn, s, id ? atoi(id) : 0, mode);
}

/* ---- deferred responses ------------------------------------------------------ */

static void fail_unless(bool ok)
{
    if (!ok)
        atomic_fetch_add(&g_prod_failures, 1);
}

/* The producer of a deferred stream; its mode says how it answers. */
static void *p_deferred(void *arg)
{
    struct prod_arg *a = arg;
    struct drv_http_stream *s = a->s;
    atomic_bool *cancel = drv_http_stream_cancel_flag(s);
    const char *m = a->mode;
    sleep_ms(30); /* answer well after the handler returned */
    if (strcmp(m, "respond404") == 0) {
        static const char body[] = "{\"error\":\"no such thing\"}";
        fail_unless(drv_http_stream_respond(s, 404, "application/json", body, sizeof(body) - 1) ==
                    0);
        fail_unless(drv_http_stream_write(s, "x", 1) != 0);    /* only close is allowed */
        fail_unless(drv_http_stream_start(s, 200, NULL) != 0); /* answered already */
    } else if (strcmp(m, "stream") == 0 || strcmp(m, "prewrite") == 0) {
        if (strcmp(m, "prewrite") == 0) {
            fail_unless(drv_http_stream_write(s, "early-1\n", 8) == 0);
            fail_unless(drv_http_stream_write(s, "early-2\n", 8) == 0);
            sleep_ms(30);
        }
        fail_unless(drv_http_stream_start(s, 200, "application/x-ndjson") == 0);
        fail_unless(drv_http_stream_add_header(s, "X-Late", "1") != 0); /* too late */
        for (int i = 0; i < 5; i++) {
            char line[32];
            int n = snprintf(line, sizeof(line), "line-%d\n", i);
            fail_unless(drv_http_stream_write(s, line, (size_t)n) == 0);
            sleep_ms(5);
        }
    } else if (strcmp(m, "late") == 0) {
        /* nothing at all for 400 ms (a node reading a long prompt), then lines */
        sleep_ms(400);
        fail_unless(drv_http_stream_start(s, 200, "application/x-ndjson") == 0);
        for (int i = 0; i < 5 && !atomic_load(cancel); i++) {
            fail_unless(drv_http_stream_write(s, "late\n", 5) == 0 || atomic_load(cancel));
            sleep_ms(5);
        }
    } else if (strcmp(m, "retry") == 0) {
        fail_unless(drv_http_stream_add_header(s, "Retry-After", "7") == 0);
        fail_unless(drv_http_stream_add_header(s, "Bad", "a\r\nb") == DRV_EINVAL);
        static const char body[] = "{\"error\":\"busy\"}";
        fail_unless(drv_http_stream_respond(s, 503, "application/json", body, sizeof(body) - 1) ==
                    0);
    } else if (strcmp(m, "id") == 0) {
        char body[32];
        int n = snprintf(body, sizeof(body), "id-%d", a->id);
        fail_unless(drv_http_stream_respond(s, 200, "text/plain", body, (size_t)n) == 0);
    } else if (strcmp(m, "cancel") == 0) {
        /* parked until the client leaves (or 5 s) */
        if (wait_flag(cancel, 5000)) {
            atomic_store(&g_t_cancel_ns, drv_now_ns());
            atomic_store(&g_cancel_seen, true);
        }
        atomic_store(&g_prod_rc, drv_http_stream_start(s, 200, "text/plain"));
    } else if (strcmp(m, "hold") == 0) {
        /* holds the parked stream until the test lets go (after server_free) */
        wait_flag(&g_prod_go, 10000);
        if (atomic_load(cancel))
            atomic_store(&g_cancel_seen, true);
        else
            fail_unless(false);
        fail_unless(drv_http_stream_respond(s, 200, "text/plain", "late", 4) == DRV_EIO);
    }
    /* mode "close": nothing, the client must get a 500 */
    drv_http_stream_close(s);
    free(a);
    return NULL;
}

static void h_defer(struct drv_http_req *req, void *ud)
{
    (void)ud;
    atomic_fetch_add(&g_handler_calls, 1);
    const char *mode = drv_http_req_query(req, "mode");
    const char *id = drv_http_req_query(req, "id");
    drv_http_req_add_header(req, "Cache-Control", "no-cache");
    struct drv_http_stream *s = drv_http_stream_defer(req);
    if (s == NULL)
        return;
    atomic_fetch_add(&g_deferred, 1);
    spawn_producer(p_deferred, s, id ? atoi(id) : 0, mode ? mode : "close");
}

/* ---- pumps: producer work lent to the connection's thread ------------------------ */

enum { PUMP_MAX_IDLE = 5000 }; /* idle calls before a pump gives up (and reports it) */

/* The one pump of the test that is running; only its connection's thread touches
 * it until g_pump_finals says it is done. */
static struct {
    struct drv_http_stream *s;
    pthread_t handler_thread;
    char mode[16];
    bool open; /* the handler opened the stream (no start needed) instead of deferring */
    int n;     /* chunks to write */
    int calls;
    int idle;
    int written;
    size_t sent;
    int after_cancel; /* calls since it saw the cancel flag, the final one included */
    bool done;
} g_pump;

static atomic_int g_pumps_set;       /* handlers that lent a pump */
static atomic_int g_pump_calls;      /* every call, both pumps of a handover */
static atomic_int g_pump_b_calls;    /* calls of the second pump of a handover */
static atomic_int g_pump_finals;     /* calls that closed the stream and returned 0 */
static atomic_int g_pump_late;       /* calls after the final one */
static atomic_int g_pump_off_thread; /* calls not on the handler's thread */
static atomic_bool g_pump_saw_cancel;
static atomic_bool g_pump_release; /* lets the "respond" pump finish */
static atomic_bool g_pump_go;      /* lets a "late" handler go on */
static atomic_uint_fast64_t g_t_pump_cancel_ns;

static void reset_pump_globals(void)
{
    memset(&g_pump, 0, sizeof(g_pump));
    atomic_store(&g_pumps_set, 0);
    atomic_store(&g_pump_calls, 0);
    atomic_store(&g_pump_b_calls, 0);
    atomic_store(&g_pump_finals, 0);
    atomic_store(&g_pump_late, 0);
    atomic_store(&g_pump_off_thread, 0);
    atomic_store(&g_pump_saw_cancel, false);
    atomic_store(&g_pump_release, false);
    atomic_store(&g_pump_go, false);
    atomic_store(&g_t_pump_cancel_ns, 0);
}

/* Bookkeeping of every call; false for a call that should never have come. */
static bool pump_enter(void)
{
    atomic_fetch_add(&g_pump_calls, 1);
    if (!pthread_equal(pthread_self(), g_pump.handler_thread))
        atomic_fetch_add(&g_pump_off_thread, 1);
    if (g_pump.done) {
        atomic_fetch_add(&g_pump_late, 1);
        return false;
    }
    g_pump.calls++;
    return true;
}

/* The producer is done: closes its stream; the pump returns this 0. */
static int pump_finish(void)
{
    g_pump.done = true;
    drv_http_stream_close(g_pump.s);
    atomic_fetch_add(&g_pump_finals, 1);
    return 0;
}

/* Once its stream is cancelled a pump winds down over three calls, as one that
 * still has its own I/O to finish would: the server must call it until it
 * returns 0. -1 while not cancelled. */
static int pump_if_cancelled(void)
{
    if (!atomic_load(drv_http_stream_cancel_flag(g_pump.s)))
        return -1;
    if (!atomic_load(&g_pump_saw_cancel)) {
        atomic_store(&g_t_pump_cancel_ns, drv_now_ns());
        atomic_store(&g_pump_saw_cancel, true);
    }
    return ++g_pump.after_cancel < 3 ? 1 : pump_finish();
}

/* A step with nothing ready: waits a little for "its I/O", as a real pump does. */
static int pump_idle(int ms)
{
    sleep_ms(ms);
    if (++g_pump.idle < PUMP_MAX_IDLE)
        return 1;
    atomic_fetch_add(&g_prod_failures, 1); /* nobody noticed for far too long */
    return pump_finish();
}

/* Handed over to by pump_main's "handover" mode: writes three chunks, a call each. */
static int pump_b(void *ud)
{
    (void)ud;
    atomic_fetch_add(&g_pump_b_calls, 1);
    if (!pump_enter())
        return 0;
    int rc = pump_if_cancelled();
    if (rc >= 0)
        return rc;
    if (g_pump.written == 3)
        return pump_finish();
    char chunk[16];
    int k = snprintf(chunk, sizeof(chunk), "b-%d\n", g_pump.written++);
    fail_unless(drv_http_stream_write(g_pump.s, chunk, (size_t)k) == 0);
    return 1;
}

/* The pump the /pump handler lends; its mode says what it produces:
 *   stream   commits a stream (unless opened), then writes n chunks, each once the
 *            client has received the one before (a server that only sent after
 *            the pump finished would stall it)
 *   respond  commits a complete response, then keeps "finishing its I/O" until
 *            the test has the response (g_pump_release)
 *   idle     never produces anything, until cancelled
 *   started  commits a stream and writes "hello\n", then as idle
 *   handover commits a stream, writes "a\n" and hands over to pump_b */
static int pump_main(void *ud)
{
    (void)ud;
    if (!pump_enter())
        return 0;
    int rc = pump_if_cancelled();
    if (rc >= 0)
        return rc;
    struct drv_http_stream *s = g_pump.s;
    const char *m = g_pump.mode;
    int call = g_pump.calls;
    if (strcmp(m, "stream") == 0) {
        if (call == 1 && !g_pump.open) {
            fail_unless(drv_http_stream_start(s, 200, "application/x-ndjson") == 0);
            return 1;
        }
        if (g_pump.written == g_pump.n)
            return pump_finish();
        if (atomic_load(&g_received) < g_pump.sent)
            return pump_idle(1);
        char chunk[16];
        int k = snprintf(chunk, sizeof(chunk), "p-%d\n", g_pump.written++);
        fail_unless(drv_http_stream_write(s, chunk, (size_t)k) == 0);
        g_pump.sent += (size_t)k;
        return 1;
    }
    if (strcmp(m, "respond") == 0) {
        if (call == 1) {
            fail_unless(drv_http_stream_respond(s, 200, "text/plain", "whole answer", 12) == 0);
            fail_unless(drv_http_stream_write(s, "x", 1) == DRV_EINVAL); /* it is complete */
            return 1;
        }
        return atomic_load(&g_pump_release) ? pump_finish() : pump_idle(1);
    }
    if (strcmp(m, "started") == 0 && call == 1) {
        fail_unless(drv_http_stream_start(s, 200, "text/plain") == 0);
        fail_unless(drv_http_stream_write(s, "hello\n", 6) == 0);
        return 1;
    }
    if (strcmp(m, "handover") == 0) {
        if (call == 1)
            return pump_idle(1); /* the request stays parked through an idle step */
        fail_unless(drv_http_stream_start(s, 200, "text/plain") == 0);
        fail_unless(drv_http_stream_write(s, "a\n", 2) == 0);
        drv_http_stream_set_pump(s, pump_b, NULL);
        return 0; /* this one is done; the stream is pump_b's now */
    }
    return pump_idle(10); /* "idle", and "started" after its first call */
}

/* /pump?mode=M[&n=N][&open=1][&late=1]: defers (or, with open, opens a stream)
 * and lends the connection's thread to pump_main. late: waits for g_pump_go and
 * a while more before answering, so that the server may be stopping by then. */
static void h_pump(struct drv_http_req *req, void *ud)
{
    (void)ud;
    atomic_fetch_add(&g_handler_calls, 1);
    const char *mode = drv_http_req_query(req, "mode");
    const char *n = drv_http_req_query(req, "n");
    if (drv_http_req_query(req, "late")) {
        wait_flag(&g_pump_go, 5000);
        sleep_ms(300);
    }
    memset(&g_pump, 0, sizeof(g_pump));
    snprintf(g_pump.mode, sizeof(g_pump.mode), "%s", mode ? mode : "stream");
    g_pump.n = n ? atoi(n) : 0;
    g_pump.open = drv_http_req_query(req, "open") != NULL;
    g_pump.handler_thread = pthread_self();
    g_pump.s = g_pump.open ? drv_http_stream_open(req, 200, "application/x-ndjson")
                           : drv_http_stream_defer(req);
    if (g_pump.s == NULL) {
        atomic_fetch_add(&g_prod_failures, 1);
        return;
    }
    drv_http_stream_set_pump(g_pump.s, pump_main, NULL);
    atomic_fetch_add(&g_pumps_set, 1);
}

static const struct drv_http_route routes[] = {
    {"GET", "/json", h_json},   {NULL, "/info", h_info},      {"POST", "/echo", h_echo},
    {"PUT", "/echo", h_echo},   {"GET", "/busy", h_busy},     {"GET", "/silent", h_silent},
    {"GET", "/twice", h_twice}, {"GET", "/stream", h_stream}, {"GET", "/defer", h_defer},
    {"GET", "/pump", h_pump},
};

/* ---- client helpers -------------------------------------------------------------- */

static struct drv_http_server *start(size_t max_body, size_t max_stream)
{
    reset_globals();
    struct drv_http_params p = drv_http_default_params();
    if (max_body)
        p.max_body_bytes = max_body;
    if (max_stream)
        p.max_stream_buffer = max_stream;
    struct drv_err err;
    drv_err_init(&err);
    struct drv_http_server *srv =
        drv_http_server_new(&p, routes, sizeof(routes) / sizeof(routes[0]), NULL, &err);
    if (srv == NULL)
        fail_msg("server_new: %s", err.msg);
    assert_int_not_equal(drv_http_server_port(srv), 0);
    return srv;
}

struct reply {
    long status;
    CURLcode code;
    struct drv_buf body;
    struct drv_buf headers;
    int write_calls;
    bool abort_on_data; /* return 0 from the write callback: curl drops the connection */
    bool count_received;
};

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    struct reply *r = ud;
    r->write_calls++;
    if (r->abort_on_data)
        return 0;
    if (drv_buf_append(&r->body, p, size * n) != 0)
        return 0;
    if (r->count_received)
        atomic_fetch_add(&g_received, size * n);
    return size * n;
}

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
    struct reply *r = ud;
    drv_buf_append(&r->headers, p, size * n);
    return size * n;
}

static void reply_init(struct reply *r)
{
    memset(r, 0, sizeof(*r));
    drv_buf_init(&r->body, 64 << 20);
    drv_buf_init(&r->headers, 1 << 20);
}

static void reply_release(struct reply *r)
{
    drv_buf_release(&r->body);
    drv_buf_release(&r->headers);
}

static const char *body_of(const struct reply *r)
{
    return r->body.data ? r->body.data : "";
}

static bool has_header(const struct reply *r, const char *line)
{
    return r->headers.data && strcasestr(r->headers.data, line) != NULL;
}

static CURL *easy_for(struct drv_http_server *srv, const char *method, const char *path,
                      struct reply *r)
{
    char url[512];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u%s", drv_http_server_port(srv), path);
    CURL *c = curl_easy_init();
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    if (strcmp(method, "HEAD") == 0)
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    else if (strcmp(method, "GET") != 0)
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    return c;
}

static void perform(CURL *c, struct reply *r)
{
    r->code = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    curl_easy_cleanup(c);
}

static void request(struct drv_http_server *srv, const char *method, const char *path,
                    const void *body, size_t len, struct curl_slist *hdrs, struct reply *r)
{
    CURL *c = easy_for(srv, method, path, r);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    }
    if (hdrs)
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    perform(c, r);
}

/* The server still answers a plain request; then it is freed. */
static void serving_then_free(struct drv_http_server *srv)
{
    struct reply r;
    reply_init(&r);
    request(srv, "GET", "/json", NULL, 0, NULL, &r);
    assert_int_equal(r.status, 200);
    reply_release(&r);
    drv_http_server_free(srv);
}

/* Parses r's body as {"error": "..."} and returns a copy of the message. */
static char *json_error_of(const struct reply *r)
{
    json_error_t je;
    json_t *o = json_loads(body_of(r), 0, &je);
    if (o == NULL)
        return NULL;
    const char *m = json_string_value(json_object_get(o, "error"));
    char *copy = m ? strdup(m) : NULL;
    json_decref(o);
    return copy;
}

static void assert_json_error(const struct reply *r, long status)
{
    assert_int_equal(r->code, CURLE_OK);
    assert_int_equal(r->status, status);
    assert_true(has_header(r, "Content-Type: application/json"));
    char *m = json_error_of(r);
    assert_non_null(m);
    assert_true(strlen(m) > 0);
    free(m);
}

static int raw_connect(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    return fd;
}

static void raw_send(int fd, const char *s)
{
    assert_int_equal(send(fd, s, strlen(s), MSG_NOSIGNAL), (ssize_t)strlen(s));
}

/* Reads into out until `needle` shows up, EOF, or ms elapse. */
static void raw_read(int fd, struct drv_buf *out, const char *needle, int ms)
{
    uint64_t end = drv_now_ns() + (uint64_t)ms * 1000000u;
    while (drv_now_ns() < end) {
        if (needle && out->data && strstr(out->data, needle))
            return;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 10) <= 0)
            continue;
        char buf[4096];
        ssize_t n = recv(fd, buf, sizeof(buf), 0);
        if (n <= 0)
            return;
        assert_int_equal(drv_buf_append(out, buf, (size_t)n), 0);
    }
}

/* ---- tests ------------------------------------------------------------------------ */

static void plain_json_response(void **state)
{
    (void)state;
    struct drv_http_server *srv = start(0, 0);
    struct reply r;
    reply_init(&r);
    request(srv, "GET", "/json", NULL, 0, NULL, &r);
    assert_int_equal(r.code, CURLE_OK);
    assert_int_equal(r.status, 200);
    assert_string_equal(body_of(&r), "{\"ok\":true}");
    assert_true(has_header(&r, "Content-Type: application/json"));
    assert_int_equal(atomic_load(&g_handler_calls), 1);
    reply_release(&r);
    drv_http_server_free(srv);
}

static void unknown_path_is_json_404(void **state)
{
    (void)state;
    struct drv_http_server *srv = start(0, 0);
    struct reply r;
    reply_init(&r);
    request(srv, "GET", "/nope", NULL, 0, NULL, &r);
    assert_json_error(&r, 404);
    reply_release(&r);
    /* a body sent to an unknown path is dropped, not handed to anyone */
    reply_init(&r);
    request(srv, "POST", "/json/extra", "{}", 2, NULL, &r);
    assert_json_error(&r, 404);
    reply_release(&r);
    assert_int_equal(atomic_load(&g_handler_calls), 0);
    drv_http_server_free(srv);
}

static void wrong_method_is_json_405_with_allow(void **state)
{
    (void)state;
    struct drv_http_server *srv = start(0, 0);
    struct reply r;
    reply_init(&r);
    request(srv, "POST", "/json", "x", 1, NULL, &r);
    assert_json_error(&r, 405);
    assert_true(has_header(&r, "Allow: GET, HEAD\r\n"));
    reply_release(&r);

    reply_init(&r);
    request(srv, "DELETE", "/echo", NULL, 0, NULL, &r);
    assert_json_error(&r, 405);
    assert_true(has_header(&r, "Allow: POST, PUT\r\n"));
    reply_release(&r);

    /* a NULL-method route takes any method */
    reply_init(&r);
    request(srv, "DELETE", "/info", NULL, 0, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(body_of(&r), "\"method\":\"DELETE\""));
    reply_release(&r);
    assert_int_equal(atomic_load(&g_handler_calls), 1);
    drv_http_server_free(srv);
}

static void head_answers_like_get_without_body(void **state)
{
    (void)state;
    struct drv_http_server *srv = start(0, 0);
    struct reply r;
    reply_init(&r);
    request(srv, "HEAD", "/json", NULL, 0, NULL, &r);
    assert_int_equal(r.code, CURLE_OK);
    assert_int_equal(r.status, 200);
    assert_true(has_header(&r, "Content-Type: application/json"));
    assert_true(has_header(&r, "Content-Length: 11"));
    reply_release(&r);

    /* on the wire: headers and nothing after them */
    int fd = raw_connect(drv_http_server_port(srv));
    raw_send(fd, "HEAD /json HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    struct drv_buf raw;
    drv_buf_init(&raw, 1 << 20);
    raw_read(fd, &raw, NULL, 2000); /* until the server closes */
    close(fd);
    assert_non_null(raw.data);
    assert_true(strncmp(raw.data, "HTTP/1.1 200", 12) == 0);
    const char *end = strstr(raw.data, "\r\n\r\n");
    assert_non_null(end);
    assert_string_equal(end, "\r\n\r\n");
    drv_buf_release(&raw);

    /* HEAD on a streaming GET route: headers, no body, the stream starts cancelled */
    reply_init(&r);
    request(srv, "HEAD", "/stream", NULL, 0, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_true(has_header(&r, "Content-Type: application/x-ndjson"));
    assert_int_equal(atomic_load(&g_streams_opened), 1);
    assert_int_equal(atomic_load(&g_prod_failures), 0);
    reply_release(&r);
    assert_int_equal(atomic_load(&g_handler_calls), 3);
    drv_http_server_free(srv);
}

static void query_header_and_client_addr(void **state)
{
    (void)state;
    struct drv_http_server *srv = start(0, 0);
    struct reply r;
    reply_init(&r);
    struct curl_slist *h = curl_slist_append(NULL, "X-Drover-Test: Abc 1");
    request(srv, "GET", "/info?x=1&q=hello%20world&q=second", NULL, 0, h, &r);
    curl_slist_free_all(h);
    assert_int_equal(r.status, 200);
    json_t *o = json_loads(body_of(&r), 0, NULL);
    assert_non_null(o);
    assert_string_equal(json_string_value(json_object_get(o, "q")), "hello world");
    assert_string_equal(json_string_value(json_object_get(o, "h")), "Abc 1");
    assert_true(json_is_null(json_object_get(o, "missing_q")));
    assert_true(json_is_null(json_object_get(o, "missing_h")));
    assert_string_equal(json_string_value(json_object_get(o, "addr")), "127.0.0.1");
    assert_string_equal(json_string_value(json_object_get(o, "method")), "GET");
    json_decref(o);
    reply_release(&r);
    drv_http_server_free(srv);
}

static void body_reaches_handler_whole(void **state)
{
    (void)state;
    struct drv_http_server *srv = start(0, 0);
    size_t len = 300000; /* arrives in many pieces */
    char *body = malloc(len);
    for (size_t i = 0; i < len; i++)
        body[i] = (char)(i * 7 % 251); /* includes NULs */
    struct reply r;
    reply_init(&r);
    request(srv, "POST", "/echo", body, len, NULL, &r);
    assert_int_equal(r.code, CURLE_OK);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body.len, len);
    assert_memory_equal(r.body.data, body, len);
    assert_true(has_header(&r, "X-Nul-Terminated: yes"));
    reply_release(&r);

    reply_init(&r);
    request(srv, "POST", "/echo", "", 0, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body.len, 0);
    assert_true(has_header(&r, "X-Nul-Terminated: yes"));
    reply_release(&r);
    free(body);
    drv_http_server_free(srv);
}

static void json_error_escaped_and_extra_header_sent(void **state)
{
    (void)state;
    struct drv_http_server *srv = start(0, 0);
    struct reply r;
    reply_init(&r);
    request(srv, "GET", "/busy", NULL, 0, NULL, &r);
    assert_json_error(&r, 503);
    assert_true(has_header(&r, "Retry-After: 5\r\n"));
    char *m = json_error_of(&r);
    assert_string_equal(m, "busy \"now\"\n\\ é");
    free(m);
    reply_release(&r);
    drv_http_server_free(srv);
}

static void silent_handler_gets_500_and_double_answer_refused(void **state)
{
    (void)state;
    struct drv_http_server *srv = start(0, 0);
    struct reply r;
    reply_init(&r);
    enum drv_log_level lvl = drv_log_get_level();
    drv_log_set_level(DRV_LOG_NONE); /* the errors below are logged on purpose */
    request(srv, "GET", "/silent", NULL, 0, NULL, &r);
    assert_json_error(&r, 500);
    reply_release(&r);

    reply_init(&r);
    request(srv, "GET", "/twice", NULL, 0, NULL, &r);
    drv_log_set_level(lvl);
    assert_int_equal(r.status, 201);
    assert_string_equal(body_of(&r), "first");
    assert_int_equal(atomic_load(&g_prod_failures), 0);
    reply_release(&r);
    drv_http_server_free(srv);
}

static void oversized_body_with_content_length_is_413(void **state)
{
    (void)state;
    struct drv_http_server *srv = start(1024, 0);
    char body[4096];
    memset(body, 'b', sizeof(body));
    struct reply r;
    reply_init(&r);
    request(srv, "POST", "/echo", body, sizeof(body), NULL, &r);
    assert_json_error(&r, 413);
    reply_release(&r);
    assert_int_equal(atomic_load(&g_handler_calls), 0);

    /* refused from the headers alone: no 100 Continue, no waiting for the body */
    int fd = raw_connect(drv_http_server_port(srv));
    raw_send(fd, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 100000000\r\n"
                 "Expect: 100-continue\r\n\r\n");
    struct drv_buf raw;
    drv_buf_init(&raw, 1 << 20);
    raw_read(fd, &raw, "}", 3000);
    close(fd);
    assert_non_null(raw.data);
    assert_true(strncmp(raw.data, "HTTP/1.1 413", 12) == 0);
    drv_buf_release(&raw);

    /* exactly at the cap is fine */
    reply_init(&r);
    request(srv, "POST", "/echo", body, 1024, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body.len, 1024);
    reply_release(&r);
    assert_int_equal(atomic_load(&g_handler_calls), 1);
    drv_http_server_free(srv);
}

struct upload {
    size_t left;
};

static size_t on_read(char *p, size_t size, size_t n, void *ud)
{
    struct upload *u = ud;
    size_t k = size * n < u->left ? size * n : u->left;
    if (k > 700)
        k = 700; /* several chunks */
    memset(p, 'c', k);
    u->left -= k;
    return k;
}

static void chunked_upload(struct drv_http_server *srv, size_t len, struct reply *r)
{
    CURL *c = easy_for(srv, "POST", "/echo", r);
    struct upload u = {len};
    struct curl_slist *h = curl_slist_append(NULL, "Transfer-Encoding: chunked");
    h = curl_slist_append(h, "Expect:");
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_READFUNCTION, on_read);
    curl_easy_setopt(c, CURLOPT_READDATA, &u);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    perform(c, r);
    curl_slist_free_all(h);
}

static void oversized_chunked_body_is_413(void **state)
{
    (void)state;
    struct drv_http_server *srv = start(1024, 0);
    struct reply r;
    reply_init(&r);
    chunked_upload(srv, 5000, &r);
    assert_json_error(&r, 413);
    reply_release(&r);
    assert_int_equal(atomic_load(&g_handler_calls), 0);

    reply_init(&r);
    chunked_upload(srv, 1000, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body.len, 1000);
    reply_release(&r);
    assert_int_equal(atomic_load(&g_handler_calls), 1);
    drv_http_server_free(srv);
}

static void stream_arrives_in_order_while_written(void **state)
{
    (void)state;
    struct drv_http_server *srv = start(0, 0);
    struct reply r;
    reply_init(&r);
    r.count_received = true;
    request(srv, "GET", "/stream?kind=lockstep", NULL, 0, NULL, &r);
    join_producers();
    assert_int_equal(r.code, CURLE_OK);
    assert_int_equal(r.status, 200);
    assert_true(has_header(&r, "Transfer-Encoding: chunked"));
    assert_true(has_header(&r, "Cache-Control: no-cache"));
    assert_string_equal(body_of(&r), "chunk-0\nchunk-1\nchunk-2\nchunk-3\nchunk-4\n"
                                     "chunk-5\nchunk-6\nchunk-7\nchunk-8\nchunk-9\n");
    assert_true(r.write_calls >= 10); /* each chunk was delivered on its own */
    assert_int_equal(atomic_load(&g_prod_failures), 0);
    reply_release(&r);
    drv_http_server_free(srv);
}

static void disconnect_cancels_stream(const char *path)
{
    struct drv_http_server *srv = start(0, 0);
    struct reply r;
    reply_init(&r);
    r.abort_on_data = true;
    request(srv, "GET", path, NULL, 0, NULL, &r); /* closes the connection */
    assert_int_equal(r.code, CURLE_WRITE_ERROR);
    atomic_store(&g_prod_go, true);
    join_producers();
    assert_true(atomic_load(&g_prod_saw_cancel));
    assert_int_not_equal(atomic_load(&g_prod_rc), 0);
    assert_int_equal(atomic_load(&g_prod_failures), 0);
    reply_release(&r);

    /* the server keeps serving */
    serving_then_free(srv);
}

static void disconnect_of_idle_stream_cancels(void **state)
{
    (void)state;
    disconnect_cancels_stream("/stream?kind=cancel&mode=idle");
}

static void disconnect_of_busy_stream_cancels(void **state)
{
    (void)state;
    disconnect_cancels_stream("/stream?kind=cancel&mode=busy");
}

static void many_concurrent_streams_complete(void **state)
{
    (void)state;
    enum { N = 50 };
    struct drv_http_server *srv = start(0, 0);
    CURLM *m = curl_multi_init();
    CURL *easy[N];
    struct reply r[N];
    for (int i = 0; i < N; i++) {
        reply_init(&r[i]);
        char path[64];
        snprintf(path, sizeof(path), "/stream?kind=short&id=%d", i);
        easy[i] = easy_for(srv, "GET", path, &r[i]);
        curl_multi_add_handle(m, easy[i]);
    }
    int running = 1;
    uint64_t end = drv_now_ns() + 20000000000ull;
    while (running && drv_now_ns() < end) {
        curl_multi_perform(m, &running);
        curl_multi_poll(m, NULL, 0, 50, NULL);
    }
    int done = 0;
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(m, &left)) != NULL) {
        if (msg->msg == CURLMSG_DONE && msg->data.result == CURLE_OK)
            done++;
    }
    join_producers();
    for (int i = 0; i < N; i++) {
        long status = 0;
        curl_easy_getinfo(easy[i], CURLINFO_RESPONSE_CODE, &status);
        assert_int_equal(status, 200);
        char want[64];
        snprintf(want, sizeof(want), "%d-0;%d-1;%d-2;", i, i, i);
        assert_string_equal(body_of(&r[i]), want);
        curl_multi_remove_handle(m, easy[i]);
        curl_easy_cleanup(easy[i]);
        reply_release(&r[i]);
    }
    curl_multi_cleanup(m);
    assert_int_equal(done, N);
    assert_int_equal(atomic_load(&g_streams_opened), N);
    assert_int_equal(atomic_load(&g_prod_failures), 0);
    drv_http_server_free(srv);
}

static void slow_client_past_buffer_cap_cancels(void **state)
{
    (void)state;
    struct drv_http_server *srv = start(0, 4096);
    int fd = raw_connect(drv_http_server_port(srv));
    /* a client that never reads */
    enum drv_log_level lvl = drv_log_get_level();
    drv_log_set_level(DRV_LOG_ERROR);
    raw_send(fd, "GET /stream?kind=flood HTTP/1.1\r\nHost: t\r\n\r\n");
    for (int i = 0; i < 10000 && !atomic_load(&g_flood_done); i++)
        sleep_ms(1);
    join_producers();
    drv_log_set_level(lvl);
    assert_int_equal(atomic_load(&g_prod_rc), DRV_ETOOBIG);
    assert_true(atomic_load(&g_prod_saw_cancel));
    /* the server drops the connection: the client reaches EOF */
    struct drv_buf got;
    drv_buf_init(&got, 256u << 20);
    raw_read(fd, &got, NULL, 5000);
    close(fd);
    assert_non_null(got.data);
    assert_true(strncmp(got.data, "HTTP/1.1 200", 12) == 0);
    assert_null(strstr(got.data, "\r\n0\r\n\r\n")); /* truncated: no final chunk */
    drv_buf_release(&got);
    drv_http_server_free(srv);
}

static uint64_t cpu_ns(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000u +
           (uint64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000u;
}

static void free_with_open_stream(const char *mode)
{
    struct drv_http_server *srv = start(0, 0);
    int fd = raw_connect(drv_http_server_port(srv));
    char req[128];
    snprintf(req, sizeof(req), "GET /stream?kind=cancel&mode=%s HTTP/1.1\r\nHost: t\r\n\r\n", mode);
    raw_send(fd, req);
    struct drv_buf got;
    drv_buf_init(&got, 64u << 20);
    raw_read(fd, &got, "hello\n", 5000);
    assert_non_null(got.data);
    assert_non_null(strstr(got.data, "hello\n"));
    if (strcmp(mode, "idle") == 0) {
        /* a waiting stream costs no CPU: the connection is parked, not polled in a
         * loop (a busy loop would burn a whole core over this interval) */
        uint64_t cpu0 = cpu_ns(), t0 = drv_now_ns();
        sleep_ms(300);
        uint64_t cpu = cpu_ns() - cpu0, wall = drv_now_ns() - t0;
        assert_true(cpu < wall / 4);
    }
    drv_http_server_free(srv);
    /* the producer still holds its stream: it sees the cancel, then closes */
    atomic_store(&g_prod_go, true);
    join_producers();
    assert_true(atomic_load(&g_prod_saw_cancel));
    assert_int_equal(atomic_load(&g_prod_rc), DRV_EIO);
    assert_int_equal(atomic_load(&g_prod_failures), 0);
    drv_buf_release(&got);
    close(fd);
}

static void free_with_idle_stream_open(void **state)
{
    (void)state;
    free_with_open_stream("idle");
}

static void free_with_busy_stream_open(void **state)
{
    (void)state;
    free_with_open_stream("busy");
}

/* ---- deferred responses ---------------------------------------------------------- */

static bool wait_int(atomic_int *v, int target, int ms)
{
    for (int i = 0; i < ms && atomic_load(v) < target; i++)
        sleep_ms(1);
    return atomic_load(v) >= target;
}

static void deferred_respond_from_another_thread(void **state)
{
    (void)state;
    struct drv_http_server *srv = start(0, 0);
    struct reply r;
    reply_init(&r);
    request(srv, "GET", "/defer?mode=respond404", NULL, 0, NULL, &r);
    join_producers();
    assert_int_equal(r.code, CURLE_OK);
    assert_int_equal(r.status, 404);
    assert_string_equal(body_of(&r), "{\"error\":\"no such thing\"}");
    assert_true(has_header(&r, "Content-Type: application/json"));
    assert_true(has_header(&r, "Content-Length: 25"));
    assert_true(has_header(&r, "Cache-Control: no-cache")); /* added before the defer */
    assert_int_equal(atomic_load(&g_deferred), 1);
    assert_int_equal(atomic_load(&g_prod_failures), 0);
    reply_release(&r);

    /* the connection is kept alive and serves the next request */
    serving_then_free(srv);
}

static void deferred_start_streams_in_order(void **state)
{
    (void)state;
    struct drv_http_server *srv = start(0, 0);
    struct reply r;
    reply_init(&r);
    request(srv, "GET", "/defer?mode=stream", NULL, 0, NULL, &r);
    join_producers();
    assert_int_equal(r.code, CURLE_OK);
    assert_int_equal(r.status, 200);
    assert_true(has_header(&r, "Transfer-Encoding: chunked"));
    assert_true(has_header(&r, "Content-Type: application/x-ndjson"));
    assert_true(has_header(&r, "Cache-Control: no-cache"));
    assert_false(has_header(&r, "X-Late"));
    assert_string_equal(body_of(&r), "line-0\nline-1\nline-2\nline-3\nline-4\n");
    assert_int_equal(atomic_load(&g_prod_failures), 0);
    reply_release(&r);

    /* HEAD: the committed headers, no body */
    reply_init(&r);
    request(srv, "HEAD", "/defer?mode=stream", NULL, 0, NULL, &r);
    join_producers();
    assert_int_equal(r.code, CURLE_OK);
    assert_int_equal(r.status, 200);
    assert_true(has_header(&r, "Content-Type: application/x-ndjson"));
    assert_int_equal(r.body.len, 0);
    reply_release(&r);
    drv_http_server_free(srv);
}

static void deferred_writes_before_start_arrive_after_it(void **state)
{
    (void)state;
    struct drv_http_server *srv = start(0, 0);
    struct reply r;
    reply_init(&r);
    request(srv, "GET", "/defer?mode=prewrite", NULL, 0, NULL, &r);
    join_producers();
    assert_int_equal(r.code, CURLE_OK);
    assert_int_equal(r.status, 200);
    assert_string_equal(body_of(&r), "early-1\nearly-2\nline-0\nline-1\nline-2\nline-3\nline-4\n");
    assert_int_equal(atomic_load(&g_prod_failures), 0);
    reply_release(&r);
    drv_http_server_free(srv);
}

static void deferred_disconnect_while_parked_cancels(void **state)
{
    (void)state;
    struct drv_http_server *srv = start(0, 0);
    int fd = raw_connect(drv_http_server_port(srv));
    raw_send(fd, "GET /defer?mode=cancel HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_true(wait_int(&g_deferred, 1, 5000));
    sleep_ms(50);
    assert_false(atomic_load(&g_cancel_seen)); /* parked, not cancelled */
    uint64_t t0 = drv_now_ns();
    close(fd);
    assert_true(wait_flag(&g_cancel_seen, 3000));
    /* the watch thread looks every 200 ms; allow for a slow (sanitized) build */
    assert_true(atomic_load(&g_t_cancel_ns) - t0 < 1500000000ull);
    join_producers();
    assert_int_equal(atomic_load(&g_prod_rc), DRV_EIO); /* start on a cancelled stream */

    /* the server keeps serving */
    struct reply r;
    reply_init(&r);
    request(srv, "GET", "/json", NULL, 0, NULL, &r);
    assert_int_equal(r.status, 200);
    reply_release(&r);
    reply_init(&r);
    request(srv, "GET", "/defer?mode=respond404", NULL, 0, NULL, &r);
    join_producers();
    assert_int_equal(r.status, 404);
    reply_release(&r);
    assert_int_equal(atomic_load(&g_prod_failures), 0);
    drv_http_server_free(srv);
}

static void deferred_close_without_start_is_500(void **state)
{
    (void)state;
    struct drv_http_server *srv = start(0, 0);
    struct reply r;
    reply_init(&r);
    enum drv_log_level lvl = drv_log_get_level();
    drv_log_set_level(DRV_LOG_NONE); /* logged on purpose */
    request(srv, "GET", "/defer?mode=close", NULL, 0, NULL, &r);
    join_producers();
    drv_log_set_level(lvl);
    assert_json_error(&r, 500);
    assert_int_equal(atomic_load(&g_deferred), 1);
    reply_release(&r);
    drv_http_server_free(srv);
}

static void deferred_header_added_on_stream_arrives(void **state)
{
    (void)state;
    struct drv_http_server *srv = start(0, 0);
    struct reply r;
    reply_init(&r);
    request(srv, "GET", "/defer?mode=retry", NULL, 0, NULL, &r);
    join_producers();
    assert_json_error(&r, 503);
    assert_true(has_header(&r, "Retry-After: 7\r\n"));
    assert_true(has_header(&r, "Cache-Control: no-cache"));
    assert_int_equal(atomic_load(&g_prod_failures), 0);
    reply_release(&r);
    drv_http_server_free(srv);
}

static void free_with_parked_deferred_streams(void **state)
{
    (void)state;
    enum { N = 3 };
    struct drv_http_server *srv = start(0, 0);
    int fds[N];
    for (int i = 0; i < N; i++) {
        fds[i] = raw_connect(drv_http_server_port(srv));
        raw_send(fds[i], "GET /defer?mode=hold HTTP/1.1\r\nHost: t\r\n\r\n");
    }
    assert_true(wait_int(&g_deferred, N, 5000));
    drv_http_server_free(srv); /* the producers still hold their parked streams */
    atomic_store(&g_prod_go, true);
    join_producers();
    assert_true(atomic_load(&g_cancel_seen));
    assert_int_equal(atomic_load(&g_prod_failures), 0);
    for (int i = 0; i < N; i++) {
        /* the connection was closed without a response */
        struct drv_buf got;
        drv_buf_init(&got, 1 << 20);
        raw_read(fds[i], &got, NULL, 2000);
        assert_true(got.len == 0 || strncmp(got.data, "HTTP/1.1 2", 10) != 0);
        drv_buf_release(&got);
        close(fds[i]);
    }
}

static void many_concurrent_deferred_requests_complete(void **state)
{
    (void)state;
    enum { N = 30 };
    struct drv_http_server *srv = start(0, 0);
    CURLM *m = curl_multi_init();
    CURL *easy[N];
    struct reply r[N];
    for (int i = 0; i < N; i++) {
        reply_init(&r[i]);
        char path[64];
        snprintf(path, sizeof(path), "/defer?mode=%s&id=%d", i % 2 ? "id" : "stream", i);
        easy[i] = easy_for(srv, "GET", path, &r[i]);
        curl_multi_add_handle(m, easy[i]);
    }
    int running = 1;
    uint64_t end = drv_now_ns() + 20000000000ull;
    while (running && drv_now_ns() < end) {
        curl_multi_perform(m, &running);
        curl_multi_poll(m, NULL, 0, 50, NULL);
    }
    int done = 0;
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(m, &left)) != NULL) {
        if (msg->msg == CURLMSG_DONE && msg->data.result == CURLE_OK)
            done++;
    }
    join_producers();
    for (int i = 0; i < N; i++) {
        long status = 0;
        curl_easy_getinfo(easy[i], CURLINFO_RESPONSE_CODE, &status);
        assert_int_equal(status, 200);
        char want[64];
        if (i % 2)
            snprintf(want, sizeof(want), "id-%d", i);
        else
            snprintf(want, sizeof(want), "line-0\nline-1\nline-2\nline-3\nline-4\n");
        assert_string_equal(body_of(&r[i]), want);
        curl_multi_remove_handle(m, easy[i]);
        curl_easy_cleanup(easy[i]);
        reply_release(&r[i]);
    }
    curl_multi_cleanup(m);
    assert_int_equal(done, N);
    assert_int_equal(atomic_load(&g_deferred), N);
    assert_int_equal(atomic_load(&g_prod_failures), 0);
    drv_http_server_free(srv);
}

/* ---- pumps ------------------------------------------------------------------------ */

static void pump_streams_on_the_connection_thread(void **state)
{
    (void)state;
    enum { N = 8 };
    char want[128] = "";
    for (int i = 0; i < N; i++)
        snprintf(want + strlen(want), sizeof(want) - strlen(want), "p-%d\n", i);
    struct drv_http_server *srv = start(0, 0);
    /* a deferred stream the pump commits, and a stream the handler opened */
    const char *paths[] = {"/pump?mode=stream&n=8", "/pump?mode=stream&n=8&open=1"};
    for (int k = 0; k < 2; k++) {
        reset_pump_globals();
        atomic_store(&g_received, 0);
        struct reply r;
        reply_init(&r);
        r.count_received = true;
        request(srv, "GET", paths[k], NULL, 0, NULL, &r);
        assert_int_equal(r.code, CURLE_OK);
        assert_int_equal(r.status, 200);
        assert_true(has_header(&r, "Transfer-Encoding: chunked"));
        assert_true(has_header(&r, "Content-Type: application/x-ndjson"));
        assert_string_equal(body_of(&r), want);
        assert_true(r.write_calls >= N); /* sent while the pump ran, not after */
        assert_true(wait_int(&g_pump_finals, 1, 3000));
        assert_int_equal(atomic_load(&g_pump_off_thread), 0);
        assert_int_equal(atomic_load(&g_pump_late), 0);
        /* (start,) N writes and the close, plus a few waiting for the client */
        assert_true(atomic_load(&g_pump_calls) >= N + 1 + (k == 0));
        assert_false(atomic_load(&g_pump_saw_cancel));
        assert_int_equal(atomic_load(&g_prod_failures), 0);
        reply_release(&r);
    }

    /* HEAD: the committed headers, no body; the pump then sees its stream
     * cancelled and is called until it returns 0 */
    reset_pump_globals();
    struct reply r;
    reply_init(&r);
    request(srv, "HEAD", "/pump?mode=stream&n=8", NULL, 0, NULL, &r);
    assert_int_equal(r.code, CURLE_OK);
    assert_int_equal(r.status, 200);
    assert_true(has_header(&r, "Content-Type: application/x-ndjson"));
    assert_int_equal(r.body.len, 0);
    assert_true(wait_int(&g_pump_finals, 1, 3000));
    assert_true(atomic_load(&g_pump_saw_cancel));
    assert_int_equal(g_pump.after_cancel, 3);
    assert_int_equal(atomic_load(&g_pump_off_thread), 0);
    assert_int_equal(atomic_load(&g_pump_late), 0);
    reply_release(&r);
    drv_http_server_free(srv);
}

static void pump_responds_whole_then_finishes_its_io(void **state)
{
    (void)state;
    struct drv_http_server *srv = start(0, 0);
    struct reply r;
    reply_init(&r);
    request(srv, "GET", "/pump?mode=respond", NULL, 0, NULL, &r); /* then the client leaves */
    assert_int_equal(r.code, CURLE_OK);
    assert_int_equal(r.status, 200);
    assert_string_equal(body_of(&r), "whole answer");
    assert_true(has_header(&r, "Content-Length: 12"));
    assert_true(has_header(&r, "Content-Type: text/plain"));
    reply_release(&r);
    /* the client has its answer while the pump is still finishing its own I/O;
     * the request is over, but it is not cancelled: the answer was complete
     * (and a client leaving after it is no reason to abandon that I/O) */
    sleep_ms(500); /* the watch thread has looked at least twice by now */
    assert_int_equal(atomic_load(&g_pump_finals), 0);
    assert_false(atomic_load(&g_pump_saw_cancel));
    atomic_store(&g_pump_release, true);
    assert_true(wait_int(&g_pump_finals, 1, 3000));
    assert_false(atomic_load(&g_pump_saw_cancel));
    assert_int_equal(atomic_load(&g_pump_off_thread), 0);
    assert_int_equal(atomic_load(&g_pump_late), 0);
    assert_int_equal(atomic_load(&g_prod_failures), 0);
    drv_http_server_free(srv);
}

/* A client leaves while the pump produces nothing (mode "idle": the request is
 * still parked; "started": a stream is open and waits for data). */
static void pump_client_leaves(const char *mode)
{
    struct drv_http_server *srv = start(0, 0);
    int fd = raw_connect(drv_http_server_port(srv));
    char req[128];
    snprintf(req, sizeof(req), "GET /pump?mode=%s HTTP/1.1\r\nHost: t\r\n\r\n", mode);
    raw_send(fd, req);
    if (strcmp(mode, "started") == 0) {
        struct drv_buf got;
        drv_buf_init(&got, 1 << 20);
        raw_read(fd, &got, "hello\n", 5000);
        assert_non_null(got.data);
        assert_non_null(strstr(got.data, "hello\n"));
        drv_buf_release(&got);
    }
    assert_true(wait_int(&g_pump_calls, 3, 5000));
    assert_int_equal(atomic_load(&g_pump_finals), 0);
    assert_false(atomic_load(&g_pump_saw_cancel));
    uint64_t t0 = drv_now_ns();
    close(fd);
    assert_true(wait_int(&g_pump_finals, 1, 3000));
    assert_true(atomic_load(&g_pump_saw_cancel));
    /* the watch thread looks every 200 ms; allow for a slow (sanitized) build */
    assert_true(atomic_load(&g_t_pump_cancel_ns) - t0 < 1500000000ull);
    assert_int_equal(g_pump.after_cancel, 3); /* called until it returned 0 */
    assert_int_equal(atomic_load(&g_pump_off_thread), 0);
    assert_int_equal(atomic_load(&g_pump_late), 0);
    assert_int_equal(atomic_load(&g_prod_failures), 0);

    /* the server keeps serving, and stops with nothing left behind (the ASan
     * build's leak check sees a stream the pump's close did not free) */
    serving_then_free(srv);
}

static void pump_sees_parked_client_leave(void **state)
{
    (void)state;
    pump_client_leaves("idle");
}

static void pump_sees_streaming_client_leave(void **state)
{
    (void)state;
    pump_client_leaves("started");
}

static void pump_hands_over_to_another(void **state)
{
    (void)state;
    struct drv_http_server *srv = start(0, 0);
    struct reply r;
    reply_init(&r);
    request(srv, "GET", "/pump?mode=handover", NULL, 0, NULL, &r);
    assert_int_equal(r.code, CURLE_OK);
    assert_int_equal(r.status, 200);
    assert_string_equal(body_of(&r), "a\nb-0\nb-1\nb-2\n");
    assert_true(wait_int(&g_pump_finals, 1, 3000));
    /* the first: an idle step, then the commit and hand-over; the second: three
     * writes and the close. Neither is called again once it returned 0. */
    assert_int_equal(atomic_load(&g_pump_b_calls), 4);
    assert_int_equal(atomic_load(&g_pump_calls), 6);
    assert_int_equal(atomic_load(&g_pump_off_thread), 0);
    assert_int_equal(atomic_load(&g_pump_late), 0);
    assert_int_equal(atomic_load(&g_prod_failures), 0);
    reply_release(&r);
    drv_http_server_free(srv);
}

static void free_while_pumping_runs_the_pump_to_its_end(void **state)
{
    (void)state;
    struct drv_http_server *srv = start(0, 0);
    int fd = raw_connect(drv_http_server_port(srv));
    raw_send(fd, "GET /pump?mode=idle HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_true(wait_int(&g_pump_calls, 3, 5000));
    drv_http_server_free(srv); /* joins the connection's thread, which pumps */
    assert_int_equal(atomic_load(&g_pump_finals), 1);
    assert_true(atomic_load(&g_pump_saw_cancel));
    assert_int_equal(g_pump.after_cancel, 3);
    assert_int_equal(atomic_load(&g_pump_off_thread), 0);
    assert_int_equal(atomic_load(&g_pump_late), 0);
    close(fd);
}

/* A stream that no connection thread will ever wait on — HEAD on an opened
 * stream (answered at once, the stream cancelled), or a request deferred while
 * the server stops (answered 503) — still gets a pump lent to it run to its end:
 * the pump is what closes the stream and puts the producer's work away. */
static void pump_on_head_of_opened_stream_runs_to_its_end(void **state)
{
    (void)state;
    struct drv_http_server *srv = start(0, 0);
    struct reply r;
    reply_init(&r);
    request(srv, "HEAD", "/pump?mode=stream&n=8&open=1", NULL, 0, NULL, &r);
    assert_int_equal(r.code, CURLE_OK);
    assert_int_equal(r.status, 200);
    assert_true(has_header(&r, "Content-Type: application/x-ndjson"));
    assert_int_equal(atomic_load(&g_pumps_set), 1);
    assert_true(wait_int(&g_pump_finals, 1, 3000));
    assert_true(atomic_load(&g_pump_saw_cancel));
    assert_int_equal(g_pump.after_cancel, 3);
    assert_int_equal(atomic_load(&g_pump_off_thread), 0);
    reply_release(&r);
    drv_http_server_free(srv);
}

static void pump_lent_while_server_stops_runs_to_its_end(void **state)
{
    (void)state;
    struct drv_http_server *srv = start(0, 0);
    int fd = raw_connect(drv_http_server_port(srv));
    raw_send(fd, "GET /pump?mode=idle&late=1 HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_true(wait_int(&g_handler_calls, 1, 5000));
    atomic_store(&g_pump_go, true); /* the handler defers 300 ms from now */
    drv_http_server_free(srv);
    assert_int_equal(atomic_load(&g_pumps_set), 1);
    assert_true(wait_int(&g_pump_finals, 1, 3000));
    assert_true(atomic_load(&g_pump_saw_cancel));
    assert_int_equal(g_pump.after_cancel, 3);
    assert_int_equal(atomic_load(&g_pump_off_thread), 0);
    close(fd);
}

static void bad_listen_address_fails_cleanly(void **state)
{
    (void)state;
    struct drv_http_params p = drv_http_default_params();
    p.host = "no.such.host.invalid";
    struct drv_err err;
    drv_err_init(&err);
    assert_null(drv_http_server_new(&p, routes, 1, NULL, &err));
    assert_int_equal(err.code, DRV_EINVAL);

    /* a port already taken */
    struct drv_http_server *srv = start(0, 0);
    p = drv_http_default_params();
    p.port = drv_http_server_port(srv);
    drv_err_init(&err);
    enum drv_log_level lvl = drv_log_get_level();
    drv_log_set_level(DRV_LOG_NONE);
    assert_null(drv_http_server_new(&p, routes, 1, NULL, &err));
    drv_log_set_level(lvl);
    assert_int_equal(err.code, DRV_EIO);
    drv_http_server_free(srv);
}

/* ---- the client (drv_http_fetch, drv_http_fetch_many) ------------------------- */

static void url_of(struct drv_http_server *srv, const char *path, char *out, size_t size)
{
    snprintf(out, size, "http://127.0.0.1:%u%s", drv_http_server_port(srv), path);
}

struct chunks {
    struct drv_buf got;
    int calls;
    int stop_after; /* 0 = never */
};

static int on_test_chunk(void *ud, const char *data, size_t len)
{
    struct chunks *c = ud;
    c->calls++;
    drv_buf_append(&c->got, data, len);
    atomic_fetch_add(&g_received, len);
    return c->stop_after && c->calls >= c->stop_after;
}

static void client_get_status_body_headers(void **state)
{
    (void)state;
    struct drv_http_server *srv = start(0, 0);
    char url[128];
    url_of(srv, "/json", url, sizeof(url));
    struct drv_http_request rq = {.url = url, .timeout_ms = 5000};
    struct drv_http_response r;
    drv_http_response_init(&r);
    struct drv_err err;
    drv_err_init(&err);
    assert_int_equal(drv_http_fetch(&rq, &r, &err), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body.data, "{\"ok\":true}");
    char v[64];
    assert_true(drv_http_response_header(&r, "content-type", v, sizeof(v)));
    assert_string_equal(v, "application/json");
    assert_false(drv_http_response_header(&r, "X-Nope", v, sizeof(v)));
    assert_true(r.t_done_ns >= r.t_start_ns && r.t_start_ns > 0);

    /* a non-2xx answer is a response too, its body kept even with a chunk callback */
    url_of(srv, "/busy", url, sizeof(url));
    struct chunks c = {.calls = 0};
    drv_buf_init(&c.got, 1 << 20);
    rq.on_chunk = on_test_chunk;
    rq.ud = &c;
    assert_int_equal(drv_http_fetch(&rq, &r, &err), 0);
    assert_int_equal(r.status, 503);
    assert_non_null(strstr(r.body.data, "busy"));
    assert_true(drv_http_response_header(&r, "Retry-After", v, sizeof(v)));
    assert_string_equal(v, "5");
    assert_int_equal(c.calls, 0);
    drv_buf_release(&c.got);
    drv_http_response_release(&r);
    drv_http_server_free(srv);
}

static void client_post_body_and_cap(void **state)
{
    (void)state;
    struct drv_http_server *srv = start(0, 0);
    char url[128];
    url_of(srv, "/echo", url, sizeof(url));
    char body[3000];
    memset(body, 'x', sizeof(body));
    struct drv_http_request rq = {.url = url, .body = body, .body_len = sizeof(body)};
    struct drv_http_response r;
    drv_http_response_init(&r);
    struct drv_err err;
    drv_err_init(&err);
    assert_int_equal(drv_http_fetch(&rq, &r, &err), 0);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body.len, sizeof(body));
    assert_int_equal(atomic_load(&g_handler_calls), 1);

    /* past the body cap: a clear error, not a longer buffer */
    rq.max_body_bytes = 1000;
    drv_err_init(&err);
    assert_int_equal(drv_http_fetch(&rq, &r, &err), DRV_ETOOBIG);
    assert_non_null(strstr(err.msg, "larger than 1000 bytes"));
    assert_true(r.body.len <= 1000);
    drv_http_response_release(&r);
    drv_http_server_free(srv);
}

static void client_streams_chunks_as_they_arrive(void **state)
{
    (void)state;
    /* the lockstep producer writes the next chunk only after the client got the
     * previous one: a client that waited for the whole body would stall */
    struct drv_http_server *srv = start(0, 0);
    char url[128];
    url_of(srv, "/stream", url, sizeof(url));
    struct chunks c = {.calls = 0};
    drv_buf_init(&c.got, 1 << 20);
    struct drv_http_request rq = {
        .url = url, .timeout_ms = 10000, .on_chunk = on_test_chunk, .ud = &c};
    struct drv_http_response r;
    drv_http_response_init(&r);
    struct drv_err err;
    drv_err_init(&err);
    assert_int_equal(drv_http_fetch(&rq, &r, &err), 0);
    assert_int_equal(r.status, 200);
    assert_true(c.calls >= 10);
    assert_non_null(strstr(c.got.data, "chunk-0\nchunk-1\n"));
    assert_non_null(strstr(c.got.data, "chunk-9\n"));
    assert_int_equal(r.body.len, 0); /* it went to the callback */
    join_producers();
    assert_int_equal(atomic_load(&g_prod_failures), 0);

    /* the callback can stop a transfer */
    reset_globals();
    drv_buf_reset(&c.got);
    c.calls = 0;
    c.stop_after = 1;
    atomic_store(&g_prod_go, true);
    url_of(srv, "/stream?kind=cancel&mode=busy", url, sizeof(url));
    drv_err_init(&err);
    assert_int_equal(drv_http_fetch(&rq, &r, &err), DRV_EIO);
    assert_non_null(strstr(err.msg, "stopped by the receiver"));
    drv_buf_release(&c.got);
    drv_http_response_release(&r);
    drv_http_server_free(srv);
    join_producers();
}

static void *flip_after_100ms(void *arg)
{
    sleep_ms(100);
    atomic_store((atomic_bool *)arg, true);
    return NULL;
}

static void client_cancel_flag_stops_waiting(void **state)
{
    (void)state;
    struct drv_http_server *srv = start(0, 0);
    char url[128];
    url_of(srv, "/stream?kind=cancel", url, sizeof(url));
    atomic_bool cancel = false;
    struct chunks c = {.calls = 0};
    drv_buf_init(&c.got, 1 << 20);
    struct drv_http_request rq = {
        .url = url, .on_chunk = on_test_chunk, .ud = &c, .cancel = &cancel};
    struct drv_http_response r;
    drv_http_response_init(&r);
    struct drv_err err;
    drv_err_init(&err);
    /* the server sends one line and then nothing: only the flag ends it */
    struct drv_http_request rqs[1] = {rq};
    int rc = 0;
    atomic_store(&cancel, false);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, flip_after_100ms, &cancel), 0);
    drv_http_fetch_many(rqs, &r, &rc, &err, 1);
    pthread_join(t, NULL);
    assert_int_equal(rc, DRV_EIO);
    assert_non_null(strstr(err.msg, "cancelled"));
    assert_non_null(strstr(c.got.data, "hello"));
    atomic_store(&g_prod_go, true);
    drv_buf_release(&c.got);
    drv_http_response_release(&r);
    drv_http_server_free(srv);
    join_producers();
}

static void client_unreachable_and_bad_url(void **state)
{
    (void)state;
    struct drv_http_request rq = {.url = "http://127.0.0.1:1/x", .connect_timeout_ms = 2000};
    struct drv_http_response r;
    drv_http_response_init(&r);
    struct drv_err err;
    drv_err_init(&err);
    assert_int_equal(drv_http_fetch(&rq, &r, &err), DRV_EUPSTREAM);
    assert_non_null(strstr(err.msg, "127.0.0.1:1"));
    assert_int_equal(r.status, 0);
    rq.url = "ftp://127.0.0.1/x";
    drv_err_init(&err);
    assert_int_equal(drv_http_fetch(&rq, &r, &err), DRV_EINVAL);
    drv_http_response_release(&r);
}

static void client_many_concurrent_streams(void **state)
{
    (void)state;
    struct drv_http_server *srv = start(0, 0);
    enum { N = 12 };
    char urls[N][128];
    struct drv_http_request rqs[N];
    struct drv_http_response rs[N];
    struct chunks cs[N];
    struct drv_err errs[N];
    int rcs[N];
    for (int i = 0; i < N; i++) {
        char path[64];
        snprintf(path, sizeof(path), "/stream?kind=short&id=%d", i);
        url_of(srv, path, urls[i], sizeof(urls[i]));
        cs[i] = (struct chunks){.calls = 0};
        drv_buf_init(&cs[i].got, 4096);
        rqs[i] = (struct drv_http_request){
            .url = urls[i], .timeout_ms = 10000, .on_chunk = on_test_chunk, .ud = &cs[i]};
        drv_http_response_init(&rs[i]);
        drv_err_init(&errs[i]);
    }
    assert_int_equal(drv_http_fetch_many(rqs, rs, rcs, errs, N), 0);
    for (int i = 0; i < N; i++) {
        char want[32];
        snprintf(want, sizeof(want), "%d-0;%d-1;%d-2;", i, i, i);
        assert_int_equal(rcs[i], 0);
        assert_int_equal(rs[i].status, 200);
        assert_string_equal(cs[i].got.data, want);
        drv_buf_release(&cs[i].got);
        drv_http_response_release(&rs[i]);
    }
    drv_http_server_free(srv);
    join_producers();
}

/* A transfer of /defer?mode=MODE with these limits: its return code, message
 * and milliseconds; a complete one must have brought body. */
static int timed_fetch(struct drv_http_server *srv, const char *mode, const char *body, long stall,
                       long first, const atomic_bool *gone, long grace, struct drv_err *err,
                       double *ms)
{
    char path[64], url[128];
    snprintf(path, sizeof(path), "/defer?mode=%s", mode);
    url_of(srv, path, url, sizeof(url));
    struct drv_http_request rq = {.url = url,
                                  .timeout_ms = 10000,
                                  .stall_timeout_ms = stall,
                                  .first_byte_timeout_ms = first,
                                  .gone = gone,
                                  .gone_grace_ms = grace};
    struct drv_http_response r;
    drv_http_response_init(&r);
    drv_err_init(err);
    uint64_t t0 = drv_now_ns();
    int rc = drv_http_fetch(&rq, &r, err);
    *ms = (double)(drv_now_ns() - t0) / 1e6;
    if (rc == 0)
        assert_string_equal(r.body.data, body);
    drv_http_response_release(&r);
    return rc;
}

static void client_first_byte_and_gone(void **state)
{
    (void)state;
    struct drv_http_server *srv = start(0, 0);
    static const char late[] = "late\nlate\nlate\nlate\nlate\n";
    struct drv_err err;
    double ms;
    /* 400 ms before the first byte: a stall at 150 ms... */
    assert_int_equal(timed_fetch(srv, "late", late, 150, 0, NULL, 0, &err, &ms), DRV_EUPSTREAM);
    assert_non_null(strstr(err.msg, "stall timeout"));
    assert_true(ms >= 140 && ms < 350);
    /* ...unless the first byte may take longer (then the stall limit is back) */
    assert_int_equal(timed_fetch(srv, "late", late, 150, 2000, NULL, 0, &err, &ms), 0);
    assert_true(ms >= 350);
    /* a server said to be gone: a silent transfer stops after the grace... */
    atomic_bool gone = true;
    assert_int_equal(timed_fetch(srv, "late", late, 10000, 0, &gone, 100, &err, &ms),
                     DRV_EUPSTREAM);
    assert_non_null(strstr(err.msg, "stopped answering"));
    assert_true(ms >= 90 && ms < 350);
    /* ...one that is receiving goes on (lines every 5 ms after 30 ms) */
    assert_int_equal(timed_fetch(srv, "stream", "line-0\nline-1\nline-2\nline-3\nline-4\n", 10000,
                                 0, &gone, 100, &err, &ms),
                     0);
    /* ...and without the flag nothing changes */
    atomic_store(&gone, false);
    assert_int_equal(timed_fetch(srv, "late", late, 10000, 0, &gone, 100, &err, &ms), 0);
    drv_http_server_free(srv);
    join_producers();
}

static void session_fetch_many_keeps_its_connections(void **state)
{
    (void)state;
    struct drv_http_server *srv = start(0, 0);
    struct drv_http_session *sess = drv_http_session_new();
    assert_non_null(sess);
    char url[128];
    url_of(srv, "/json", url, sizeof(url));
    struct drv_http_request rq[2] = {{.url = url, .timeout_ms = 5000},
                                     {.url = url, .timeout_ms = 5000}};
    struct drv_http_response r[2];
    drv_http_response_init(&r[0]);
    drv_http_response_init(&r[1]);
    int rcs[2];
    struct drv_err errs[2];
    long tid = 0;
    for (int round = 0; round < 3; round++) {
        atomic_store(&g_handler_tid, 0);
        assert_int_equal(drv_http_session_fetch_many(sess, rq, r, rcs, errs, 1), 0);
        assert_int_equal(rcs[0], 0);
        assert_int_equal(r[0].status, 200);
        /* one connection, one server thread: the same every round */
        if (round == 0)
            tid = atomic_load(&g_handler_tid);
        assert_true(tid > 0);
        assert_int_equal(atomic_load(&g_handler_tid), tid);
    }
    assert_int_equal(drv_http_session_fetch_many(sess, rq, r, rcs, errs, 2), 0);
    assert_int_equal(rcs[0] | rcs[1], 0);
    assert_int_equal(r[0].status + r[1].status, 400);
    /* not while a request of its own is begun */
    struct drv_http_response one;
    drv_http_response_init(&one);
    struct drv_err err;
    drv_err_init(&err);
    assert_int_equal(drv_http_session_begin(sess, &rq[0], &one, &err), 0);
    assert_int_equal(drv_http_session_fetch_many(sess, rq, r, rcs, errs, 1), DRV_EINVAL);
    assert_int_equal(rcs[0], DRV_EINVAL);
    assert_int_equal(drv_http_session_end(sess, &err), DRV_EIO); /* abandoned unfinished */
    drv_http_response_release(&one);
    drv_http_response_release(&r[0]);
    drv_http_response_release(&r[1]);
    drv_http_session_free(sess);
    drv_http_server_free(srv);
}

/* ---- the client's sessions, step by step ------------------------------------------ */

/* Steps the session's transfer with timeout_ms until it finishes (or 20 s of
 * steps); returns how many steps returned 1 with some but not all of the
 * `whole` bytes delivered to c. */
static int step_to_end(struct drv_http_session *sess, int timeout_ms, const struct chunks *c,
                       size_t whole)
{
    int partial = 0;
    uint64_t end = drv_now_ns() + 20000000000ull;
    while (drv_http_session_step(sess, timeout_ms)) {
        if (c && c->got.len > 0 && c->got.len < whole)
            partial++;
        if (drv_now_ns() > end)
            fail_msg("the transfer did not finish");
    }
    return partial;
}

static void session_steps_a_stream_and_reuses_its_connection(void **state)
{
    (void)state;
    struct drv_http_server *srv = start(0, 0);
    struct drv_http_session *sess = drv_http_session_new();
    assert_non_null(sess);
    char url[128];
    url_of(srv, "/stream", url, sizeof(url)); /* lockstep: a chunk once the last arrived */
    struct chunks c = {.calls = 0};
    drv_buf_init(&c.got, 1 << 20);
    struct drv_http_request rq = {
        .url = url, .timeout_ms = 10000, .on_chunk = on_test_chunk, .ud = &c};
    struct drv_http_response r;
    drv_http_response_init(&r);
    struct drv_err err;
    drv_err_init(&err);
    assert_int_equal(drv_http_session_begin(sess, &rq, &r, &err), 0);
    drv_err_init(&err);
    assert_int_equal(drv_http_session_begin(sess, &rq, &r, &err), DRV_EINVAL); /* one at a time */
    assert_int_equal(drv_http_session_result(sess, &err), DRV_EINVAL);         /* not finished */
    static const char want[] = "chunk-0\nchunk-1\nchunk-2\nchunk-3\nchunk-4\n"
                               "chunk-5\nchunk-6\nchunk-7\nchunk-8\nchunk-9\n";
    /* the steps hand control back between chunks, not only at the end */
    assert_true(step_to_end(sess, 10, &c, sizeof(want) - 1) > 0);
    drv_err_init(&err);
    assert_int_equal(drv_http_session_result(sess, &err), 0);
    assert_int_equal(drv_http_session_end(sess, &err), 0);
    assert_int_equal(r.status, 200);
    assert_non_null(c.got.data);
    assert_string_equal(c.got.data, want);
    assert_true(c.calls >= 10);
    assert_int_equal(r.body.len, 0);
    assert_true(r.t_done_ns >= r.t_start_ns && r.t_start_ns > 0);
    long tid = atomic_load(&g_handler_tid);
    assert_true(tid > 0);

    /* again on the same session: the same connection, so the same server thread */
    url_of(srv, "/stream?kind=short&id=7", url, sizeof(url));
    drv_buf_reset(&c.got);
    atomic_store(&g_handler_tid, 0);
    assert_int_equal(drv_http_session_begin(sess, &rq, &r, &err), 0);
    step_to_end(sess, 10, NULL, 0);
    assert_int_equal(drv_http_session_end(sess, &err), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(c.got.data, "7-0;7-1;7-2;");
    assert_int_equal(atomic_load(&g_handler_tid), tid);

    /* and a whole fetch after the steps */
    url_of(srv, "/json", url, sizeof(url));
    struct drv_http_request plain = {.url = url, .timeout_ms = 5000};
    atomic_store(&g_handler_tid, 0);
    assert_int_equal(drv_http_session_fetch(sess, &plain, &r, &err), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body.data, "{\"ok\":true}");
    assert_int_equal(atomic_load(&g_handler_tid), tid);

    drv_buf_release(&c.got);
    drv_http_response_release(&r);
    drv_http_session_free(sess);
    join_producers();
    assert_int_equal(atomic_load(&g_prod_failures), 0);
    drv_http_server_free(srv);
}

struct flip {
    atomic_bool *flag;
    int after_ms;
    atomic_uint_fast64_t t_ns; /* when it flipped */
};

static void *flip_later(void *arg)
{
    struct flip *f = arg;
    sleep_ms(f->after_ms);
    atomic_store(&f->t_ns, drv_now_ns());
    atomic_store(f->flag, true);
    return NULL;
}

/* After a step, the session's request on the server: the next /json on it goes
 * through and is answered in full. */
static void assert_session_usable(struct drv_http_server *srv, struct drv_http_session *sess)
{
    char url[128];
    url_of(srv, "/json", url, sizeof(url));
    struct drv_http_request rq = {.url = url, .timeout_ms = 5000};
    struct drv_http_response r;
    drv_http_response_init(&r);
    struct drv_err err;
    drv_err_init(&err);
    assert_int_equal(drv_http_session_begin(sess, &rq, &r, &err), 0);
    step_to_end(sess, 10, NULL, 0);
    assert_int_equal(drv_http_session_end(sess, &err), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body.data, "{\"ok\":true}");
    drv_http_response_release(&r);
}

static void session_step_notices_cancel_while_waiting(void **state)
{
    (void)state;
    struct drv_http_server *srv = start(0, 0);
    struct drv_http_session *sess = drv_http_session_new();
    assert_non_null(sess);
    char url[128];
    url_of(srv, "/stream?kind=cancel", url, sizeof(url)); /* "hello\n", then nothing */
    atomic_bool cancel = false;
    struct chunks c = {.calls = 0};
    drv_buf_init(&c.got, 1 << 20);
    struct drv_http_request rq = {
        .url = url, .on_chunk = on_test_chunk, .ud = &c, .cancel = &cancel};
    struct drv_http_response r;
    drv_http_response_init(&r);
    struct drv_err err;
    drv_err_init(&err);
    assert_int_equal(drv_http_session_begin(sess, &rq, &r, &err), 0);
    for (int i = 0; i < 500 && c.got.len < 6; i++)
        assert_int_equal(drv_http_session_step(sess, 10), 1);
    assert_non_null(c.got.data);
    assert_string_equal(c.got.data, "hello\n");

    struct flip f = {.flag = &cancel, .after_ms = 100};
    atomic_init(&f.t_ns, 0);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, flip_later, &f), 0);
    int after = 0; /* steps begun after the flag was set that still returned 1 */
    uint64_t end = drv_now_ns() + 10000000000ull;
    for (;;) {
        bool set = atomic_load(&cancel);
        if (!drv_http_session_step(sess, 20))
            break;
        after += set;
        assert_true(drv_now_ns() < end);
    }
    uint64_t t_done = drv_now_ns();
    pthread_join(t, NULL);
    /* the step that was waiting when the flag was set returns 0: a step looks at
     * the flag after its wait (so one begun with it set never returns 1) */
    assert_int_equal(after, 0);
    assert_true(t_done - atomic_load(&f.t_ns) < 1000000000ull); /* ~20 ms expected */
    drv_err_init(&err);
    assert_int_equal(drv_http_session_result(sess, &err), DRV_EIO);
    assert_non_null(strstr(err.msg, "cancelled"));
    drv_err_init(&err);
    assert_int_equal(drv_http_session_end(sess, &err), DRV_EIO);
    assert_non_null(strstr(err.msg, "cancelled"));
    assert_int_equal(r.status, 200);

    /* the cancelled transfer's connection was closed: the server's producer
     * sees its client gone */
    assert_true(wait_flag(&g_prod_saw_cancel, 3000));
    assert_session_usable(srv, sess);

    atomic_store(&g_prod_go, true);
    drv_buf_release(&c.got);
    drv_http_response_release(&r);
    drv_http_session_free(sess);
    drv_http_server_free(srv);
    join_producers();
}

static void session_end_abandons_an_unfinished_transfer(void **state)
{
    (void)state;
    struct drv_http_server *srv = start(0, 0);
    atomic_store(&g_prod_go, true); /* the producer closes as soon as it saw the cancel */
    struct drv_http_session *sess = drv_http_session_new();
    assert_non_null(sess);
    char url[128];
    url_of(srv, "/stream?kind=cancel", url, sizeof(url));
    struct chunks c = {.calls = 0};
    drv_buf_init(&c.got, 1 << 20);
    struct drv_http_request rq = {.url = url, .on_chunk = on_test_chunk, .ud = &c};
    struct drv_http_response r;
    drv_http_response_init(&r);
    struct drv_err err;
    drv_err_init(&err);
    assert_int_equal(drv_http_session_begin(sess, &rq, &r, &err), 0);
    /* steps until the answer has begun: the server has a stream to notice with */
    for (int i = 0; i < 500 && c.got.len == 0; i++)
        assert_int_equal(drv_http_session_step(sess, 10), 1);
    assert_string_equal(c.got.data, "hello\n");
    drv_err_init(&err);
    assert_int_equal(drv_http_session_end(sess, &err), DRV_EIO);
    assert_non_null(strstr(err.msg, "abandoned"));
    drv_err_init(&err);
    assert_int_equal(drv_http_session_end(sess, &err), DRV_EINVAL); /* nothing to end */
    /* its connection was closed, not kept for the next request half-read */
    assert_true(wait_flag(&g_prod_saw_cancel, 3000));
    assert_session_usable(srv, sess);
    assert_session_usable(srv, sess);

    drv_buf_release(&c.got);
    drv_http_response_release(&r);
    drv_http_session_free(sess);
    drv_http_server_free(srv);
    join_producers();
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(plain_json_response),
        cmocka_unit_test(unknown_path_is_json_404),
        cmocka_unit_test(wrong_method_is_json_405_with_allow),
        cmocka_unit_test(head_answers_like_get_without_body),
        cmocka_unit_test(query_header_and_client_addr),
        cmocka_unit_test(body_reaches_handler_whole),
        cmocka_unit_test(json_error_escaped_and_extra_header_sent),
        cmocka_unit_test(silent_handler_gets_500_and_double_answer_refused),
        cmocka_unit_test(oversized_body_with_content_length_is_413),
        cmocka_unit_test(oversized_chunked_body_is_413),
        cmocka_unit_test(stream_arrives_in_order_while_written),
        cmocka_unit_test(disconnect_of_idle_stream_cancels),
        cmocka_unit_test(disconnect_of_busy_stream_cancels),
        cmocka_unit_test(many_concurrent_streams_complete),
        cmocka_unit_test(slow_client_past_buffer_cap_cancels),
        cmocka_unit_test(free_with_idle_stream_open),
        cmocka_unit_test(free_with_busy_stream_open),
        cmocka_unit_test(deferred_respond_from_another_thread),
        cmocka_unit_test(deferred_start_streams_in_order),
        cmocka_unit_test(deferred_writes_before_start_arrive_after_it),
        cmocka_unit_test(deferred_disconnect_while_parked_cancels),
        cmocka_unit_test(deferred_close_without_start_is_500),
        cmocka_unit_test(deferred_header_added_on_stream_arrives),
        cmocka_unit_test(free_with_parked_deferred_streams),
        cmocka_unit_test(many_concurrent_deferred_requests_complete),
        cmocka_unit_test(pump_streams_on_the_connection_thread),
        cmocka_unit_test(pump_responds_whole_then_finishes_its_io),
        cmocka_unit_test(pump_sees_parked_client_leave),
        cmocka_unit_test(pump_sees_streaming_client_leave),
        cmocka_unit_test(pump_hands_over_to_another),
        cmocka_unit_test(free_while_pumping_runs_the_pump_to_its_end),
        cmocka_unit_test(pump_on_head_of_opened_stream_runs_to_its_end),
        cmocka_unit_test(pump_lent_while_server_stops_runs_to_its_end),
        cmocka_unit_test(bad_listen_address_fails_cleanly),
        cmocka_unit_test(client_get_status_body_headers),
        cmocka_unit_test(client_post_body_and_cap),
        cmocka_unit_test(client_streams_chunks_as_they_arrive),
        cmocka_unit_test(client_cancel_flag_stops_waiting),
        cmocka_unit_test(client_unreachable_and_bad_url),
        cmocka_unit_test(client_many_concurrent_streams),
        cmocka_unit_test(client_first_byte_and_gone),
        cmocka_unit_test(session_fetch_many_keeps_its_connections),
        cmocka_unit_test(session_steps_a_stream_and_reuses_its_connection),
        cmocka_unit_test(session_step_notices_cancel_while_waiting),
        cmocka_unit_test(session_end_abandons_an_unfinished_transfer),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
