/* http — the HTTP server: route table, capped request bodies, streaming responses.
 *
 * Built on libmicrohttpd (MHD), a thread per client connection: that thread
 * reads the request, calls the route handler and sends the response. A handler
 * answers at once with drv_http_respond(), or opens a stream with
 * drv_http_stream_open() and hands the stream to a producer (an inference or
 * upstream thread) that writes it from any thread. While a response waits for
 * its producer the connection's thread sleeps — or does the producer's work, if
 * the producer lent it some (drv_http_stream_set_pump): a producer that can run
 * in steps on the connection's thread (a relay of another server's answer)
 * then costs no thread hand-off.

 * Errors the server produces itself are JSON, Content-Type application/json:
 *   404 {"error":"..."}  no route has this path
 *   405 {"error":"..."}  the path exists but not for this method (Allow header set)
 *   413 {"error":"..."}  request body larger than max_body_bytes
 *   500 {"error":"..."}  the handler neither responded nor opened a stream
 *
 * A handler that cannot know the status yet (it depends on work done on another
 * thread) defers: drv_http_stream_defer() parks the connection, and the producer
 * later answers with drv_http_stream_respond() (a complete response) or
 * drv_http_stream_start() (a streaming one).
 *
 * Threads: drv_http_respond*, drv_http_req_*, drv_http_stream_open and
 * drv_http_stream_defer may only be called from inside the handler, on the MHD
 * thread that called it. The other drv_http_stream_* functions may be called
 * from any thread (one producer per stream). */
#ifndef DRV_HTTP_H
#define DRV_HTTP_H

#include "base/base.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct drv_http_server;
struct drv_http_req;
struct drv_http_stream;

/* ---- server ---------------------------------------------------------------- */

struct drv_http_params {
    const char *host;         /* address to bind: numeric IPv4/IPv6 or a resolvable name;
                                 default "127.0.0.1"; "::" binds IPv6 and IPv4 (dual stack).
                                 Only read during drv_http_server_new. */
    uint16_t port;            /* TCP port; 0 = an ephemeral port chosen by the OS (read it
                                 back with drv_http_server_port); default 0 */
    size_t max_body_bytes;    /* largest request body accepted, bytes; larger -> 413;
                                 default 8 MiB */
    size_t max_stream_buffer; /* bytes a streaming response may hold unsent before the
                                 client is judged too slow and the stream cancelled;
                                 default 8 MiB */
};

/* Called on an MHD thread once the whole request body has arrived. Must answer
 * exactly once (drv_http_respond*, drv_http_stream_open or drv_http_stream_defer)
 * before returning and must not block. A handler that answers nothing gets a logged 500. */
typedef void (*drv_http_handler)(struct drv_http_req *req, void *user_data);

struct drv_http_route {
    const char *method;  /* "GET", "POST", "HEAD", ... or NULL = any method. A "GET"
                            route also answers HEAD (same headers, no body). */
    const char *path;    /* exact match on the decoded path, no query ("/api/chat") */
    drv_http_handler fn; /* never NULL */
};

/* Defaults as documented on each field of struct drv_http_params. */
struct drv_http_params drv_http_default_params(void);

/* Binds, listens and starts serving. `routes` is copied, but the strings it points
 * to must outlive the server (string literals in practice). The first route that
 * matches path and method wins. user_data is passed to every handler. Returns
 * NULL with err set (DRV_EINVAL for bad params or host, DRV_EIO when the address
 * cannot be bound, DRV_ENOMEM). Caller frees with drv_http_server_free. */
struct drv_http_server *drv_http_server_new(const struct drv_http_params *params,
                                            const struct drv_http_route *routes, size_t n_routes,
                                            void *user_data, struct drv_err *err);

/* The port actually bound (useful with params.port = 0). */
uint16_t drv_http_server_port(const struct drv_http_server *srv);

/* Stops accepting, cancels every open stream (their cancel flags become true and
 * their writes fail), closes all connections and waits for the MHD threads to
 * exit. Streams still held by producers stay valid until each producer calls
 * drv_http_stream_close; the server can be freed before that. NULL is a no-op.
 * Must not be called from a handler. */
void drv_http_server_free(struct drv_http_server *srv);

/* ---- requests (valid only during the handler call) -------------------------- */

const char *drv_http_req_method(const struct drv_http_req *req); /* "GET", "POST", ... */
const char *drv_http_req_path(const struct drv_http_req *req);   /* decoded, without query */
/* Decoded value of query parameter `name` (first one wins); NULL when absent, and
 * also for a bare "?name" without "=". */
const char *drv_http_req_query(const struct drv_http_req *req, const char *name);
/* Request header value, name compared case-insensitively; NULL when absent. */
const char *drv_http_req_header(const struct drv_http_req *req, const char *name);
/* The whole body, NUL-terminated (never NULL: "" when empty); its length in bytes
 * goes to *len when len is non-NULL. Binary bodies may contain NULs. */
const char *drv_http_req_body(const struct drv_http_req *req, size_t *len);
/* Client IP address as text ("127.0.0.1", "::1"); "" when unknown. */
const char *drv_http_req_client_addr(struct drv_http_req *req);

/* Adds a header to whichever response this request sends (drv_http_respond*,
 * drv_http_stream_open or, later, a deferred stream's start/respond); call it
 * before that (before drv_http_stream_defer for a deferred one). Both strings are copied. Returns
 * 0, DRV_EINVAL (already answered, or CR/LF in name or value) or DRV_ENOMEM. */
int drv_http_req_add_header(struct drv_http_req *req, const char *name, const char *value);

/* ---- plain responses ------------------------------------------------------- */

/* Sends a complete response; body (len bytes, may be NULL when len is 0) is
 * copied. content_type NULL = no Content-Type header. Returns 0, or DRV_EINVAL
 * when this request was already answered or the call is not from its handler,
 * DRV_ENOMEM / DRV_EIO when MHD refused. */
int drv_http_respond(struct drv_http_req *req, unsigned status, const char *content_type,
                     const void *body, size_t len);
/* Sends {"error":"<message>"} (JSON-escaped) as application/json. */
int drv_http_respond_json_error(struct drv_http_req *req, unsigned status, const char *message);

/* ---- streaming responses --------------------------------------------------- */

/* Answers with `status` and a body of unknown length (chunked transfer encoding
 * on HTTP/1.1; on HTTP/1.0 the connection closes at the end). The headers go out
 * at once; the body is what the producer writes. Returns the stream, owned by the
 * caller until drv_http_stream_close, or NULL (request already answered, not
 * called from its handler, out of memory); after NULL the handler may still
 * answer with drv_http_respond*, else the client gets a 500.
 * For a HEAD request the headers are sent and the stream starts cancelled. */
struct drv_http_stream *drv_http_stream_open(struct drv_http_req *req, unsigned status,
                                             const char *content_type);

/* ---- deferred responses ---------------------------------------------------- */

/* Instead of answering now: parks the connection (no response is sent yet) and
 * returns a stream in the "deferred" state, owned by the caller until
 * drv_http_stream_close; hand it to the producer that will learn the status.
 * The producer answers once, from any thread, with drv_http_stream_start or
 * drv_http_stream_respond. Closing it without either answers
 * 500 {"error":"..."} (logged). Its cancel flag is valid at once and becomes
 * true when the client disconnects while parked (noticed within about 200 ms)
 * or the server stops; pass it as drv_gen_request.cancel. Headers added with
 * drv_http_req_add_header before this call are kept. Returns NULL like
 * drv_http_stream_open (the handler may then still answer itself). If the
 * server is already stopping the client gets a 503 now and the stream starts
 * cancelled. */
struct drv_http_stream *drv_http_stream_defer(struct drv_http_req *req);

/* Once, on a deferred stream: commits status and headers and starts a body of
 * unknown length, as drv_http_stream_open does; then drv_http_stream_write and
 * drv_http_stream_close as usual. Bytes written before this call are buffered
 * (the same max_stream_buffer cap) and sent after the headers. For a HEAD
 * request the headers are sent and the stream becomes cancelled. content_type
 * is copied; NULL = none. Returns 0, DRV_EIO (or the code that cancelled it)
 * when the stream is cancelled, DRV_EINVAL when it is not deferred or already
 * answered/closed, DRV_ENOMEM. */
int drv_http_stream_start(struct drv_http_stream *s, unsigned status, const char *content_type);

/* Once, on a deferred stream, instead of start: a complete response; body (len
 * bytes, may be NULL when len is 0) and content_type are copied, Content-Length
 * is set; bytes written earlier are dropped. Afterwards only
 * drv_http_stream_close is allowed (writes return DRV_EINVAL). Returns as
 * drv_http_stream_start. */
int drv_http_stream_respond(struct drv_http_stream *s, unsigned status, const char *content_type,
                            const void *body, size_t len);

/* Adds a response header to a deferred stream before start/respond (e.g.
 * Retry-After), after those added to the request. Both strings are copied.
 * Returns 0, DRV_EINVAL (not deferred, already answered, CR/LF in name or
 * value) or DRV_ENOMEM. */
int drv_http_stream_add_header(struct drv_http_stream *s, const char *name, const char *value);

/* ---- writing a stream ------------------------------------------------------ */

/* Queues len bytes for the client (copied) and wakes the connection. Never
 * blocks. Returns 0, or nonzero when the stream is cancelled: DRV_EIO (client
 * gone, server stopping, or cancelled earlier) or DRV_ETOOBIG (more than
 * max_stream_buffer bytes would be waiting: the stream is cancelled now and the
 * client sees a truncated response). Once it returns nonzero it always does;
 * the producer should stop and close. */
int drv_http_stream_write(struct drv_http_stream *s, const void *data, size_t len);

/* The producer is done: what was written is still delivered, then the response
 * ends (a deferred stream never started or responded answers 500). Releases the
 * producer's hold; s must not be used afterwards. NULL is a no-op. */
void drv_http_stream_close(struct drv_http_stream *s);

/* A flag that becomes true when the client disconnects, the buffer cap is
 * exceeded or the server stops; suitable for drv_gen_request.cancel. Owned by
 * the stream, valid until drv_http_stream_close. A disconnect of a client whose
 * stream is idle (nothing to send) or parked (deferred, not answered yet) is
 * noticed within about 200 ms. */
atomic_bool *drv_http_stream_cancel_flag(struct drv_http_stream *s);

/* Work lent to the connection's thread: whenever the response waits for the
 * producer (a deferred stream not yet answered, or nothing to send), the
 * connection's thread calls fn(ud) instead of sleeping. fn does a bounded step
 * of the producer's work — what is ready, waiting at most some tens of
 * milliseconds when nothing is — writing/committing what it produces, and
 * returns nonzero while there is more, 0 when done (the pump is then dropped).
 * If the request ends first (the client left), fn is called with the stream
 * cancelled until it returns 0. Set from the connection's thread only: in the
 * handler, or by the pump itself (which may hand over to another pump: the one
 * set last is called next). fn NULL removes it. */
typedef int (*drv_http_pump_fn)(void *ud);
void drv_http_stream_set_pump(struct drv_http_stream *s, drv_http_pump_fn fn, void *ud);

/* ---- client (libcurl) -------------------------------------------------------
 *
 * Blocking requests made in the calling thread: one (drv_http_fetch) or several
 * at once over one curl multi handle (drv_http_fetch_many), each with its own
 * response. Bodies of 2xx responses can be streamed to a callback chunk by
 * chunk as they arrive; other bodies are kept (capped) for the error message. */

/* Called with each piece of a 2xx response body as it arrives (pieces are not
 * aligned to lines or events). Return 0 to go on, nonzero to stop the transfer
 * (the request then fails with DRV_EIO, "stopped by the receiver"). */
typedef int (*drv_http_chunk_fn)(void *ud, const char *data, size_t len);

struct drv_http_request {
    const char *method;         /* "GET", "POST", ...; NULL = POST with a body, GET without */
    const char *url;            /* absolute http:// or https:// URL; never NULL */
    const char *body;           /* request body or NULL; copied by libcurl when sent */
    size_t body_len;            /* bytes of body */
    const char *content_type;   /* of the body; NULL = application/json */
    long connect_timeout_ms;    /* TCP connect (and TLS) limit; 0 = 5000 ms */
    long timeout_ms;            /* whole request limit; 0 = none */
    size_t max_body_bytes;      /* cap of what is kept in drv_http_response.body; 0 = 8 MiB;
                                   a longer kept body fails the request with DRV_ETOOBIG */
    drv_http_chunk_fn on_chunk; /* NULL = keep a 2xx body in response.body too */
    void *ud;                   /* for on_chunk */
    const atomic_bool *cancel;  /* NULL, or a flag that aborts the request when it becomes
                                   true (noticed within about 50 ms) */
    const char *bearer;         /* NULL, or an API key sent as "Authorization: Bearer <key>" */
    long stall_timeout_ms;      /* fail (DRV_EUPSTREAM) when no byte arrives for this long,
                                   the wait for the first one included; 0 = no limit;
                                   noticed within about 50 ms (a session step: its wait) */
    long first_byte_timeout_ms; /* until the first body byte, this limit instead when it is
                                   longer (a node working through a long prompt sends
                                   nothing); 0 = stall_timeout_ms throughout */
    const atomic_bool *gone;    /* NULL, or a flag that says the server stopped answering
                                   elsewhere (its health checks): once it is true, a
                                   transfer that has received nothing for gone_grace_ms
                                   stops (DRV_EUPSTREAM); one still receiving goes on */
    long gone_grace_ms;
};

/* What came back. Initialise with drv_http_response_init, free with
 * drv_http_response_release (owns body and headers). */
struct drv_http_response {
    long status;            /* HTTP status of the final response; 0 when none came */
    struct drv_buf body;    /* non-2xx bodies always, 2xx bodies when on_chunk is NULL */
    struct drv_buf headers; /* the final response's header lines, "Name: value\r\n" each */
    uint64_t t_start_ns;    /* drv_now_ns() when the request was started */
    uint64_t t_done_ns;     /* ... and when it ended (ok or not) */
};

void drv_http_response_init(struct drv_http_response *r);
void drv_http_response_release(struct drv_http_response *r);
/* Copies the value of response header `name` (case-insensitive, surrounding
 * blanks trimmed) into out; false when absent. */
bool drv_http_response_header(const struct drv_http_response *r, const char *name, char *out,
                              size_t out_size);

/* Makes one request and waits for it. Returns 0 when a response arrived (any
 * status: look at resp->status), or: DRV_EUPSTREAM when the peer could not be
 * reached or broke off (connection refused, timeout, reset; err says which),
 * DRV_ETOOBIG when a kept body passed max_body_bytes, DRV_EIO when cancelled or
 * stopped by on_chunk, DRV_EINVAL for a bad URL, DRV_ENOMEM. */
int drv_http_fetch(const struct drv_http_request *rq, struct drv_http_response *resp,
                   struct drv_err *err);

/* Makes n requests concurrently in the calling thread and waits for all of
 * them. rcs[i] and errs[i] get what drv_http_fetch would return for request i
 * (resps[i] must be initialised). Returns 0, or negative when the transfers
 * could not be set up at all (then every rcs[i] is that code too). */
int drv_http_fetch_many(const struct drv_http_request *rqs, struct drv_http_response *resps,
                        int *rcs, struct drv_err *errs, int n);

/* A session: requests made one after another on one handle, which keeps its
 * connections open between them (keep-alive), as a browser does. Not for two
 * threads at once. drv_http_session_fetch works as drv_http_fetch; a cancel
 * flag is noticed within about 50 ms while nothing arrives.
 *
 * Step by step, for a caller that runs the transfer on a thread it also uses
 * for other work: drv_http_session_begin starts the request (same arguments and
 * errors as fetch; rq and resp must stay valid until end); each
 * drv_http_session_step does the I/O that is ready — on_chunk is called from
 * inside it — waiting at most timeout_ms for something to arrive when nothing
 * has, and returns 1 while the transfer runs, 0 once it has finished;
 * drv_http_session_end (after begin succeeded, whether finished or not: an
 * unfinished transfer is abandoned and its connection closed) returns what
 * fetch would have. drv_http_session_result tells the same once a step has
 * returned 0, before end (which can then wait: the handle is only put away). */
struct drv_http_session;
struct drv_http_session *drv_http_session_new(void); /* NULL when out of memory */
void drv_http_session_free(struct drv_http_session *s);
int drv_http_session_fetch(struct drv_http_session *s, const struct drv_http_request *rq,
                           struct drv_http_response *resp, struct drv_err *err);
/* drv_http_fetch_many over the session's connections (kept between calls: a
 * health poll every few seconds reuses them). Not while a request is begun. */
int drv_http_session_fetch_many(struct drv_http_session *s, const struct drv_http_request *rqs,
                                struct drv_http_response *resps, int *rcs, struct drv_err *errs,
                                int n);
int drv_http_session_begin(struct drv_http_session *s, const struct drv_http_request *rq,
                           struct drv_http_response *resp, struct drv_err *err);
int drv_http_session_step(struct drv_http_session *s, int timeout_ms);
int drv_http_session_result(struct drv_http_session *s, struct drv_err *err);
int drv_http_session_end(struct drv_http_session *s, struct drv_err *err);

#endif
