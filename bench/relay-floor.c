/* bench/relay-floor.c — the least a relay built on drover's fixed libraries can
 * cost, for bench/gateway-overhead.mjs --floor: libmicrohttpd thread-per-connection
 * in front (as drover's server), one kept-alive libcurl handle per connection thread
 * behind, and with "json" jansson decoding and re-encoding both bodies (setting
 * "model", as a gateway must). No routing, no statistics, no error handling worth
 * the name: not a gateway, a lower bound for one.
 *
 * With "raw" the upstream side is no libcurl either but one kept-alive socket per
 * thread and a bare HTTP/1.1 exchange (Content-Length answers only): what is left
 * is libmicrohttpd's share.
 *
 * "rawjson" is both.
 *
 * usage: relay-floor PORT UPSTREAM_URL [json|raw|rawjson]   (listens on 127.0.0.1:PORT) */
#define _GNU_SOURCE /* strcasestr */
#include <curl/curl.h>
#include <jansson.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <signal.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/uio.h>

static const char *upstream;
static int json_mode;
struct buf {
    char *p;
    size_t n, cap;
};
static void put(struct buf *b, const void *d, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        b->cap = (b->n + n + 1) * 2;
        b->p = realloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, d, n);
    b->n += n;
    b->p[b->n] = 0;
}
static size_t on_write(char *d, size_t s, size_t n, void *u)
{
    put(u, d, s * n);
    return s * n;
}
static _Thread_local CURL *easy;
static _Thread_local int raw_fd = -1;
static int raw_mode;
static struct sockaddr_in raw_addr;
static char raw_host[128];

/* One request over this thread's kept-alive socket: the answer's body into out,
 * its status returned (502 when the exchange failed). */
static long raw_exchange(const char *url, const char *body, size_t blen, struct buf *out)
{
    if (raw_fd < 0) {
        raw_fd = socket(AF_INET, SOCK_STREAM, 0);
        int one = 1;
        setsockopt(raw_fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (connect(raw_fd, (struct sockaddr *)&raw_addr, sizeof raw_addr) != 0) {
            close(raw_fd);
            raw_fd = -1;
            return 502;
        }
    }
    char head[512];
    int n = snprintf(head, sizeof head,
                     "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\n\r\n",
                     url, raw_host, blen);
    struct iovec iov[2] = {{head, (size_t)n}, {(void *)body, blen}};
    struct msghdr mh = {.msg_iov = iov, .msg_iovlen = 2};
    if (sendmsg(raw_fd, &mh, MSG_NOSIGNAL) != n + (ssize_t)blen)
        goto fail;
    char buf[65536];
    size_t got = 0;
    for (;;) {
        ssize_t r = recv(raw_fd, buf + got, sizeof buf - got - 1, 0);
        if (r <= 0)
            goto fail;
        got += (size_t)r;
        buf[got] = 0;
        char *end = strstr(buf, "\r\n\r\n");
        if (end == NULL)
            continue;
        char *cl = strcasestr(buf, "\r\ncontent-length:");
        if (cl == NULL || cl > end)
            goto fail;
        size_t len = strtoul(cl + 17, NULL, 10), hl = (size_t)(end + 4 - buf);
        if (hl + len > sizeof buf - 1)
            goto fail;
        while (got < hl + len) {
            r = recv(raw_fd, buf + got, sizeof buf - got - 1, 0);
            if (r <= 0)
                goto fail;
            got += (size_t)r;
        }
        put(out, buf + hl, len);
        return strtol(buf + 9, NULL, 10);
    }
fail:
    close(raw_fd);
    raw_fd = -1;
    return 502;
}
static _Thread_local struct curl_slist *hdrs;

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url,
                               const char *method, const char *version, const char *data,
                               size_t *size, void **state)
{
    struct buf *in = *state;
    if (in == NULL) {
        *state = calloc(1, sizeof(struct buf));
        return MHD_YES;
    }
    if (*size) {
        put(in, data, *size);
        *size = 0;
        return MHD_YES;
    }
    char u[256];
    snprintf(u, sizeof u, "%s%s", upstream, url);
    const char *body = in->p ? in->p : "";
    size_t blen = in->n;
    char *dumped = NULL;
    if (json_mode) {
        json_t *j = json_loadb(body, blen, 0, NULL);
        if (j) {
            json_t *m = json_object_get(j, "model");
            json_object_set_new(j, "model",
                                json_string(json_is_string(m) ? json_string_value(m) : ""));
            dumped = json_dumps(j, JSON_COMPACT);
            json_decref(j);
            body = dumped;
            blen = strlen(dumped);
        }
    }
    struct buf out = {0};
    long status = 502;
    CURLcode rc = CURLE_OK;
    if (raw_mode) {
        status = raw_exchange(url, body, blen, &out);
        goto answer;
    }
    if (easy == NULL) {
        easy = curl_easy_init();
        hdrs =
            curl_slist_append(curl_slist_append(NULL, "Content-Type: application/json"), "Expect:");
    }
    curl_easy_setopt(easy, CURLOPT_URL, u);
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)blen);
    curl_easy_setopt(easy, CURLOPT_COPYPOSTFIELDS, body);
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, &out);
    curl_easy_setopt(easy, CURLOPT_TCP_NODELAY, 1L);
    rc = curl_easy_perform(easy);
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
    if (rc != CURLE_OK)
        status = 502;
answer:
    free(dumped);
    char *rb = out.p ? out.p : strdup("");
    size_t rn = out.n;
    if (json_mode && rc == CURLE_OK) {
        json_t *j = json_loadb(rb, rn, 0, NULL);
        if (j) {
            json_t *m = json_object_get(j, "model");
            json_object_set_new(j, "model",
                                json_string(json_is_string(m) ? json_string_value(m) : ""));
            char *d = json_dumps(j, JSON_COMPACT);
            json_decref(j);
            free(rb);
            rb = d;
            rn = strlen(d);
        }
    }
    struct MHD_Response *r = MHD_create_response_from_buffer(rn, rb, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(r, "Content-Type", "application/json");
    enum MHD_Result q = MHD_queue_response(c, (unsigned)status, r);
    MHD_destroy_response(r);
    return q;
}
static void done(void *cls, struct MHD_Connection *c, void **state,
                 enum MHD_RequestTerminationCode t)
{
    struct buf *b = *state;
    if (b) {
        free(b->p);
        free(b);
    }
    *state = NULL;
}
int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: floor PORT UPSTREAM_URL [json]\n");
        return 2;
    }
    upstream = argv[2];
    json_mode = argc > 3 && strstr(argv[3], "json") != NULL;
    raw_mode = argc > 3 && strstr(argv[3], "raw") != NULL;
    if (raw_mode) { /* http://HOST:PORT only */
        unsigned a, b, c, d, port;
        if (sscanf(upstream, "http://%u.%u.%u.%u:%u", &a, &b, &c, &d, &port) != 5) {
            fprintf(stderr, "raw: the upstream must be http://IPV4:PORT\n");
            return 2;
        }
        raw_addr = (struct sockaddr_in){.sin_family = AF_INET,
                                        .sin_port = htons((uint16_t)port),
                                        .sin_addr.s_addr = htonl(a << 24 | b << 16 | c << 8 | d)};
        snprintf(raw_host, sizeof raw_host, "%s", upstream + 7);
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)atoi(argv[1])),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL |
            MHD_USE_ITC,
        0, NULL, NULL, handler, NULL, MHD_OPTION_NOTIFY_COMPLETED, done, NULL,
        MHD_OPTION_CONNECTION_TIMEOUT, 300u, MHD_OPTION_SOCK_ADDR, &sa, MHD_OPTION_END);
    if (!d) {
        perror("MHD_start_daemon");
        return 1;
    }
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGTERM);
    sigaddset(&s, SIGINT);
    sigprocmask(SIG_BLOCK, &s, NULL);
    int sig;
    sigwait(&s, &sig);
    MHD_stop_daemon(d);
    return 0;
}
