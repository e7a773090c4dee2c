/*
 * mock.c - a small, fast mock LLM upstream for the gemgate benchmark harness.
 *
 * HTTP/1.1 with keep-alive and pipelining, epoll, one event loop per thread, each thread
 * with its own SO_REUSEPORT listener. It ignores authentication and serves fixed answers:
 *
 *   POST /v1beta/models/{model}:generateContent        fixed Gemini JSON with usageMetadata
 *   POST /v1beta/models/{model}:streamGenerateContent  ?alt=sse: 64 SSE events
 *                                                      (`data: {...}\r\n\r\n`, cumulative
 *                                                      usageMetadata, finishReason on the last);
 *                                                      without alt=sse: a streamed JSON array
 *   POST /v1beta/models/{model}:countTokens            {"totalTokens": 8}
 *   POST /v1/chat/completions                          fixed OpenAI JSON, or with
 *                                                      "stream": true 64 chunks + a usage chunk
 *                                                      + `data: [DONE]`
 *   GET  /v1beta/models, /v1/models, /health
 *   (a leading /gemini prefix and version v1 are accepted too)
 *
 * Streams send the first event at once and event i at t0 + i * delay. The per-event delay in
 * microseconds comes from, in order: the query parameter `delay_us`, a model name ending in
 * `-d<N>` (e.g. `bench-model-d100000`, so a gateway that rewrites the URL can still choose
 * it), the command-line default `--delay-us`.
 *
 * Build: gcc -O2 -pthread -o mock mock.c
 * Run:   mock --port 18080 [--host 127.0.0.1] [--threads 1] [--delay-us 0] [--events 64]
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define MAX_EVENTS_PER_STREAM 4096
#define MAX_HEADER_BYTES (64 * 1024)
#define MAX_BODY_BYTES (64 * 1024 * 1024)
#define MAX_OUT_BYTES (64 * 1024 * 1024)

enum stream_kind { S_NONE = 0, S_GEMINI_SSE, S_GEMINI_ARRAY, S_OPENAI_SSE };

typedef struct buf {
    char *p;
    size_t len, cap;
} buf;

typedef struct conn {
    int fd;
    buf in;
    buf out;
    size_t out_off;
    int close_after;
    int epollout;
    int kind;       /* stream in progress */
    int ev_idx;     /* next event to send */
    long delay_us;
    uint64_t t0_ns; /* stream start */
    uint64_t due_ns;
    int heap_idx;   /* -1 when not scheduled */
    struct conn *next_dead;
} conn;

typedef struct worker {
    int id;
    int ep;
    int lfd;
    int tfd;
    uint64_t armed_ns;
    conn **heap;
    int heap_len, heap_cap;
    conn *dead; /* closed during this epoll batch; freed after it */
    pthread_t th;
} worker;

/* ---------------------------------------------------------------- options and fixed data */

static const char *opt_host = "127.0.0.1";
static int opt_port = 18080;
static int opt_threads = 1;
static long opt_delay_us = 0;
static int opt_events = 64;

static buf gem_json, gem_count, oai_json, models_json, notfound_json;
static buf gem_sse[MAX_EVENTS_PER_STREAM];   /* chunk-framed SSE events */
static buf gem_arr[MAX_EVENTS_PER_STREAM];   /* chunk-framed JSON array pieces */
static buf oai_sse[MAX_EVENTS_PER_STREAM];   /* chunk-framed SSE chunks (last has usage + DONE) */

static char LISTEN_TAG, TIMER_TAG;

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void die(const char *what) {
    perror(what);
    exit(1);
}

static void buf_reserve(buf *b, size_t extra) {
    if (b->len + extra <= b->cap) return;
    size_t cap = b->cap ? b->cap : 1024;
    while (cap < b->len + extra) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) die("realloc");
    b->p = p;
    b->cap = cap;
}

static void buf_add(buf *b, const char *s, size_t n) {
    buf_reserve(b, n);
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

static void buf_adds(buf *b, const char *s) { buf_add(b, s, strlen(s)); }

static void buf_printf(buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void buf_printf(buf *b, const char *fmt, ...) {
    va_list ap;
    for (;;) {
        size_t room = b->cap - b->len;
        va_start(ap, fmt);
        int n = vsnprintf(b->p ? b->p + b->len : NULL, room, fmt, ap);
        va_end(ap);
        if (n < 0) die("vsnprintf");
        if ((size_t)n < room) {
            b->len += (size_t)n;
            return;
        }
        buf_reserve(b, (size_t)n + 1);
    }
}

/* Wrap a payload as one HTTP/1.1 chunk. */
static void chunk_of(buf *dst, const char *payload, size_t n) {
    buf_printf(dst, "%zx\r\n", n);
    buf_add(dst, payload, n);
    buf_adds(dst, "\r\n");
}

#define PROMPT_TOKENS 8

static void build_fixed(void) {
    buf_printf(&gem_json,
               "{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"This is a fixed answer "
               "from the benchmark mock upstream. It has about twenty four tokens in it, "
               "which is a typical short reply.\"}],\"role\":\"model\"},\"finishReason\":\"STOP\","
               "\"index\":0}],\"usageMetadata\":{\"promptTokenCount\":%d,"
               "\"candidatesTokenCount\":24,\"totalTokenCount\":%d,\"promptTokensDetails\":"
               "[{\"modality\":\"TEXT\",\"tokenCount\":%d}]},\"modelVersion\":\"bench-model\","
               "\"responseId\":\"mock-response-0001\"}",
               PROMPT_TOKENS, PROMPT_TOKENS + 24, PROMPT_TOKENS);
    buf_printf(&gem_count, "{\"totalTokens\":%d}", PROMPT_TOKENS);
    buf_printf(&oai_json,
               "{\"id\":\"chatcmpl-mock0001\",\"object\":\"chat.completion\",\"created\":"
               "1700000000,\"model\":\"bench-model\",\"choices\":[{\"index\":0,\"message\":"
               "{\"role\":\"assistant\",\"content\":\"This is a fixed answer from the benchmark "
               "mock upstream. It has about twenty four tokens in it, which is a typical short "
               "reply.\"},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":%d,"
               "\"completion_tokens\":24,\"total_tokens\":%d}}",
               PROMPT_TOKENS, PROMPT_TOKENS + 24);
    buf_adds(&models_json,
             "{\"models\":[{\"name\":\"models/bench-model\",\"baseModelId\":\"bench-model\","
             "\"version\":\"1\",\"displayName\":\"bench-model\",\"inputTokenLimit\":32768,"
             "\"outputTokenLimit\":8192,\"supportedGenerationMethods\":[\"generateContent\","
             "\"countTokens\"]}],\"object\":\"list\",\"data\":[{\"id\":\"bench-model\","
             "\"object\":\"model\",\"created\":1700000000,\"owned_by\":\"mock\"}]}");
    buf_adds(&notfound_json,
             "{\"error\":{\"code\":404,\"message\":\"mock: no such route\",\"status\":"
             "\"NOT_FOUND\"}}");

    int n = opt_events;
    buf ev = {0};
    for (int i = 0; i < n; i++) {
        int last = (i == n - 1);
        ev.len = 0;
        buf_printf(&ev,
                   "{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"tok%04d \"}],"
                   "\"role\":\"model\"},%s\"index\":0}],\"usageMetadata\":{\"promptTokenCount\":"
                   "%d,\"candidatesTokenCount\":%d,\"totalTokenCount\":%d},\"modelVersion\":"
                   "\"bench-model\",\"responseId\":\"mock-stream-0001\"}",
                   i, last ? "\"finishReason\":\"STOP\"," : "", PROMPT_TOKENS, i + 1,
                   PROMPT_TOKENS + i + 1);
        buf sse = {0};
        buf_adds(&sse, "data: ");
        buf_add(&sse, ev.p, ev.len);
        buf_adds(&sse, "\r\n\r\n");
        chunk_of(&gem_sse[i], sse.p, sse.len);
        if (last) buf_adds(&gem_sse[i], "0\r\n\r\n");
        free(sse.p);

        buf arr = {0};
        buf_adds(&arr, i == 0 ? "[" : ",\r\n");
        buf_add(&arr, ev.p, ev.len);
        if (last) buf_adds(&arr, "]");
        chunk_of(&gem_arr[i], arr.p, arr.len);
        if (last) buf_adds(&gem_arr[i], "0\r\n\r\n");
        free(arr.p);

        ev.len = 0;
        buf_printf(&ev,
                   "data: {\"id\":\"chatcmpl-mock0001\",\"object\":\"chat.completion.chunk\","
                   "\"created\":1700000000,\"model\":\"bench-model\",\"choices\":[{\"index\":0,"
                   "\"delta\":{%s\"content\":\"tok%04d \"},\"finish_reason\":%s}]}\n\n",
                   i == 0 ? "\"role\":\"assistant\"," : "", i, last ? "\"stop\"" : "null");
        if (last) {
            buf_printf(&ev,
                       "data: {\"id\":\"chatcmpl-mock0001\",\"object\":\"chat.completion.chunk\","
                       "\"created\":1700000000,\"model\":\"bench-model\",\"choices\":[],"
                       "\"usage\":{\"prompt_tokens\":%d,\"completion_tokens\":%d,"
                       "\"total_tokens\":%d}}\n\ndata: [DONE]\n\n",
                       PROMPT_TOKENS, n, PROMPT_TOKENS + n);
        }
        chunk_of(&oai_sse[i], ev.p, ev.len);
        if (last) buf_adds(&oai_sse[i], "0\r\n\r\n");
    }
    free(ev.p);
}

/* ---------------------------------------------------------------- timer heap */

static int heap_less(conn *a, conn *b) { return a->due_ns < b->due_ns; }

static void heap_swap(worker *w, int i, int j) {
    conn *t = w->heap[i];
    w->heap[i] = w->heap[j];
    w->heap[j] = t;
    w->heap[i]->heap_idx = i;
    w->heap[j]->heap_idx = j;
}

static void heap_up(worker *w, int i) {
    while (i > 0) {
        int p = (i - 1) / 2;
        if (!heap_less(w->heap[i], w->heap[p])) break;
        heap_swap(w, i, p);
        i = p;
    }
}

static void heap_down(worker *w, int i) {
    for (;;) {
        int l = 2 * i + 1, r = l + 1, m = i;
        if (l < w->heap_len && heap_less(w->heap[l], w->heap[m])) m = l;
        if (r < w->heap_len && heap_less(w->heap[r], w->heap[m])) m = r;
        if (m == i) break;
        heap_swap(w, i, m);
        i = m;
    }
}

static void heap_push(worker *w, conn *c) {
    if (w->heap_len == w->heap_cap) {
        w->heap_cap = w->heap_cap ? w->heap_cap * 2 : 256;
        w->heap = realloc(w->heap, sizeof(conn *) * (size_t)w->heap_cap);
        if (!w->heap) die("realloc heap");
    }
    c->heap_idx = w->heap_len;
    w->heap[w->heap_len++] = c;
    heap_up(w, c->heap_idx);
}

static void heap_remove(worker *w, conn *c) {
    int i = c->heap_idx;
    if (i < 0) return;
    int last = --w->heap_len;
    if (i != last) {
        w->heap[i] = w->heap[last];
        w->heap[i]->heap_idx = i;
        heap_down(w, i);
        heap_up(w, i);
    }
    c->heap_idx = -1;
}

static void rearm(worker *w) {
    uint64_t want = w->heap_len ? w->heap[0]->due_ns : 0;
    if (want == w->armed_ns) return;
    struct itimerspec its = {0};
    if (want) {
        its.it_value.tv_sec = (time_t)(want / 1000000000ull);
        its.it_value.tv_nsec = (long)(want % 1000000000ull);
    }
    if (timerfd_settime(w->tfd, TFD_TIMER_ABSTIME, &its, NULL) < 0) die("timerfd_settime");
    w->armed_ns = want;
}

/* ---------------------------------------------------------------- connections */

static void conn_close(worker *w, conn *c) {
    if (c->fd < 0) return;
    heap_remove(w, c);
    epoll_ctl(w->ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
    c->kind = S_NONE;
    c->next_dead = w->dead;
    w->dead = c;
}

static void free_dead(worker *w) {
    while (w->dead) {
        conn *c = w->dead;
        w->dead = c->next_dead;
        free(c->in.p);
        free(c->out.p);
        free(c);
    }
}

static void set_epollout(worker *w, conn *c, int on) {
    if (c->epollout == on) return;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | (on ? EPOLLOUT : 0), .data.ptr = c};
    epoll_ctl(w->ep, EPOLL_CTL_MOD, c->fd, &ev);
    c->epollout = on;
}

/* Returns -1 when the connection was closed. */
static int conn_flush(worker *w, conn *c) {
    while (c->out_off < c->out.len) {
        ssize_t n = write(c->fd, c->out.p + c->out_off, c->out.len - c->out_off);
        if (n > 0) {
            c->out_off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (c->out.len - c->out_off > MAX_OUT_BYTES) {
                conn_close(w, c);
                return -1;
            }
            set_epollout(w, c, 1);
            return 0;
        }
        conn_close(w, c);
        return -1;
    }
    c->out.len = c->out_off = 0;
    set_epollout(w, c, 0);
    if (c->close_after && c->kind == S_NONE) {
        conn_close(w, c);
        return -1;
    }
    return 0;
}

static void respond(conn *c, int status, const char *reason, const char *ctype, const buf *body) {
    buf_printf(&c->out,
               "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s\r\n", status,
               reason, ctype, body->len, c->close_after ? "Connection: close\r\n" : "");
    buf_add(&c->out, body->p, body->len);
}

static const buf *stream_piece(int kind, int i) {
    switch (kind) {
    case S_GEMINI_SSE: return &gem_sse[i];
    case S_GEMINI_ARRAY: return &gem_arr[i];
    default: return &oai_sse[i];
    }
}

/* Append every event that is due; schedule the next one. */
static void stream_advance(worker *w, conn *c, uint64_t now) {
    while (c->kind != S_NONE) {
        if (c->delay_us > 0 && c->ev_idx > 0) {
            uint64_t due = c->t0_ns + (uint64_t)c->ev_idx * (uint64_t)c->delay_us * 1000ull;
            if (due > now) {
                c->due_ns = due;
                heap_push(w, c);
                return;
            }
        }
        const buf *p = stream_piece(c->kind, c->ev_idx);
        buf_add(&c->out, p->p, p->len);
        if (++c->ev_idx >= opt_events) c->kind = S_NONE;
    }
}

static void start_stream(worker *w, conn *c, int kind, long delay_us) {
    const char *ctype = kind == S_GEMINI_ARRAY ? "application/json; charset=UTF-8"
                                                : "text/event-stream";
    buf_printf(&c->out,
               "HTTP/1.1 200 OK\r\nContent-Type: %s\r\nCache-Control: no-cache\r\n"
               "Transfer-Encoding: chunked\r\n%s\r\n",
               ctype, c->close_after ? "Connection: close\r\n" : "");
    c->kind = kind;
    c->ev_idx = 0;
    c->delay_us = delay_us;
    c->t0_ns = now_ns();
    stream_advance(w, c, c->t0_ns);
}

static long parse_delay_from_model(const char *m, size_t n) {
    /* model ends with -d<digits> */
    size_t i = n;
    while (i > 0 && m[i - 1] >= '0' && m[i - 1] <= '9') i--;
    if (i == n || i < 2 || m[i - 1] != 'd' || m[i - 2] != '-') return -1;
    return strtol(m + i, NULL, 10);
}

static long query_delay(const char *q, size_t qn) {
    const char *k = "delay_us=";
    size_t kl = strlen(k);
    for (size_t i = 0; i + kl <= qn; i++) {
        if ((i == 0 || q[i - 1] == '&' || q[i - 1] == '?') && memcmp(q + i, k, kl) == 0)
            return strtol(q + i + kl, NULL, 10);
    }
    return -1;
}

static int query_has(const char *q, size_t qn, const char *kv) {
    size_t kl = strlen(kv);
    for (size_t i = 0; i + kl <= qn; i++) {
        if ((i == 0 || q[i - 1] == '&' || q[i - 1] == '?') && memcmp(q + i, kv, kl) == 0 &&
            (i + kl == qn || q[i + kl] == '&'))
            return 1;
    }
    return 0;
}

static const char *memfind(const char *h, size_t hn, const char *n) {
    size_t nn = strlen(n);
    if (nn > hn) return NULL;
    return memmem(h, hn, n, nn);
}

/* "stream": true anywhere at top level is good enough for a mock. */
static int body_stream_true(const char *b, size_t n) {
    const char *p = memfind(b, n, "\"stream\"");
    if (!p) return 0;
    p += 8;
    const char *end = b + n;
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n' || *p == ':')) p++;
    return (size_t)(end - p) >= 4 && memcmp(p, "true", 4) == 0;
}

static long body_model_delay(const char *b, size_t n) {
    const char *p = memfind(b, n, "\"model\"");
    if (!p) return -1;
    const char *end = b + n;
    p += 7;
    while (p < end && *p != '"') {
        if (*p != ' ' && *p != ':' && *p != '\t' && *p != '\r' && *p != '\n') return -1;
        p++;
    }
    if (p >= end) return -1;
    const char *s = ++p;
    while (p < end && *p != '"') p++;
    return parse_delay_from_model(s, (size_t)(p - s));
}

static void dispatch(worker *w, conn *c, const char *method, size_t mlen, const char *target,
                     size_t tlen, const char *body, size_t blen) {
    const char *q = memchr(target, '?', tlen);
    size_t plen = q ? (size_t)(q - target) : tlen;
    size_t qn = q ? tlen - plen - 1 : 0;
    const char *qs = q ? q + 1 : "";
    const char *path = target;
    if (plen >= 7 && memcmp(path, "/gemini", 7) == 0) {
        path += 7;
        plen -= 7;
    }
    int is_post = mlen == 4 && memcmp(method, "POST", 4) == 0;
    int is_get = mlen == 3 && memcmp(method, "GET", 3) == 0;
    long qdelay = query_delay(qs, qn);

    const char *models = NULL;
    if (plen > 15 && memcmp(path, "/v1beta/models/", 15) == 0) models = path + 15;
    else if (plen > 11 && memcmp(path, "/v1/models/", 11) == 0) models = path + 11;

    if (is_post && models) {
        size_t rest = plen - (size_t)(models - path);
        const char *colon = NULL;
        for (size_t i = rest; i > 0; i--)
            if (models[i - 1] == ':') {
                colon = models + i - 1;
                break;
            }
        if (colon) {
            const char *verb = colon + 1;
            size_t vlen = rest - (size_t)(verb - models);
            long mdelay = parse_delay_from_model(models, (size_t)(colon - models));
            long delay = qdelay >= 0 ? qdelay : mdelay >= 0 ? mdelay : opt_delay_us;
            if (vlen == 15 && memcmp(verb, "generateContent", 15) == 0) {
                respond(c, 200, "OK", "application/json; charset=UTF-8", &gem_json);
                return;
            }
            if (vlen == 21 && memcmp(verb, "streamGenerateContent", 21) == 0) {
                start_stream(w, c, query_has(qs, qn, "alt=sse") ? S_GEMINI_SSE : S_GEMINI_ARRAY,
                             delay);
                return;
            }
            if (vlen == 11 && memcmp(verb, "countTokens", 11) == 0) {
                respond(c, 200, "OK", "application/json; charset=UTF-8", &gem_count);
                return;
            }
        }
    }
    if (is_post && plen == 20 && memcmp(path, "/v1/chat/completions", 20) == 0) {
        if (body_stream_true(body, blen)) {
            long mdelay = body_model_delay(body, blen);
            long delay = qdelay >= 0 ? qdelay : mdelay >= 0 ? mdelay : opt_delay_us;
            start_stream(w, c, S_OPENAI_SSE, delay);
        } else {
            respond(c, 200, "OK", "application/json", &oai_json);
        }
        return;
    }
    if (is_get && ((plen == 14 && memcmp(path, "/v1beta/models", 14) == 0) ||
                   (plen == 10 && memcmp(path, "/v1/models", 10) == 0))) {
        respond(c, 200, "OK", "application/json; charset=UTF-8", &models_json);
        return;
    }
    if (is_get && plen == 7 && memcmp(path, "/health", 7) == 0) {
        static const buf ok = {.p = "{\"status\":\"ok\"}", .len = 15};
        respond(c, 200, "OK", "application/json", &ok);
        return;
    }
    respond(c, 404, "Not Found", "application/json; charset=UTF-8", &notfound_json);
}

/* Decode a chunked body starting at p (n bytes available) into out. Returns the number of
 * bytes consumed, 0 if incomplete, -1 on error. */
static long dechunk(const char *p, size_t n, buf *out) {
    size_t i = 0;
    for (;;) {
        const char *eol = memfind(p + i, n - i, "\r\n");
        if (!eol) return 0;
        char *endp;
        unsigned long sz = strtoul(p + i, &endp, 16);
        if (endp == p + i) return -1;
        size_t line_end = (size_t)(eol - p) + 2;
        if (sz == 0) {
            /* skip trailers until an empty line */
            size_t j = line_end;
            for (;;) {
                const char *e2 = memfind(p + j, n - j, "\r\n");
                if (!e2) return 0;
                if (e2 == p + j) return (long)(j + 2);
                j = (size_t)(e2 - p) + 2;
            }
        }
        if (sz > MAX_BODY_BYTES) return -1;
        if (n - line_end < sz + 2) return 0;
        buf_add(out, p + line_end, sz);
        i = line_end + sz + 2;
    }
}

/* Parse and answer as many complete requests as the input holds. -1 when closed. */
static int process_input(worker *w, conn *c) {
    while (c->kind == S_NONE && !c->close_after && c->in.len > 0) {
        const char *hend = memfind(c->in.p, c->in.len, "\r\n\r\n");
        if (!hend) {
            if (c->in.len > MAX_HEADER_BYTES) {
                conn_close(w, c);
                return -1;
            }
            break;
        }
        size_t hlen = (size_t)(hend - c->in.p) + 4;
        const char *p = c->in.p, *end = c->in.p + hlen - 2;
        const char *eol = memfind(p, (size_t)(end - p), "\r\n");
        const char *sp1 = memchr(p, ' ', (size_t)(eol - p));
        const char *sp2 = sp1 ? memchr(sp1 + 1, ' ', (size_t)(eol - sp1 - 1)) : NULL;
        if (!sp1 || !sp2) {
            conn_close(w, c);
            return -1;
        }
        int http10 = (size_t)(eol - sp2 - 1) == 8 && memcmp(sp2 + 1, "HTTP/1.0", 8) == 0;
        int keep = !http10;
        long clen = 0;
        int chunked = 0;
        for (const char *l = eol + 2; l < end;) {
            const char *le = memfind(l, (size_t)(end - l), "\r\n");
            if (!le) le = end;
            const char *colon = memchr(l, ':', (size_t)(le - l));
            if (colon) {
                size_t kl = (size_t)(colon - l);
                const char *v = colon + 1;
                while (v < le && (*v == ' ' || *v == '\t')) v++;
                size_t vl = (size_t)(le - v);
                if (kl == 14 && strncasecmp(l, "content-length", 14) == 0) {
                    clen = strtol(v, NULL, 10);
                } else if (kl == 17 && strncasecmp(l, "transfer-encoding", 17) == 0) {
                    chunked = vl >= 7 && strncasecmp(v + vl - 7, "chunked", 7) == 0;
                } else if (kl == 10 && strncasecmp(l, "connection", 10) == 0) {
                    if (vl >= 5 && strncasecmp(v, "close", 5) == 0) keep = 0;
                    if (vl >= 10 && strncasecmp(v, "keep-alive", 10) == 0) keep = 1;
                }
            }
            l = le + 2;
        }
        if (clen < 0 || clen > MAX_BODY_BYTES) {
            conn_close(w, c);
            return -1;
        }
        buf body = {0};
        const char *bp;
        size_t blen, total;
        if (chunked) {
            long used = dechunk(c->in.p + hlen, c->in.len - hlen, &body);
            if (used < 0) {
                free(body.p);
                conn_close(w, c);
                return -1;
            }
            if (used == 0) {
                free(body.p);
                break;
            }
            bp = body.p ? body.p : "";
            blen = body.len;
            total = hlen + (size_t)used;
        } else {
            if (c->in.len - hlen < (size_t)clen) break;
            bp = c->in.p + hlen;
            blen = (size_t)clen;
            total = hlen + (size_t)clen;
        }
        c->close_after = !keep;
        dispatch(w, c, p, (size_t)(sp1 - p), sp1 + 1, (size_t)(sp2 - sp1 - 1), bp, blen);
        free(body.p);
        memmove(c->in.p, c->in.p + total, c->in.len - total);
        c->in.len -= total;
    }
    return conn_flush(w, c);
}

static void on_readable(worker *w, conn *c) {
    for (;;) {
        buf_reserve(&c->in, 16384);
        size_t room = c->in.cap - c->in.len;
        ssize_t n = read(c->fd, c->in.p + c->in.len, room);
        if (n > 0) {
            c->in.len += (size_t)n;
            if (c->in.len > MAX_BODY_BYTES + MAX_HEADER_BYTES) {
                conn_close(w, c);
                return;
            }
            if ((size_t)n < room) break; /* short read: the socket is drained */
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
        conn_close(w, c); /* EOF or error */
        return;
    }
    process_input(w, c);
}

static void on_accept(worker *w) {
    for (;;) {
        int fd = accept4(w->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            return; /* EAGAIN or resource exhaustion: try again on the next event */
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        conn *c = calloc(1, sizeof *c);
        if (!c) die("calloc");
        c->fd = fd;
        c->heap_idx = -1;
        struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = c};
        if (epoll_ctl(w->ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
            close(fd);
            free(c);
        }
    }
}

static void on_timer(worker *w) {
    uint64_t expirations;
    while (read(w->tfd, &expirations, sizeof expirations) > 0) {
    }
    w->armed_ns = 0; /* a fired one-shot timer is disarmed */
    uint64_t now = now_ns();
    while (w->heap_len && w->heap[0]->due_ns <= now) {
        conn *c = w->heap[0];
        heap_remove(w, c);
        stream_advance(w, c, now);
        if (conn_flush(w, c) < 0) continue;
        if (c->kind == S_NONE && c->in.len) process_input(w, c);
    }
    rearm(w);
}

static int make_listener(void) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) die("socket");
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)opt_port)};
    if (inet_pton(AF_INET, opt_host, &a.sin_addr) != 1) {
        fprintf(stderr, "mock: bad host %s\n", opt_host);
        exit(2);
    }
    if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0) die("bind");
    if (listen(fd, 4096) < 0) die("listen");
    return fd;
}

static void *worker_main(void *arg) {
    worker *w = arg;
    prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
    struct epoll_event evs[512];
    for (;;) {
        int n = epoll_wait(w->ep, evs, 512, -1);
        if (n < 0) {
            if (errno == EINTR) continue;
            die("epoll_wait");
        }
        /* Timers first: a due event is sent before new work is read. */
        for (int i = 0; i < n; i++)
            if (evs[i].data.ptr == &TIMER_TAG) on_timer(w);
        for (int i = 0; i < n; i++) {
            void *tag = evs[i].data.ptr;
            if (tag == &TIMER_TAG) continue;
            if (tag == &LISTEN_TAG) {
                on_accept(w);
                continue;
            }
            conn *c = tag;
            uint32_t e = evs[i].events;
            if (c->fd < 0) continue; /* closed earlier in this batch; freed below */
            if (e & (EPOLLERR | EPOLLHUP)) {
                conn_close(w, c);
                continue;
            }
            if (e & EPOLLOUT) {
                if (conn_flush(w, c) < 0) continue;
                if (c->kind == S_NONE && c->in.len && process_input(w, c) < 0) continue;
            }
            if (e & (EPOLLIN | EPOLLRDHUP)) on_readable(w, c);
        }
        rearm(w);
        free_dead(w);
    }
    return NULL;
}

static void usage(void) {
    fprintf(stderr,
            "usage: mock [--host 127.0.0.1] [--port 18080] [--threads 1] [--delay-us 0] "
            "[--events 64]\n");
    exit(2);
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (i + 1 >= argc) usage();
        const char *v = argv[++i];
        if (!strcmp(a, "--host")) opt_host = v;
        else if (!strcmp(a, "--port")) opt_port = atoi(v);
        else if (!strcmp(a, "--threads")) opt_threads = atoi(v);
        else if (!strcmp(a, "--delay-us")) opt_delay_us = atol(v);
        else if (!strcmp(a, "--events")) opt_events = atoi(v);
        else usage();
    }
    if (opt_threads < 1 || opt_threads > 64 || opt_events < 1 ||
        opt_events > MAX_EVENTS_PER_STREAM || opt_port <= 0 || opt_port > 65535 ||
        opt_delay_us < 0)
        usage();
    signal(SIGPIPE, SIG_IGN);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    build_fixed();

    worker *ws = calloc((size_t)opt_threads, sizeof *ws);
    for (int i = 0; i < opt_threads; i++) {
        worker *w = &ws[i];
        w->id = i;
        w->lfd = make_listener();
        w->ep = epoll_create1(EPOLL_CLOEXEC);
        if (w->ep < 0) die("epoll_create1");
        w->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
        if (w->tfd < 0) die("timerfd_create");
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &LISTEN_TAG};
        epoll_ctl(w->ep, EPOLL_CTL_ADD, w->lfd, &ev);
        struct epoll_event tev = {.events = EPOLLIN, .data.ptr = &TIMER_TAG};
        epoll_ctl(w->ep, EPOLL_CTL_ADD, w->tfd, &tev);
    }
    printf("mock listening on %s:%d threads=%d delay_us=%ld events=%d\n", opt_host, opt_port,
           opt_threads, opt_delay_us, opt_events);
    fflush(stdout);
    for (int i = 1; i < opt_threads; i++)
        if (pthread_create(&ws[i].th, NULL, worker_main, &ws[i]) != 0) die("pthread_create");
    worker_main(&ws[0]);
    return 0;
}
