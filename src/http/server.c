/* http/server — libmicrohttpd glue: routing, body caps, streaming responses.
 *
 * Threads. MHD runs a thread per client connection; that thread reads the
 * request, calls the handler and sends the response. It may block: while a
 * response waits for its producer (a deferred request not answered yet, or a
 * stream whose FIFO is empty) the connection's thread waits on the stream's
 * condition variable — or, when the producer lent it work (a pump), runs that
 * work instead. So a request whose producer is the connection's own thread (the
 * gateway relaying a node's answer) costs no thread hand-off at all, and one
 * fed by another thread (the engine) costs one wake-up per write.
 *
 * Streaming. A stream is a byte FIFO between a producer and MHD's content
 * reader, guarded by the stream's mutex. The reader takes what is there; when
 * the FIFO is empty and the stream not closed it waits (`waiting` set, under the
 * mutex); a producer's write, close or commit signals the condition variable.
 * Lock order: server mu -> stream mu -> MHD's internal mutexes; MHD never calls
 * us with its own mutexes held.
 *
 * Lifetime. The stream is reference-counted: the producer (until
 * drv_http_stream_close), MHD's response (until the response-free callback) and
 * the request (until MHD's request-completed callback). Whoever drops the last
 * reference frees it. The producer never touches the server, so producers may
 * outlive it.
 *
 * Disconnects. A client that goes away while data is being sent is seen by MHD
 * (send fails): the request-completed callback reports a termination code other
 * than COMPLETED_OK and the cancel flag is set. A connection whose thread waits
 * does not read its socket. So a small watch thread looks, every WATCH_MS, at
 * the sockets of waiting streams without consuming anything (poll POLLRDHUP,
 * recv MSG_PEEK): EOF or an error means the client is gone; the stream is
 * cancelled and its thread woken, and MHD closes the connection. Like Go's
 * net/http, a client that half-closes its sending side counts as gone.
 *
 * Deferred responses. drv_http_stream_defer marks the request parked; once the
 * handler returns, the connection's thread (still inside MHD's request
 * callback) waits until the producer commits with start/respond (or close,
 * which commits a 500) or the stream is cancelled, then queues the response
 * committed. Writes while parked only buffer. A commit that finds the stream
 * cancelled (client gone, server stopping) closes the connection.
 *
 * Pumps. drv_http_stream_set_pump lends the connection's thread to the
 * producer: instead of sleeping, the waiting thread calls the pump, which does
 * a bounded step of the producer's work (its own I/O, waiting a little when
 * none is ready) and writes what it produced. A pump still set when the
 * request ends (client gone) is run to its end by the completed callback, on
 * the same thread, with the stream cancelled. */
#include "http/http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#define WATCH_MS            200
#define STREAM_BLOCK        (16 * 1024)
#define IDLE_TIMEOUT_S      300        /* idle keep-alive connections are closed */
#define DISCARD_SLACK_BYTES (1u << 20) /* body bytes dropped after 413 before hanging up */
#define CONN_STACK_BYTES    (1u << 20) /* a connection's thread: handler, encoders, a pump */

struct drv_http_server {
    struct MHD_Daemon *mhd;
    struct drv_http_route *routes;
    size_t n_routes;
    void *user_data;
    size_t max_body_bytes;
    size_t max_stream_buffer;
    uint16_t port;
    atomic_bool stopping;

    pthread_mutex_t mu;              /* guards streams and watch_quit */
    pthread_cond_t watch_cond;       /* CLOCK_MONOTONIC */
    struct drv_http_stream *streams; /* those MHD still holds */
    bool watch_quit;
    bool watch_started;
    pthread_t watch_thread;
};

struct hdr {
    struct hdr *next;
    char *name;
    char *value;
};

/* What a deferred stream's producer committed to. */
enum commit {
    COMMIT_NONE,
    COMMIT_STREAM,  /* drv_http_stream_start */
    COMMIT_RESPOND, /* drv_http_stream_respond */
    COMMIT_500      /* closed without either */
};

struct drv_http_stream {
    pthread_mutex_t mu;
    pthread_cond_t cv;     /* the connection's thread waits here */
    drv_http_pump_fn pump; /* work lent to the connection's thread; NULL = none */
    void *pump_ud;
    struct drv_http_server *srv; /* MHD side only */
    struct drv_http_stream *prev, *next;
    struct MHD_Connection *conn; /* NULL once MHD is done with the request */
    int fd;                      /* the client socket, only peeked at while waiting */
    int refs;                    /* producer + response + request */
    int mhd_refs;                /* response + request; linked in srv->streams while > 0 */
    bool waiting;                /* the connection's thread waits for the producer (or pumps) */
    bool closed;                 /* producer called close */
    bool eos_sent;               /* reader returned END_OF_STREAM */
    bool linked;
    atomic_bool cancel;
    int cancel_code; /* what write returns once cancelled */
    struct drv_buf buf;
    size_t rpos; /* buf.data[rpos, buf.len) is waiting to be sent */

    /* deferred streams only; guarded by mu */
    bool deferred;      /* made by drv_http_stream_defer */
    bool parked;        /* waiting in the handler, no response queued yet */
    enum commit commit; /* set once by start/respond/close */
    unsigned status;    /* committed status */
    char *content_type; /* committed, owned; NULL = none */
    char *body;         /* COMMIT_RESPOND body, owned (malloc) */
    size_t body_len;
    struct hdr *headers; /* drv_http_stream_add_header, owned */
};

struct drv_http_req {
    struct drv_http_server *srv;
    struct MHD_Connection *conn;
    const char *method; /* MHD's, valid until the request completes */
    const char *path;
    const struct drv_http_route *route;
    unsigned early_status; /* 404/405 found from the headers; body is dropped */
    char allow[128];       /* Allow header for 405 */
    bool too_big;
    bool oom;
    bool in_handler;
    bool answered;
    bool parked; /* drv_http_stream_defer was called: wait for the commit */
    unsigned status;
    uint64_t seen; /* body bytes received */
    struct drv_buf body;
    struct hdr *headers;
    struct drv_http_stream *stream; /* holds the request's reference */
    char addr[INET6_ADDRSTRLEN];
};

/* ---- stream internals ------------------------------------------------------ */

static void hdrs_free(struct hdr *h)
{
    while (h) {
        struct hdr *next = h->next;
        free(h->name);
        free(h->value);
        free(h);
        h = next;
    }
}

static int hdr_append(struct hdr **list, const char *name, const char *value)
{
    if (strpbrk(name, "\r\n:") || strpbrk(value, "\r\n"))
        return DRV_EINVAL;
    struct hdr *h = calloc(1, sizeof(*h));
    if (h == NULL)
        return DRV_ENOMEM;
    h->name = strdup(name);
    h->value = strdup(value);
    if (h->name == NULL || h->value == NULL) {
        hdrs_free(h);
        return DRV_ENOMEM;
    }
    while (*list)
        list = &(*list)->next;
    *list = h;
    return 0;
}

static void stream_free(struct drv_http_stream *s)
{
    hdrs_free(s->headers);
    free(s->content_type);
    free(s->body);
    drv_buf_release(&s->buf);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

/* Caller holds s->mu. */
static void stream_wake_locked(struct drv_http_stream *s)
{
    if (s->waiting)
        pthread_cond_signal(&s->cv);
}

/* Caller holds s->mu, and is the connection's thread: waits for the producer
 * once — runs one step of its pump when it lent one, else sleeps until woken. */
static void stream_wait_locked(struct drv_http_stream *s)
{
    s->waiting = true;
    drv_http_pump_fn fn = s->pump;
    void *ud = s->pump_ud;
    if (fn) {
        pthread_mutex_unlock(&s->mu);
        int more = fn(ud);
        pthread_mutex_lock(&s->mu);
        if (!more && s->pump == fn && s->pump_ud == ud)
            s->pump = NULL; /* done, and not handed over to another */
    } else {
        pthread_cond_wait(&s->cv, &s->mu);
    }
    s->waiting = false;
}

/* The request is over: a pump still lent runs to its end on this thread — with
 * the stream cancelled when the client left early; after a complete response it
 * only finishes its own I/O (the rest of an upstream answer, read so that its
 * connection can be used again). */
static void stream_drain_pump(struct drv_http_stream *s, bool completed_ok)
{
    pthread_mutex_lock(&s->mu);
    /* its client no longer matters: the watch thread must not cancel the pump's
     * remaining work because a client with its whole answer hung up */
    s->fd = -1;
    if (s->pump && !completed_ok && !atomic_load(&s->cancel)) {
        s->cancel_code = DRV_EIO;
        atomic_store(&s->cancel, true);
    }
    while (s->pump)
        stream_wait_locked(s);
    pthread_mutex_unlock(&s->mu);
}

/* Caller holds s->mu. */
static void stream_cancel_locked(struct drv_http_stream *s, int code)
{
    if (!atomic_load(&s->cancel))
        s->cancel_code = code;
    atomic_store(&s->cancel, true);
    stream_wake_locked(s);
}

/* One of MHD's two references goes (response freed, or request completed). */
static void stream_mhd_release(struct drv_http_stream *s, bool completed_ok)
{
    struct drv_http_server *srv = s->srv;
    pthread_mutex_lock(&srv->mu);
    pthread_mutex_lock(&s->mu);
    if (!completed_ok && !s->eos_sent && !atomic_load(&s->cancel)) {
        s->cancel_code = DRV_EIO;
        atomic_store(&s->cancel, true);
    }
    s->conn = NULL;
    if (--s->mhd_refs == 0 && s->linked) {
        if (s->prev)
            s->prev->next = s->next;
        else
            srv->streams = s->next;
        if (s->next)
            s->next->prev = s->prev;
        s->linked = false;
    }
    bool last = --s->refs == 0;
    pthread_mutex_unlock(&s->mu);
    pthread_mutex_unlock(&srv->mu);
    if (last)
        stream_free(s);
}

static ssize_t stream_reader(void *cls, uint64_t pos, char *out, size_t max)
{
    (void)pos;
    struct drv_http_stream *s = cls;
    ssize_t ret;
    pthread_mutex_lock(&s->mu);
    size_t pending;
    while ((pending = s->buf.len - s->rpos) == 0 && !s->closed && !atomic_load(&s->cancel) &&
           s->conn != NULL && !atomic_load(&s->srv->stopping))
        stream_wait_locked(s);
    if (atomic_load(&s->cancel) || s->conn == NULL) {
        ret = MHD_CONTENT_READER_END_WITH_ERROR;
    } else if (pending > 0) {
        size_t n = pending < max ? pending : max;
        memcpy(out, s->buf.data + s->rpos, n);
        s->rpos += n;
        if (s->rpos == s->buf.len) {
            s->rpos = 0;
            drv_buf_reset(&s->buf);
        }
        ret = (ssize_t)n;
    } else if (s->closed) {
        s->eos_sent = true;
        ret = MHD_CONTENT_READER_END_OF_STREAM;
    } else { /* the server is stopping */
        s->cancel_code = DRV_EIO;
        atomic_store(&s->cancel, true);
        ret = MHD_CONTENT_READER_END_WITH_ERROR;
    }
    pthread_mutex_unlock(&s->mu);
    return ret;
}

static void stream_response_freed(void *cls)
{
    stream_mhd_release(cls, false);
}

/* The client socket has seen EOF or an error; nothing is consumed. */
static bool peer_gone(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN | POLLRDHUP};
    if (poll(&p, 1, 0) <= 0)
        return false;
    if (p.revents & (POLLERR | POLLHUP | POLLRDHUP | POLLNVAL))
        return true;
    char c;
    ssize_t n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n == 0)
        return true;
    return n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;
}

static void *watch_main(void *arg)
{
    struct drv_http_server *srv = arg;
    pthread_mutex_lock(&srv->mu);
    while (!srv->watch_quit) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_nsec += WATCH_MS * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&srv->watch_cond, &srv->mu, &ts);
        if (srv->watch_quit)
            break;
        for (struct drv_http_stream *s = srv->streams; s; s = s->next) {
            pthread_mutex_lock(&s->mu);
            if (s->waiting && s->conn && s->fd >= 0 && peer_gone(s->fd)) {
                drv_log(DRV_LOG_DEBUG, "http: client of a waiting stream went away");
                stream_cancel_locked(s, DRV_EIO);
            }
            pthread_mutex_unlock(&s->mu);
        }
    }
    pthread_mutex_unlock(&srv->mu);
    return NULL;
}

/* ---- public stream API ----------------------------------------------------- */

int drv_http_stream_write(struct drv_http_stream *s, const void *data, size_t len)
{
    int rc = 0;
    pthread_mutex_lock(&s->mu);
    if (atomic_load(&s->cancel)) {
        rc = s->cancel_code ? s->cancel_code : DRV_EIO;
        goto out;
    }
    if (s->closed) {
        rc = DRV_EINVAL;
        goto out;
    }
    if (len == 0)
        goto out;
    size_t pending = s->buf.len - s->rpos;
    if (len > s->buf.cap - pending) {
        drv_log(DRV_LOG_WARN, "http: client too slow, %zu bytes unsent; stream cancelled", pending);
        stream_cancel_locked(s, DRV_ETOOBIG);
        rc = DRV_ETOOBIG;
        goto out;
    }
    /* compact only when the sent prefix is at least as long as what remains, so
     * bytes moved never exceed bytes sent */
    if (s->rpos > 0 && (s->rpos >= pending || s->buf.len + len > s->buf.cap)) {
        memmove(s->buf.data, s->buf.data + s->rpos, pending);
        s->buf.len = pending;
        s->buf.data[pending] = '\0';
        s->rpos = 0;
    }
    if (s->commit == COMMIT_RESPOND || s->commit == COMMIT_500) {
        rc = DRV_EINVAL; /* the response is complete */
        goto out;
    }
    rc = drv_buf_append(&s->buf, data, len);
    if (rc) {
        stream_cancel_locked(s, rc);
        goto out;
    }
    if (!s->parked) /* a parked connection waits for the commit, not for data */
        stream_wake_locked(s);
out:
    pthread_mutex_unlock(&s->mu);
    return rc;
}

void drv_http_stream_close(struct drv_http_stream *s)
{
    if (s == NULL)
        return;
    pthread_mutex_lock(&s->mu);
    s->closed = true;
    if (s->deferred && s->commit == COMMIT_NONE)
        s->commit = COMMIT_500; /* logged where the 500 is queued, with the request */
    stream_wake_locked(s);
    bool last = --s->refs == 0;
    pthread_mutex_unlock(&s->mu);
    if (last)
        stream_free(s);
}

atomic_bool *drv_http_stream_cancel_flag(struct drv_http_stream *s)
{
    return &s->cancel;
}

void drv_http_stream_set_pump(struct drv_http_stream *s, drv_http_pump_fn fn, void *ud)
{
    pthread_mutex_lock(&s->mu);
    s->pump = fn;
    s->pump_ud = ud;
    pthread_mutex_unlock(&s->mu);
}

/* With s->mu held: 0 when s is a deferred stream not yet committed. */
static int committable_locked(struct drv_http_stream *s, const char *what)
{
    if (atomic_load(&s->cancel))
        return s->cancel_code ? s->cancel_code : DRV_EIO;
    if (!s->deferred || s->commit != COMMIT_NONE || s->closed) {
        drv_log(DRV_LOG_ERROR, "http: %s on a stream that is not deferred or already answered",
                what);
        return DRV_EINVAL;
    }
    return 0;
}

/* With s->mu held: records the commit and wakes the parked connection. */
static int commit_locked(struct drv_http_stream *s, enum commit c, unsigned status,
                         const char *content_type)
{
    if (content_type) {
        s->content_type = strdup(content_type);
        if (s->content_type == NULL) {
            stream_cancel_locked(s, DRV_ENOMEM);
            return DRV_ENOMEM;
        }
    }
    s->commit = c;
    s->status = status;
    stream_wake_locked(s);
    return 0;
}

int drv_http_stream_start(struct drv_http_stream *s, unsigned status, const char *content_type)
{
    pthread_mutex_lock(&s->mu);
    int rc = committable_locked(s, "stream_start");
    if (rc == 0)
        rc = commit_locked(s, COMMIT_STREAM, status, content_type);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int drv_http_stream_respond(struct drv_http_stream *s, unsigned status, const char *content_type,
                            const void *body, size_t len)
{
    char *copy = NULL;
    if (len > 0) {
        copy = malloc(len);
        if (copy == NULL)
            return DRV_ENOMEM;
        memcpy(copy, body, len);
    }
    pthread_mutex_lock(&s->mu);
    int rc = committable_locked(s, "stream_respond");
    if (rc == 0) {
        s->body = copy;
        s->body_len = len;
        copy = NULL;
        rc = commit_locked(s, COMMIT_RESPOND, status, content_type);
    }
    pthread_mutex_unlock(&s->mu);
    free(copy);
    return rc;
}

int drv_http_stream_add_header(struct drv_http_stream *s, const char *name, const char *value)
{
    pthread_mutex_lock(&s->mu);
    int rc = s->deferred && s->commit == COMMIT_NONE && !s->closed
                 ? hdr_append(&s->headers, name, value)
                 : DRV_EINVAL;
    pthread_mutex_unlock(&s->mu);
    return rc;
}

/* ---- responses -------------------------------------------------------------- */

static bool answerable(struct drv_http_req *req, const char *what)
{
    if (!req->in_handler || req->answered) {
        drv_log(DRV_LOG_ERROR, "http: %s on %s %s: %s", what, req->method, req->path,
                req->answered ? "request already answered" : "not inside its handler");
        return false;
    }
    return true;
}

/* Adds headers (the request's, then `extra`), queues and drops our hold on resp. */
static int queue_response_with(struct drv_http_req *req, unsigned status, const char *content_type,
                               const struct hdr *extra, struct MHD_Response *resp)
{
    if (content_type)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    for (struct hdr *h = req->headers; h; h = h->next)
        MHD_add_response_header(resp, h->name, h->value);
    for (const struct hdr *h = extra; h; h = h->next)
        MHD_add_response_header(resp, h->name, h->value);
    enum MHD_Result r = MHD_queue_response(req->conn, status, resp);
    MHD_destroy_response(resp);
    if (r != MHD_YES) {
        drv_log(DRV_LOG_ERROR, "http: MHD refused the response to %s %s", req->method, req->path);
        return DRV_EIO;
    }
    req->answered = true;
    req->status = status;
    drv_log(DRV_LOG_DEBUG, "http %s %s %u", req->method, req->path, status);
    return 0;
}

static int queue_response(struct drv_http_req *req, unsigned status, const char *content_type,
                          struct MHD_Response *resp)
{
    return queue_response_with(req, status, content_type, NULL, resp);
}

static int respond_now(struct drv_http_req *req, unsigned status, const char *content_type,
                       const void *body, size_t len)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, (void *)(len ? body : ""), MHD_RESPMEM_MUST_COPY);
    if (resp == NULL)
        return DRV_ENOMEM;
    return queue_response(req, status, content_type, resp);
}

static int respond_json_error(struct drv_http_req *req, unsigned status, const char *message)
{
    json_t *o = json_pack("{s:s}", "error", message ? message : "error");
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (text == NULL) /* message was not UTF-8, or out of memory */
        text = strdup("{\"error\":\"internal error\"}");
    if (text == NULL)
        return DRV_ENOMEM;
    int rc = respond_now(req, status, "application/json", text, strlen(text));
    free(text);
    return rc;
}

int drv_http_respond(struct drv_http_req *req, unsigned status, const char *content_type,
                     const void *body, size_t len)
{
    if (!answerable(req, "respond"))
        return DRV_EINVAL;
    return respond_now(req, status, content_type, body, len);
}

int drv_http_respond_json_error(struct drv_http_req *req, unsigned status, const char *message)
{
    if (!answerable(req, "respond"))
        return DRV_EINVAL;
    return respond_json_error(req, status, message);
}

static struct drv_http_stream *stream_new(struct drv_http_req *req)
{
    struct drv_http_stream *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    drv_buf_init(&s->buf, req->srv->max_stream_buffer);
    s->srv = req->srv;
    s->fd = -1;
    atomic_init(&s->cancel, false);
    return s;
}

static int conn_fd(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    return ci ? ci->connect_fd : -1;
}

/* With srv->mu held. */
static void stream_link_locked(struct drv_http_server *srv, struct drv_http_stream *s)
{
    s->next = srv->streams;
    if (srv->streams)
        srv->streams->prev = s;
    srv->streams = s;
    s->linked = true;
}

struct drv_http_stream *drv_http_stream_open(struct drv_http_req *req, unsigned status,
                                             const char *content_type)
{
    if (!answerable(req, "stream_open"))
        return NULL;
    struct drv_http_stream *s = stream_new(req);
    if (s == NULL)
        return NULL;

    if (strcmp(req->method, MHD_HTTP_METHOD_HEAD) == 0) {
        /* nothing will be sent: answer with the headers, the producer stops at
         * once. The request still holds a reference, so that a pump lent to the
         * stream is run to its end when the request completes. */
        s->refs = 2;
        s->mhd_refs = 1;
        s->cancel_code = DRV_EIO;
        atomic_store(&s->cancel, true);
        if (respond_now(req, status, content_type, NULL, 0) != 0) {
            stream_free(s);
            return NULL;
        }
        req->stream = s;
        return s;
    }

    s->fd = conn_fd(req->conn);
    s->conn = req->conn;
    s->refs = 3;
    s->mhd_refs = 2;
    struct MHD_Response *resp = MHD_create_response_from_callback(
        MHD_SIZE_UNKNOWN, STREAM_BLOCK, stream_reader, s, stream_response_freed);
    if (resp == NULL) {
        stream_free(s);
        return NULL;
    }
    struct drv_http_server *srv = req->srv;
    pthread_mutex_lock(&srv->mu);
    stream_link_locked(srv, s);
    pthread_mutex_unlock(&srv->mu);
    req->stream = s; /* the request's reference, dropped when MHD completes it */

    if (queue_response(req, status, content_type, resp) != 0) {
        /* the response is gone (its reference with it); drop the producer's, and
         * leave the request's to the completion callback */
        drv_http_stream_close(s);
        return NULL;
    }
    return s;
}

struct drv_http_stream *drv_http_stream_defer(struct drv_http_req *req)
{
    if (!answerable(req, "stream_defer"))
        return NULL;
    struct drv_http_stream *s = stream_new(req);
    if (s == NULL)
        return NULL;
    struct drv_http_server *srv = req->srv;
    s->deferred = true;
    s->fd = conn_fd(req->conn);
    s->conn = req->conn;
    s->refs = 2;     /* producer + request; a streaming commit adds the response's */
    s->mhd_refs = 1; /* the request */
    /* Linked and parked under srv->mu, with `stopping` checked there: either
     * drv_http_server_free's sweep (which sets `stopping` first, then takes
     * srv->mu) sees this stream and cancels it, or we see `stopping` and never
     * park. */
    pthread_mutex_lock(&srv->mu);
    if (atomic_load(&srv->stopping)) {
        pthread_mutex_unlock(&srv->mu);
        s->conn = NULL;
        s->refs = 2;         /* producer + request: as for HEAD in drv_http_stream_open */
        s->mhd_refs = 1;     /* the request, never linked */
        s->deferred = false; /* nothing to commit: start/respond fail */
        s->cancel_code = DRV_EIO;
        atomic_store(&s->cancel, true);
        respond_json_error(req, MHD_HTTP_SERVICE_UNAVAILABLE, "server is stopping");
        req->stream = s;
        return s;
    }
    stream_link_locked(srv, s);
    pthread_mutex_lock(&s->mu);
    s->parked = true;
    pthread_mutex_unlock(&s->mu);
    pthread_mutex_unlock(&srv->mu);
    req->stream = s;
    req->answered = true; /* by the producer, later */
    req->parked = true;
    return s;
}

/* The handler parked the request: waits (or pumps) until its stream is
 * committed, cancelled or closed. Queues what was committed; MHD_NO closes the
 * connection. */
static enum MHD_Result unpark(struct drv_http_req *req)
{
    struct drv_http_stream *s = req->stream;
    pthread_mutex_lock(&s->mu);
    while (s->commit == COMMIT_NONE && !atomic_load(&s->cancel) &&
           !atomic_load(&req->srv->stopping))
        stream_wait_locked(s);
    enum commit c = s->commit;
    if (atomic_load(&s->cancel) || atomic_load(&req->srv->stopping) || c == COMMIT_NONE) {
        if (c == COMMIT_NONE && !atomic_load(&s->cancel)) {
            /* the server is stopping */
            drv_log(DRV_LOG_DEBUG, "http: %s %s: server stopping before the response", req->method,
                    req->path);
        }
        s->cancel_code = s->cancel_code ? s->cancel_code : DRV_EIO;
        atomic_store(&s->cancel, true);
        s->parked = false;
        pthread_mutex_unlock(&s->mu);
        req->parked = false;
        return MHD_NO;
    }
    s->parked = false;
    unsigned status = s->status;
    char *ctype = s->content_type;
    struct hdr *extra = s->headers;
    char *body = s->body;
    size_t body_len = s->body_len;
    s->content_type = NULL;
    s->headers = NULL;
    s->body = NULL;
    bool head = strcmp(req->method, MHD_HTTP_METHOD_HEAD) == 0;
    bool streaming = c == COMMIT_STREAM && !head;
    if (streaming) {
        s->refs++; /* the response's */
        s->mhd_refs++;
    } else if (c == COMMIT_STREAM) {
        /* HEAD: the headers go now; like stream_open, the stream is cancelled */
        s->cancel_code = DRV_EIO;
        atomic_store(&s->cancel, true);
    }
    pthread_mutex_unlock(&s->mu);
    req->parked = false;

    int rc;
    if (c == COMMIT_500) {
        drv_log(DRV_LOG_ERROR, "http: %s %s: deferred response closed unanswered; sending 500",
                req->method, req->path);
        rc = respond_json_error(req, MHD_HTTP_INTERNAL_SERVER_ERROR, "handler did not respond");
    } else {
        struct MHD_Response *resp;
        if (streaming) {
            resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, STREAM_BLOCK, stream_reader,
                                                     s, stream_response_freed);
            if (resp == NULL) { /* give back the response's reference; others remain */
                pthread_mutex_lock(&s->mu);
                s->refs--;
                s->mhd_refs--;
                pthread_mutex_unlock(&s->mu);
            }
        } else if (body_len > 0) {
            resp = MHD_create_response_from_buffer(body_len, body, MHD_RESPMEM_MUST_FREE);
            if (resp)
                body = NULL;
        } else {
            resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
        }
        rc = resp ? queue_response_with(req, status, ctype, extra, resp) : DRV_ENOMEM;
    }
    free(body);
    free(ctype);
    hdrs_free(extra);
    if (rc != 0) {
        pthread_mutex_lock(&s->mu);
        stream_cancel_locked(s, rc);
        pthread_mutex_unlock(&s->mu);
        return MHD_NO;
    }
    return MHD_YES;
}

/* ---- request accessors ------------------------------------------------------ */

const char *drv_http_req_method(const struct drv_http_req *req)
{
    return req->method;
}

const char *drv_http_req_path(const struct drv_http_req *req)
{
    return req->path;
}

const char *drv_http_req_query(const struct drv_http_req *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
}

const char *drv_http_req_header(const struct drv_http_req *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

const char *drv_http_req_body(const struct drv_http_req *req, size_t *len)
{
    if (len)
        *len = req->body.len;
    return req->body.data ? req->body.data : "";
}

const char *drv_http_req_client_addr(struct drv_http_req *req)
{
    if (req->addr[0])
        return req->addr;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (ci == NULL || ci->client_addr == NULL)
        return "";
    const struct sockaddr *sa = ci->client_addr;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const void *)sa;
        inet_ntop(AF_INET, &in->sin_addr, req->addr, sizeof(req->addr));
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const void *)sa;
        if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) /* an IPv4 client of a dual-stack socket */
            inet_ntop(AF_INET, &in6->sin6_addr.s6_addr[12], req->addr, sizeof(req->addr));
        else
            inet_ntop(AF_INET6, &in6->sin6_addr, req->addr, sizeof(req->addr));
    }
    return req->addr;
}

int drv_http_req_add_header(struct drv_http_req *req, const char *name, const char *value)
{
    if (req->answered)
        return DRV_EINVAL;
    return hdr_append(&req->headers, name, value);
}

/* ---- MHD callbacks ---------------------------------------------------------- */

static void req_free(struct drv_http_req *req)
{
    hdrs_free(req->headers);
    drv_buf_release(&req->body);
    free(req);
}

static bool method_listed(const char *list, const char *m)
{
    size_t n = strlen(m);
    for (const char *p = list; (p = strstr(p, m)) != NULL; p += n) {
        bool starts = p == list || p[-1] == ' ';
        bool ends = p[n] == '\0' || p[n] == ',';
        if (starts && ends)
            return true;
    }
    return false;
}

static void allow_add(char *allow, size_t size, const char *m)
{
    if (method_listed(allow, m))
        return;
    size_t used = strlen(allow);
    snprintf(allow + used, size - used, "%s%s", used ? ", " : "", m);
}

/* Picks the route, or sets early_status (and allow) when there is none. */
static void route_request(struct drv_http_req *req)
{
    struct drv_http_server *srv = req->srv;
    const struct drv_http_route *get_for_head = NULL;
    bool head = strcmp(req->method, MHD_HTTP_METHOD_HEAD) == 0;
    bool path_known = false;
    for (size_t i = 0; i < srv->n_routes; i++) {
        const struct drv_http_route *r = &srv->routes[i];
        if (strcmp(r->path, req->path) != 0)
            continue;
        path_known = true;
        if (r->method == NULL || strcmp(r->method, req->method) == 0) {
            req->route = r;
            return;
        }
        if (head && get_for_head == NULL && strcmp(r->method, MHD_HTTP_METHOD_GET) == 0)
            get_for_head = r;
        allow_add(req->allow, sizeof(req->allow), r->method);
        if (strcmp(r->method, MHD_HTTP_METHOD_GET) == 0)
            allow_add(req->allow, sizeof(req->allow), MHD_HTTP_METHOD_HEAD);
    }
    if (get_for_head) {
        req->route = get_for_head;
        return;
    }
    req->early_status = path_known ? MHD_HTTP_METHOD_NOT_ALLOWED : MHD_HTTP_NOT_FOUND;
}

static void answer_413(struct drv_http_req *req)
{
    char msg[128];
    snprintf(msg, sizeof(msg), "request body too large (limit %zu bytes)",
             req->srv->max_body_bytes);
    respond_json_error(req, MHD_HTTP_CONTENT_TOO_LARGE, msg);
}

static void run_handler(struct drv_http_req *req)
{
    struct drv_http_server *srv = req->srv;
    if (req->too_big) {
        answer_413(req);
        return;
    }
    if (req->early_status == MHD_HTTP_NOT_FOUND) {
        respond_json_error(req, MHD_HTTP_NOT_FOUND, "not found");
        return;
    }
    if (req->early_status == MHD_HTTP_METHOD_NOT_ALLOWED) {
        char msg[192];
        snprintf(msg, sizeof(msg), "method %s not allowed (allowed: %s)", req->method, req->allow);
        drv_http_req_add_header(req, MHD_HTTP_HEADER_ALLOW, req->allow);
        respond_json_error(req, MHD_HTTP_METHOD_NOT_ALLOWED, msg);
        return;
    }
    if (req->oom) {
        respond_json_error(req, MHD_HTTP_SERVICE_UNAVAILABLE, "out of memory");
        return;
    }
    req->in_handler = true;
    req->route->fn(req, srv->user_data);
    req->in_handler = false;
    if (!req->answered) {
        drv_log(DRV_LOG_ERROR, "http: handler for %s %s answered nothing; sending 500", req->method,
                req->path);
        respond_json_error(req, MHD_HTTP_INTERNAL_SERVER_ERROR, "handler did not respond");
    }
}

/* A Content-Length over the cap is refused before the body is read. */
static bool declared_too_big(struct drv_http_req *req)
{
    const char *cl =
        MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl == NULL)
        return false;
    errno = 0;
    char *end;
    unsigned long long n = strtoull(cl, &end, 10);
    if (end == cl)
        return false; /* MHD rejects a malformed Content-Length itself */
    return errno == ERANGE || n > req->srv->max_body_bytes;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    (void)version;
    struct drv_http_server *srv = cls;
    struct drv_http_req *req = *con_cls;
    if (req == NULL) {
        req = calloc(1, sizeof(*req));
        if (req == NULL)
            return MHD_NO;
        req->srv = srv;
        req->conn = conn;
        req->method = method;
        req->path = url;
        drv_buf_init(&req->body, srv->max_body_bytes);
        *con_cls = req;
        route_request(req);
        if (declared_too_big(req)) {
            req->too_big = true;
            answer_413(req); /* MHD then reads no body and closes after the reply */
        }
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        req->seen += n;
        if (req->seen > srv->max_body_bytes) {
            if (!req->too_big)
                drv_buf_release(&req->body);
            req->too_big = true;
            /* a chunked body has no declared length: drop what comes, up to a point */
            return req->seen - srv->max_body_bytes > DISCARD_SLACK_BYTES ? MHD_NO : MHD_YES;
        }
        if (req->early_status || req->oom)
            return MHD_YES;
        if (drv_buf_append(&req->body, upload_data, n) != 0) {
            req->oom = true;
            drv_buf_release(&req->body);
        }
        return MHD_YES;
    }
    if (!req->answered)
        run_handler(req);
    if (req->parked)
        return unpark(req);
    return MHD_YES;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)conn;
    struct drv_http_req *req = *con_cls;
    if (req == NULL)
        return;
    *con_cls = NULL;
    if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK)
        drv_log(DRV_LOG_DEBUG, "http %s %s %u: connection ended early (code %d)", req->method,
                req->path, req->status, (int)toe);
    if (req->stream) {
        stream_drain_pump(req->stream, toe == MHD_REQUEST_TERMINATED_COMPLETED_OK);
        stream_mhd_release(req->stream, toe == MHD_REQUEST_TERMINATED_COMPLETED_OK);
    }
    req_free(req);
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    drv_logv(DRV_LOG_INFO, fmt, ap);
}

/* ---- server ----------------------------------------------------------------- */

struct drv_http_params drv_http_default_params(void)
{
    struct drv_http_params p = {
        .host = "127.0.0.1",
        .port = 0,
        .max_body_bytes = 8u << 20,
        .max_stream_buffer = 8u << 20,
    };
    return p;
}

uint16_t drv_http_server_port(const struct drv_http_server *srv)
{
    return srv->port;
}

static int resolve(const char *host, uint16_t port, struct sockaddr_storage *ss,
                   struct drv_err *err)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
    struct addrinfo *ai = NULL;
    int g = getaddrinfo(host, NULL, &hints, &ai);
    if (g != 0 || ai == NULL)
        return drv_err_set(err, DRV_EINVAL, "cannot resolve listen address '%s': %s", host,
                           gai_strerror(g));
    memset(ss, 0, sizeof(*ss));
    memcpy(ss, ai->ai_addr, ai->ai_addrlen);
    if (ss->ss_family == AF_INET)
        ((struct sockaddr_in *)ss)->sin_port = htons(port);
    else if (ss->ss_family == AF_INET6)
        ((struct sockaddr_in6 *)ss)->sin6_port = htons(port);
    freeaddrinfo(ai);
    return 0;
}

static void stop_watch(struct drv_http_server *srv)
{
    if (!srv->watch_started)
        return;
    pthread_mutex_lock(&srv->mu);
    srv->watch_quit = true;
    pthread_cond_signal(&srv->watch_cond);
    pthread_mutex_unlock(&srv->mu);
    pthread_join(srv->watch_thread, NULL);
    srv->watch_started = false;
}

static void server_destroy(struct drv_http_server *srv)
{
    pthread_cond_destroy(&srv->watch_cond);
    pthread_mutex_destroy(&srv->mu);
    free(srv->routes);
    free(srv);
}

struct drv_http_server *drv_http_server_new(const struct drv_http_params *params,
                                            const struct drv_http_route *routes, size_t n_routes,
                                            void *user_data, struct drv_err *err)
{
    if (params == NULL || (routes == NULL && n_routes > 0) || params->max_stream_buffer == 0) {
        drv_err_set(err, DRV_EINVAL, "http: bad server parameters");
        return NULL;
    }
    for (size_t i = 0; i < n_routes; i++) {
        if (routes[i].path == NULL || routes[i].fn == NULL) {
            drv_err_set(err, DRV_EINVAL, "http: route %zu has no path or handler", i);
            return NULL;
        }
    }
    struct drv_http_server *srv = calloc(1, sizeof(*srv));
    if (srv == NULL) {
        drv_err_set(err, DRV_ENOMEM, "http: out of memory");
        return NULL;
    }
    pthread_mutex_init(&srv->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&srv->watch_cond, &ca);
    pthread_condattr_destroy(&ca);
    atomic_init(&srv->stopping, false);
    srv->user_data = user_data;
    srv->max_body_bytes = params->max_body_bytes;
    srv->max_stream_buffer = params->max_stream_buffer;
    srv->n_routes = n_routes;
    if (n_routes > 0) {
        srv->routes = calloc(n_routes, sizeof(*routes));
        if (srv->routes == NULL) {
            drv_err_set(err, DRV_ENOMEM, "http: out of memory");
            goto fail;
        }
        memcpy(srv->routes, routes, n_routes * sizeof(*routes));
    }

    const char *host = params->host && params->host[0] ? params->host : "127.0.0.1";
    struct sockaddr_storage ss;
    if (resolve(host, params->port, &ss, err) != 0)
        goto fail;

    /* a thread per connection (see the top of this file); poll(), so that no
     * descriptor number is too high for select() */
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL_INTERNAL_THREAD | MHD_USE_ITC |
                     MHD_USE_ERROR_LOG;
    if (ss.ss_family == AF_INET6)
        flags |= MHD_USE_DUAL_STACK;
    struct MHD_OptionItem opts[] = {
        {MHD_OPTION_SOCK_ADDR, 0, &ss},
        {MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)on_completed, srv},
        {MHD_OPTION_CONNECTION_TIMEOUT, IDLE_TIMEOUT_S, NULL},
        {MHD_OPTION_THREAD_STACK_SIZE, CONN_STACK_BYTES, NULL},
        {MHD_OPTION_END, 0, NULL},
    };
    /* the logger must be the first option, or MHD logs its own complaint about it */
    srv->mhd = MHD_start_daemon(flags, params->port, NULL, NULL, on_request, srv,
                                MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, srv, MHD_OPTION_ARRAY, opts,
                                MHD_OPTION_END);
    if (srv->mhd == NULL) {
        drv_err_set(err, DRV_EIO, "http: cannot listen on %s port %u", host,
                    (unsigned)params->port);
        goto fail;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(srv->mhd, MHD_DAEMON_INFO_BIND_PORT);
    srv->port = di ? di->port : params->port;

    if (pthread_create(&srv->watch_thread, NULL, watch_main, srv) != 0) {
        MHD_stop_daemon(srv->mhd);
        drv_err_set(err, DRV_EIO, "http: cannot start the watch thread");
        goto fail;
    }
    srv->watch_started = true;
    drv_log(DRV_LOG_INFO, "http: listening on %s port %u", host, (unsigned)srv->port);
    return srv;

fail:
    server_destroy(srv);
    return NULL;
}

void drv_http_server_free(struct drv_http_server *srv)
{
    if (srv == NULL)
        return;
    atomic_store(&srv->stopping, true);
    stop_watch(srv);
    /* connections waiting for their producers must end before MHD can join their
     * threads: cancel and wake them all; their readers see the cancel flag and
     * end the response, and nothing waits once `stopping` is set */
    pthread_mutex_lock(&srv->mu);
    for (struct drv_http_stream *s = srv->streams; s; s = s->next) {
        pthread_mutex_lock(&s->mu);
        stream_cancel_locked(s, DRV_EIO);
        pthread_mutex_unlock(&s->mu);
    }
    pthread_mutex_unlock(&srv->mu);
    MHD_stop_daemon(srv->mhd);
    if (srv->streams != NULL)
        drv_log(DRV_LOG_ERROR, "http: streams still held by MHD after stop");
    server_destroy(srv);
}
