/*
 * grantload: a grant storm straight into Redis, no POP3 in front (issue
 * 14). N grant writes are kept in flight on one event loop and one Redis
 * connection, as one pop3d loop keeps its logins' grants, each for a new
 * client address (base+0, base+1, ...), for -t seconds; then the writes
 * still in flight are waited for.
 *
 *   grantload -p redis-port [-m script|multi] [-c in-flight] [-t seconds]
 *             [-b base-address]
 *
 *   script  what the daemons send: grant_store_put(), one EVALSHA of
 *           grant_put_script (the first one loads it: NOSCRIPT, EVAL)
 *   multi   what they sent before: the transaction MULTI, HSETNX, HSET,
 *           HINCRBY, EXPIRE, XADD, EXEC, seven commands in one round trip.
 *           Built by grant_cmds_put(), the admin command's copy of the
 *           schema, and sent with rconn_transaction(), the old put's own
 *           path: the keys, fields and client code are the script's, only
 *           the commands Redis runs differ.
 *
 * One grant is written before the clock starts (connection, script
 * loaded). Prints one line of key=value figures: grants answered in the
 * run and their rate, failures, latency, the generator's CPU time, and
 * written_total (the warm-up included) for the caller to check against
 * the keys Redis holds.
 */
#include "bench/bench.h"

#include "authbridge/conf.h"
#include "authbridge/grant.h"
#include "authbridge/log.h"
#include "authbridge/redis.h"

#include <event2/event.h>
#include <stdbool.h>
#include <sys/resource.h>

#define TIMEOUT_MS   2000     /* redis.timeout_ms: a busy 2-core box */
#define UP_WAIT_MS   3000     /* Redis must answer within this at start */
#define INFLIGHT_MAX 65536

enum mode { MODE_SCRIPT, MODE_MULTI };

struct gopts {
    unsigned port, inflight, seconds;
    struct in_addr base;
    enum mode mode;
};

struct gload {
    struct gopts o;
    struct event_base *base;
    struct rconn *rc;
    struct grant_store *gs;
    struct grant_settings settings;
    struct event *deadline, *up_timer;
    unsigned next;                /* the next address's index */
    unsigned in_flight;
    bool warming, running, stopping;
    uint64_t t_start, t_stop, t_last;
    uint64_t answered, failed, written_total;
    struct bench_lat lat;
};

/* One write in flight: when it left. */
struct slot {
    struct gload *gl;
    uint64_t t_sent;
};

static void issue(struct slot *s);

static void finished(struct slot *s, bool ok)
{
    struct gload *gl = s->gl;

    gl->in_flight--;
    gl->written_total += ok;
    if (gl->warming) {
        if (!ok) {
            fprintf(stderr, "grantload: the warm-up grant failed\n");
            exit(1);
        }
        free(s);
        event_base_loopbreak(gl->base);
        return;
    }
    gl->answered++;
    gl->failed += !ok;
    gl->t_last = bench_now_us();
    bench_lat_add(&gl->lat, gl->t_last - s->t_sent);
    if (!gl->stopping) {
        issue(s);
        return;
    }
    free(s);
    if (gl->in_flight == 0)
        event_base_loopbreak(gl->base);
}

static void script_done(enum grant_status st, void *arg)
{
    finished(arg, st == GRANT_OK);
}

/* EXEC's array: the five commands' answers, none an error. */
static void multi_done(redisReply *r, void *arg)
{
    bool ok = r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 5;

    for (size_t i = 0; ok && i < r->elements; i++)
        ok = r->element[i]->type != REDIS_REPLY_ERROR;
    finished(arg, ok);
}

static void issue(struct slot *s)
{
    struct gload *gl = s->gl;
    struct in_addr a = bench_source_addr(gl->o.base, gl->next);
    struct grant_info g = { .user = NULL, .method = "USER", .tls = false };
    char user[16];

    snprintf(user, sizeof(user), "u%u", gl->next++);
    g.user = user;
    g.addr.family = AF_INET;
    memcpy(g.addr.b, &a.s_addr, 4);
    gl->in_flight++;
    s->t_sent = bench_now_us();
    if (gl->o.mode == MODE_SCRIPT) {
        grant_store_put(gl->gs, &g, script_done, s);
    } else {
        struct grant_cmds c;
        grant_cmds_put(&c, &gl->settings, &g, (long long)time(NULL),
                       gl->settings.ttl);
        rconn_transaction(gl->rc, multi_done, s, c.cmd, c.n);
    }
}

static struct slot *slot_new(struct gload *gl)
{
    struct slot *s = ab_calloc(1, sizeof(*s));

    s->gl = gl;
    return s;
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    struct gload *gl = arg;

    (void)fd;
    (void)what;
    gl->stopping = true;
    gl->t_stop = bench_now_us();
}

/* Every 5 ms until the connection is up (rconn_on_up() is the store's):
 * then the warm-up grant. */
static void on_up_poll(evutil_socket_t fd, short what, void *arg)
{
    struct gload *gl = arg;

    (void)fd;
    (void)what;
    if (gl->warming)
        return;
    if (rconn_is_up(gl->rc)) {
        gl->warming = true;
        issue(slot_new(gl));
        return;
    }
    if (bench_now_us() - gl->t_start > UP_WAIT_MS * 1000ULL) {
        fprintf(stderr, "grantload: Redis did not answer within %d ms\n",
                UP_WAIT_MS);
        exit(1);
    }
}

static void run(struct gload *gl)
{
    struct timeval five_ms = { 0, 5000 };
    struct timeval secs = { gl->o.seconds, 0 };

    /* Connected and one grant written (the script loaded) first. */
    gl->t_start = bench_now_us();
    gl->up_timer = event_new(gl->base, -1, EV_PERSIST, on_up_poll, gl);
    evtimer_add(gl->up_timer, &five_ms);
    event_base_dispatch(gl->base);
    evtimer_del(gl->up_timer);
    gl->warming = false;
    gl->running = true;
    /* The run: every answer sends the next write until the deadline. */
    gl->deadline = evtimer_new(gl->base, on_deadline, gl);
    evtimer_add(gl->deadline, &secs);
    gl->t_start = bench_now_us();
    for (unsigned i = 0; i < gl->o.inflight; i++)
        issue(slot_new(gl));
    event_base_dispatch(gl->base);
}

static double cpu_ms(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000.0 +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1000.0;
}

static void print_results(struct gload *gl, double cpu)
{
    uint64_t end = gl->t_last > gl->t_stop ? gl->t_last : gl->t_stop;
    double secs = (double)(end - gl->t_start) / 1e6;
    uint64_t ok = gl->answered - gl->failed;

    printf("mode=%s inflight=%u seconds=%.3f grants=%llu rate=%.1f "
           "failed=%llu written_total=%llu p50_ms=%.3f p99_ms=%.3f "
           "max_ms=%.3f cpu_ms=%.0f\n",
           gl->o.mode == MODE_SCRIPT ? "script" : "multi", gl->o.inflight,
           secs, (unsigned long long)ok, secs > 0 ? (double)ok / secs : 0.0,
           (unsigned long long)gl->failed,
           (unsigned long long)gl->written_total, bench_lat_ms(&gl->lat, 0.5),
           bench_lat_ms(&gl->lat, 0.99), bench_lat_ms(&gl->lat, 1.0), cpu);
}

static void usage(void)
{
    fprintf(stderr, "usage: grantload -p redis-port [-m script|multi] "
            "[-c in-flight] [-t seconds] [-b base-address]\n");
    exit(2);
}

static void parse_opts(int argc, char **argv, struct gopts *o)
{
    int opt;

    *o = (struct gopts){ .inflight = 128, .seconds = 5, .mode = MODE_SCRIPT };
    o->base.s_addr = htonl(0x0a800001);          /* 10.128.0.1 */
    while ((opt = getopt(argc, argv, "p:m:c:t:b:")) != -1) {
        switch (opt) {
        case 'p':
            o->port = bench_uint_opt("grantload", opt, optarg, 1, 65535);
            break;
        case 'm':
            if (strcmp(optarg, "script") == 0)
                o->mode = MODE_SCRIPT;
            else if (strcmp(optarg, "multi") == 0)
                o->mode = MODE_MULTI;
            else
                usage();
            break;
        case 'c':
            o->inflight = bench_uint_opt("grantload", opt, optarg, 1,
                                         INFLIGHT_MAX);
            break;
        case 't':
            o->seconds = bench_uint_opt("grantload", opt, optarg, 1, 3600);
            break;
        case 'b': o->base = bench_ipv4_opt("grantload", opt, optarg); break;
        default: usage();
        }
    }
    if (o->port == 0 || optind != argc)
        usage();
}

int main(int argc, char **argv)
{
    static struct gload gl;
    struct redis_conf rconf = {
        .password = "", .username = "", .prefix = "abbench:",
        .timeout_ms = TIMEOUT_MS, .master_name = "mymaster",
        .log_maxlen = 100000, .decisions_maxlen = 100000,
    };
    char addr[32], err[256];
    double cpu0;

    parse_opts(argc, argv, &gl.o);
    log_init("grantload", LOG_DEST_STDERR, 0);
    snprintf(addr, sizeof(addr), "127.0.0.1:%u", gl.o.port);
    if (endpoint_parse(addr, false, &rconf.address, err, sizeof(err)) < 0) {
        fprintf(stderr, "grantload: %s\n", err);
        return 2;
    }
    /* What a pop3d writes with the bench's configuration. */
    gl.settings = (struct grant_settings){
        .prefix = "abbench:", .node = "bench", .ttl = 1800,
        .ipv6_prefix = 128, .log_maxlen = 100000, .decisions_maxlen = 100000,
        .replicas = 0, .timeout_ms = TIMEOUT_MS,
    };
    gl.base = event_base_new();
    gl.rc = rconn_new(gl.base, &rconf);
    gl.gs = grant_store_new(gl.rc, &gl.settings);
    cpu0 = cpu_ms();
    run(&gl);
    print_results(&gl, cpu_ms() - cpu0);
    fflush(stdout);
    /* The connection first: freeing it completes what is still pending,
     * and those completions still need the store. Every slot has come
     * back: the loop ends when none is in flight. */
    rconn_free(gl.rc);
    grant_store_free(gl.gs);
    event_free(gl.deadline);
    event_free(gl.up_timer);
    event_base_free(gl.base);
    endpoint_free(&rconf.address);
    free(gl.lat.v);
    return gl.answered > 0 && gl.failed == 0 ? 0 : 1;
}
