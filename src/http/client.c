/* http client: requests on libcurl, one or several at once over one curl multi
 * handle driven by the calling thread, or one at a time on a session, whole or
 * step by step. */
#include "http/http.h"

#include <ctype.h>
#include <curl/curl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define DEFAULT_MAX_BODY   (8u << 20)
#define MAX_HEADER_BYTES   (64u << 10)
#define DEFAULT_CONNECT_MS 5000L
#define POLL_MS            50

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;
static void curl_init(void)
{
    curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* One transfer: the request, where its response goes, and how it ended. */
struct xfer {
    const struct drv_http_request *rq;
    struct drv_http_response *resp;
    CURL *easy;
    struct curl_slist *hdrs;
    int stop_rc; /* set when we stopped it ourselves: DRV_ETOOBIG or DRV_EIO */
    char stop_msg[64];
    bool done;
    bool borrowed; /* easy belongs to a session */
    CURLcode result;
    size_t seen;        /* body bytes that arrived */
    uint64_t t_last_ns; /* when the last byte (header or body) arrived, or the start */
};

void drv_http_response_init(struct drv_http_response *r)
{
    memset(r, 0, sizeof(*r));
    drv_buf_init(&r->body, DEFAULT_MAX_BODY);
    drv_buf_init(&r->headers, MAX_HEADER_BYTES);
}

void drv_http_response_release(struct drv_http_response *r)
{
    drv_buf_release(&r->body);
    drv_buf_release(&r->headers);
}

bool drv_http_response_header(const struct drv_http_response *r, const char *name, char *out,
                              size_t out_size)
{
    size_t nlen = strlen(name);
    const char *p = r->headers.data;
    while (p && *p) {
        const char *eol = strstr(p, "\r\n");
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        if (len > nlen && p[nlen] == ':' && strncasecmp(p, name, nlen) == 0) {
            const char *v = p + nlen + 1, *end = p + len;
            while (v < end && (*v == ' ' || *v == '\t'))
                v++;
            while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
                end--;
            size_t vlen = (size_t)(end - v);
            if (out_size) {
                if (vlen >= out_size)
                    vlen = out_size - 1;
                memcpy(out, v, vlen);
                out[vlen] = '\0';
            }
            return true;
        }
        p = eol ? eol + 2 : p + len;
    }
    return false;
}

static bool is_2xx(CURL *easy)
{
    long status = 0;
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
    return status >= 200 && status < 300;
}

static size_t on_write(char *data, size_t size, size_t nmemb, void *ud)
{
    struct xfer *x = ud;
    size_t n = size * nmemb;
    x->seen += n;
    x->t_last_ns = drv_now_ns();
    if (x->rq->on_chunk && is_2xx(x->easy)) {
        if (x->rq->on_chunk(x->rq->ud, data, n) != 0) {
            x->stop_rc = DRV_EIO;
            snprintf(x->stop_msg, sizeof(x->stop_msg), "stopped by the receiver");
            return 0;
        }
        return n;
    }
    if (drv_buf_append(&x->resp->body, data, n) != 0) {
        x->stop_rc = DRV_ETOOBIG;
        snprintf(x->stop_msg, sizeof(x->stop_msg), "response body larger than %zu bytes",
                 x->resp->body.cap);
        return 0;
    }
    return n;
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *ud)
{
    struct xfer *x = ud;
    size_t n = size * nmemb;
    x->t_last_ns = drv_now_ns();
    /* a new status line (after a 100 Continue or a redirect) starts a new set */
    if (n >= 5 && memcmp(data, "HTTP/", 5) == 0) {
        drv_buf_reset(&x->resp->headers);
        return n;
    }
    if (n == 2 && data[0] == '\r')
        return n;
    drv_buf_append(&x->resp->headers, data, n); /* past the cap: later headers are dropped */
    return n;
}

static int on_progress(void *ud, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
    struct xfer *x = ud;
    if (x->rq->cancel && atomic_load(x->rq->cancel)) {
        x->stop_rc = DRV_EIO;
        snprintf(x->stop_msg, sizeof(x->stop_msg), "cancelled");
        return 1;
    }
    return 0;
}

static int add_header(struct xfer *x, const char *line)
{
    struct curl_slist *h = curl_slist_append(x->hdrs, line);
    if (h == NULL)
        return DRV_ENOMEM;
    x->hdrs = h;
    return 0;
}

static int xfer_setup(struct xfer *x, struct drv_err *err)
{
    const struct drv_http_request *rq = x->rq;
    if (rq->url == NULL || rq->url[0] == '\0')
        return drv_err_set(err, DRV_EINVAL, "no URL");
    if (x->easy == NULL) /* else a session's handle, with its open connections */
        x->easy = curl_easy_init();
    if (x->easy == NULL)
        return drv_err_set(err, DRV_ENOMEM, "out of memory");
    x->resp->body.cap = rq->max_body_bytes ? rq->max_body_bytes : DEFAULT_MAX_BODY;
    CURL *e = x->easy;
    curl_easy_setopt(e, CURLOPT_URL, rq->url);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
                     rq->connect_timeout_ms > 0 ? rq->connect_timeout_ms : DEFAULT_CONNECT_MS);
    if (rq->timeout_ms > 0)
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, rq->timeout_ms);
    /* stall_timeout_ms is checked by the loops that drive the transfer (stalled()):
     * curl's LOW_SPEED_TIME averages over its last 5 s, so a node that went
     * silent after a burst was seen only about 5 s late */
    x->t_last_ns = drv_now_ns();
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(e, CURLOPT_XFERINFODATA, x);
    curl_easy_setopt(e, CURLOPT_NOPROGRESS, 0L);
    /* a streamed response must reach the callback as it arrives */
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    const char *method = rq->method ? rq->method : rq->body ? "POST" : "GET";
    if (rq->body) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)rq->body_len);
        curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, rq->body);
        char ct[160];
        snprintf(ct, sizeof(ct), "Content-Type: %s",
                 rq->content_type ? rq->content_type : "application/json");
        /* no "Expect: 100-continue" round trip before larger bodies */
        if (add_header(x, ct) || add_header(x, "Expect:"))
            return drv_err_set(err, DRV_ENOMEM, "out of memory");
    }
    if (rq->bearer && rq->bearer[0]) {
        struct drv_buf auth;
        drv_buf_init(&auth, 8192);
        int rc = drv_buf_appendf(&auth, "Authorization: Bearer %s", rq->bearer) ||
                 add_header(x, auth.data);
        drv_buf_release(&auth);
        if (rc)
            return drv_err_set(err, DRV_ENOMEM, "API key too long or out of memory");
    }
    if (x->hdrs)
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->hdrs);
    if (strcmp(method, "GET") == 0 && rq->body == NULL)
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    else if (strcmp(method, "HEAD") == 0)
        curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    else if (strcmp(method, "POST") != 0 || rq->body == NULL)
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
    return 0;
}

static void xfer_cleanup(struct xfer *x)
{
    if (x->easy && !x->borrowed)
        curl_easy_cleanup(x->easy);
    curl_slist_free_all(x->hdrs);
    x->easy = NULL;
    x->hdrs = NULL;
}

/* Nothing arrived for the request's stall_timeout_ms (first_byte_timeout_ms
 * before the body began), or for gone_grace_ms from a server said to be gone:
 * stops it (as timed out). */
static bool stalled(struct xfer *x)
{
    const struct drv_http_request *rq = x->rq;
    uint64_t silent_ns = drv_now_ns() - x->t_last_ns;
    if (rq->gone && atomic_load(rq->gone) && silent_ns >= (uint64_t)rq->gone_grace_ms * 1000000u) {
        x->stop_rc = DRV_EUPSTREAM;
        snprintf(x->stop_msg, sizeof(x->stop_msg),
                 "stopped answering (health checks fail, nothing for %ld ms)", rq->gone_grace_ms);
        return true;
    }
    long ms = rq->stall_timeout_ms;
    if (ms > 0 && x->seen == 0 && rq->first_byte_timeout_ms > ms)
        ms = rq->first_byte_timeout_ms;
    if (ms <= 0 || silent_ns < (uint64_t)ms * 1000000u)
        return false;
    x->stop_rc = DRV_EUPSTREAM;
    snprintf(x->stop_msg, sizeof(x->stop_msg), "nothing received for %ld ms (stall timeout)", ms);
    return true;
}

/* Turns how a transfer ended into a return code and message. */
static int xfer_finish(struct xfer *x, struct drv_err *err)
{
    struct drv_http_response *r = x->resp;
    r->t_done_ns = drv_now_ns();
    curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &r->status);
    if (x->stop_rc)
        return drv_err_set(err, x->stop_rc, "%s: %s", x->rq->url, x->stop_msg);
    switch (x->result) {
    case CURLE_OK:
        return 0;
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
        return drv_err_set(err, DRV_EINVAL, "%s: not a usable http:// URL", x->rq->url);
    case CURLE_OUT_OF_MEMORY:
        return drv_err_set(err, DRV_ENOMEM, "out of memory");
    case CURLE_OPERATION_TIMEDOUT:
        return drv_err_set(err, DRV_EUPSTREAM, "%s: timed out (%s)", x->rq->url,
                           r->status ? "while receiving the response" : "no response");
    default:
        return drv_err_set(err, DRV_EUPSTREAM, "%s: %s", x->rq->url, curl_easy_strerror(x->result));
    }
}

/* fetch_many over the multi handle m, whose connection cache keeps the
 * connections; NULL: a multi handle of its own for this call. */
static int fetch_many_on(CURLM *m, const struct drv_http_request *rqs,
                         struct drv_http_response *resps, int *rcs, struct drv_err *errs, int n)
{
    if (n <= 0)
        return 0;
    pthread_once(&curl_once, curl_init);
    int rc = 0;
    bool own_m = m == NULL;
    struct xfer *xs = calloc((size_t)n, sizeof(*xs));
    if (xs == NULL) {
        rc = DRV_ENOMEM;
        goto out;
    }
    if (curl_init_rc != CURLE_OK || (own_m && (m = curl_multi_init()) == NULL)) {
        rc = DRV_ENOMEM;
        goto out;
    }
    int running = 0;
    for (int i = 0; i < n; i++) {
        xs[i].rq = &rqs[i];
        xs[i].resp = &resps[i];
        drv_buf_reset(&resps[i].body);
        drv_buf_reset(&resps[i].headers);
        resps[i].status = 0;
        resps[i].t_start_ns = drv_now_ns();
        rcs[i] = xfer_setup(&xs[i], &errs[i]);
        if (rcs[i] == 0 && curl_multi_add_handle(m, xs[i].easy) != CURLM_OK)
            rcs[i] = drv_err_set(&errs[i], DRV_ENOMEM, "out of memory");
        if (rcs[i]) {
            xs[i].done = true;
            resps[i].t_done_ns = drv_now_ns();
        } else {
            running++;
        }
    }
    while (running > 0) {
        int still = 0;
        CURLMcode mc = curl_multi_perform(m, &still);
        if (mc == CURLM_OK)
            mc = curl_multi_poll(m, NULL, 0, POLL_MS, NULL);
        if (mc != CURLM_OK) {
            for (int i = 0; i < n; i++) {
                if (xs[i].done)
                    continue;
                xs[i].done = true;
                resps[i].t_done_ns = drv_now_ns();
                rcs[i] = drv_err_set(&errs[i], DRV_EIO, "curl: %s", curl_multi_strerror(mc));
            }
            break;
        }
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(m, &left)) != NULL) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            for (int i = 0; i < n; i++) {
                if (xs[i].easy != msg->easy_handle || xs[i].done)
                    continue;
                xs[i].done = true;
                xs[i].result = msg->data.result;
                rcs[i] = xfer_finish(&xs[i], &errs[i]);
                running--;
            }
        }
        /* a cancelled or stalled transfer that is waiting (no data, no progress call) */
        for (int i = 0; i < n; i++) {
            if (xs[i].done)
                continue;
            bool cancelled = rqs[i].cancel && atomic_load(rqs[i].cancel);
            if (!cancelled && !stalled(&xs[i]))
                continue;
            xs[i].done = true;
            if (cancelled) {
                xs[i].stop_rc = DRV_EIO;
                snprintf(xs[i].stop_msg, sizeof(xs[i].stop_msg), "cancelled");
            }
            rcs[i] = xfer_finish(&xs[i], &errs[i]);
            running--;
        }
    }
out:
    for (int i = 0; xs && i < n; i++) {
        if (m && xs[i].easy)
            curl_multi_remove_handle(m, xs[i].easy);
        xfer_cleanup(&xs[i]);
    }
    if (m && own_m)
        curl_multi_cleanup(m);
    free(xs);
    if (rc)
        for (int i = 0; i < n; i++)
            rcs[i] = drv_err_set(&errs[i], rc, "out of memory");
    return rc;
}

int drv_http_fetch_many(const struct drv_http_request *rqs, struct drv_http_response *resps,
                        int *rcs, struct drv_err *errs, int n)
{
    return fetch_many_on(NULL, rqs, resps, rcs, errs, n);
}

int drv_http_fetch(const struct drv_http_request *rq, struct drv_http_response *resp,
                   struct drv_err *err)
{
    int rc = 0;
    struct drv_err e;
    drv_err_init(&e);
    int mrc = drv_http_fetch_many(rq, resp, &rc, &e, 1);
    if (mrc)
        rc = mrc;
    if (rc)
        drv_err_set(err, e.code ? e.code : rc, "%s", e.msg);
    return rc;
}

/* ---- sessions: one handle, its connections kept between requests ---------- */

/* A session drives its transfers through a curl multi handle of its own: the
 * multi handle holds the connection cache (an easy handle added to a multi uses
 * the multi's), and it lets a caller run a transfer step by step on its own
 * thread (drv_http_session_begin/step/end) as well as all at once. */
struct drv_http_session {
    CURLM *multi;
    CURL *easy;
    struct xfer x; /* the transfer between begin and end */
    bool active;   /* begun, not ended */
    bool running;  /* begun, not finished */
    bool kicked;   /* curl has been run once since begin */
    int rc;        /* how it finished (once !running) */
    struct drv_err err;
};

struct drv_http_session *drv_http_session_new(void)
{
    pthread_once(&curl_once, curl_init);
    if (curl_init_rc != CURLE_OK)
        return NULL;
    struct drv_http_session *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    s->multi = curl_multi_init();
    s->easy = curl_easy_init();
    if (s->multi == NULL || s->easy == NULL) {
        drv_http_session_free(s);
        return NULL;
    }
    /* the connections it keeps between requests (curl's own default follows the
     * handles added, which fetch_many removes again) */
    curl_multi_setopt(s->multi, CURLMOPT_MAXCONNECTS, 64L);
    return s;
}

void drv_http_session_free(struct drv_http_session *s)
{
    if (s == NULL)
        return;
    if (s->active) {
        struct drv_err e;
        drv_http_session_end(s, &e);
    }
    if (s->easy)
        curl_easy_cleanup(s->easy);
    if (s->multi)
        curl_multi_cleanup(s->multi);
    free(s);
}

static void session_finished(struct drv_http_session *s, CURLcode result)
{
    s->running = false;
    s->x.done = true;
    s->x.result = result;
    s->rc = xfer_finish(&s->x, &s->err);
}

int drv_http_session_begin(struct drv_http_session *s, const struct drv_http_request *rq,
                           struct drv_http_response *resp, struct drv_err *err)
{
    if (s->active)
        return drv_err_set(err, DRV_EINVAL, "http session: a request is already in progress");
    curl_easy_reset(s->easy); /* options go; open connections stay (in the multi) */
    s->x = (struct xfer){.rq = rq, .resp = resp, .easy = s->easy, .borrowed = true};
    drv_err_init(&s->err);
    drv_buf_reset(&resp->body);
    drv_buf_reset(&resp->headers);
    resp->status = 0;
    resp->t_start_ns = drv_now_ns();
    int rc = xfer_setup(&s->x, err);
    if (rc == 0 && curl_multi_add_handle(s->multi, s->easy) != CURLM_OK)
        rc = drv_err_set(err, DRV_ENOMEM, "out of memory");
    if (rc) {
        resp->t_done_ns = drv_now_ns();
        xfer_cleanup(&s->x);
        return rc;
    }
    s->active = s->running = true;
    s->kicked = false;
    return 0;
}

/* Runs curl on what has arrived; finishes the transfer when curl says it is done. */
static void session_perform(struct drv_http_session *s)
{
    int still = 0;
    CURLMcode mc = curl_multi_perform(s->multi, &still);
    if (mc != CURLM_OK) {
        s->x.stop_rc = DRV_EIO;
        snprintf(s->x.stop_msg, sizeof(s->x.stop_msg), "curl: %s", curl_multi_strerror(mc));
        session_finished(s, CURLE_OK);
        return;
    }
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(s->multi, &left)) != NULL)
        if (msg->msg == CURLMSG_DONE && msg->easy_handle == s->easy && s->running)
            session_finished(s, msg->data.result);
}

int drv_http_session_step(struct drv_http_session *s, int timeout_ms)
{
    if (!s->running)
        return 0;
    size_t before = s->x.seen;
    if (!s->kicked) { /* the first step sends the request */
        s->kicked = true;
        session_perform(s);
    }
    if (s->running && s->x.seen == before) {
        /* the last perform took all there was: wait for the socket (or curl's own
         * timers), then take what came */
        CURLMcode mc = curl_multi_poll(s->multi, NULL, 0, timeout_ms, NULL);
        if (mc == CURLM_OK) {
            session_perform(s);
        } else {
            s->x.stop_rc = DRV_EIO;
            snprintf(s->x.stop_msg, sizeof(s->x.stop_msg), "curl: %s", curl_multi_strerror(mc));
            session_finished(s, CURLE_OK);
        }
    }
    /* a cancelled or stalled transfer that is waiting (no data, no progress call) */
    const atomic_bool *cancel = s->x.rq->cancel;
    if (s->running && cancel && atomic_load(cancel)) {
        s->x.stop_rc = DRV_EIO;
        snprintf(s->x.stop_msg, sizeof(s->x.stop_msg), "cancelled");
        session_finished(s, CURLE_OK);
    } else if (s->running && stalled(&s->x)) {
        session_finished(s, CURLE_OK);
    }
    return s->running;
}

int drv_http_session_result(struct drv_http_session *s, struct drv_err *err)
{
    if (!s->active || s->running)
        return drv_err_set(err, DRV_EINVAL, "http session: no finished request");
    if (s->rc)
        drv_err_set(err, s->err.code ? s->err.code : s->rc, "%s", s->err.msg);
    return s->rc;
}

int drv_http_session_end(struct drv_http_session *s, struct drv_err *err)
{
    if (!s->active)
        return drv_err_set(err, DRV_EINVAL, "http session: no request in progress");
    if (s->running) { /* given up before it finished */
        s->x.stop_rc = DRV_EIO;
        snprintf(s->x.stop_msg, sizeof(s->x.stop_msg), "abandoned");
        session_finished(s, CURLE_OK);
    }
    curl_multi_remove_handle(s->multi, s->easy);
    xfer_cleanup(&s->x);
    s->active = false;
    if (s->rc)
        drv_err_set(err, s->err.code ? s->err.code : s->rc, "%s", s->err.msg);
    return s->rc;
}

int drv_http_session_fetch_many(struct drv_http_session *s, const struct drv_http_request *rqs,
                                struct drv_http_response *resps, int *rcs, struct drv_err *errs,
                                int n)
{
    if (s->active) {
        for (int i = 0; i < n; i++)
            rcs[i] = drv_err_set(&errs[i], DRV_EINVAL, "http session: a request is in progress");
        return DRV_EINVAL;
    }
    return fetch_many_on(s->multi, rqs, resps, rcs, errs, n);
}

int drv_http_session_fetch(struct drv_http_session *s, const struct drv_http_request *rq,
                           struct drv_http_response *resp, struct drv_err *err)
{
    int rc = drv_http_session_begin(s, rq, resp, err);
    if (rc)
        return rc;
    while (drv_http_session_step(s, POLL_MS))
        ;
    return drv_http_session_end(s, err);
}
