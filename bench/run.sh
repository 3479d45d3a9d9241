#!/bin/sh
# make bench: every benchmark of issues 3 (pop3d), 4 (smtpgate), 10
# (checkrelay, the MTA wirings), 13 (the grant cache, the {PLAIN} login)
# and 14 (the grant storm, event loops), each with its baseline measured
# in the same run, medians of several runs.
#
# Everything runs on loopback from a temporary folder, started here and
# stopped at the end whatever happens: a private redis-server, pop3d with
# generated users and Maildirs, the do-nothing responders, smtpgate,
# smtp-sink and tcpserver; for mta, the private MTAs of the end-to-end
# tests (bench/mta.py).
#
# Environment:
#   AB_OUT         folder holding pop3d/pop3d, smtpgate/smtpgate,
#                  authbridge/authbridge and bench/* (default: the repo)
#   BENCH_SECONDS  length of one measured run (default 5)
#   BENCH_RUNS     runs per figure, the median is reported (default 5)
#   BENCH_ONLY     a subset of: login retr idle policy proxy grants loops
#                  hooks checkrelay mta ("loops" adds loops = 1 and 2 to
#                  the login and policy storms, or runs just those when
#                  they are not wanted; skipped while the daemons refuse
#                  the key)
#   BENCH_GRANT_INFLIGHT  grant writes in flight in the grant storm (128)
#   BENCH_LOGINS   logins per run of the "hooks" figures (default 200)
#   BENCH_RETR_CLIENTS  RETR client counts (default "1 4")
#   BENCH_IDLE_CONNS    idle connections to hold (default 10000)
#   BENCH_KEEP=1   keep the temporary folder (logs, configs)
#
# BENCH_SECONDS=2 BENCH_RUNS=3 gives a quick look in about two minutes.
set -eu

REPO=$(cd "$(dirname "$0")/.." && pwd)
AB_OUT=$(cd "${AB_OUT:-$REPO}" && pwd)
BENCH=$AB_OUT/bench
SECS=${BENCH_SECONDS:-5}
RUNS=${BENCH_RUNS:-5}
ONLY=${BENCH_ONLY:-login retr idle policy proxy grants loops hooks checkrelay mta}
RETR_CLIENTS=${BENCH_RETR_CLIENTS:-1 4}
IDLE_CONNS=${BENCH_IDLE_CONNS:-10000}

. "$REPO/bench/lib.sh"
. "$REPO/bench/pop3d.sh"
. "$REPO/bench/smtpgate.sh"
. "$REPO/bench/mta.sh"
. "$REPO/bench/grants.sh"
. "$REPO/bench/loops.sh"

wants() { case " $ONLY " in *" $1 "*) return 0 ;; esac; return 1; }

# timed FUNCTION: run one benchmark and say how long it took.
timed() {
    timed_start=$(date +%s)
    "$1"
    say "   ($1: $(( $(date +%s) - timed_start )) s)"
}

need() {
    for f in "$@"; do
        [ -x "$f" ] || die "$f is not built (make OUT=... all and the bench programs)"
    done
}

WORK=$(mktemp -d "${TMPDIR:-/tmp}/authbridge-bench.XXXXXX")
trap bench_cleanup EXIT
trap 'exit 130' INT TERM HUP

need "$AB_OUT/pop3d/pop3d" "$AB_OUT/authbridge/authbridge" "$BENCH/pop3load" \
    "$BENCH/pop3idle" "$BENCH/nullpop"
command -v redis-server >/dev/null || die "redis-server is missing (make deps)"

say "authbridge benchmarks, $(date '+%Y-%m-%d %H:%M:%S'), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
say "binaries: $AB_OUT; $RUNS runs of ${SECS}s per figure; work folder $WORK"
start_redis

if wants login || wants retr || wants idle || wants loops; then
    setup_pop3d_users
    wants loops && loops_probe
    if wants login || wants retr || [ "$POP3D_LOOPS" = yes ]; then
        start_nullpop nullpop-nodelay -n
        NULLPOP_ND_PID=$BG_PID NULLPOP_ND_PORT=$NULLPOP_PORT
        start_nullpop nullpop
        NULLPOP_PID=$BG_PID
        start_login_pop3ds
        if wants login || [ "$POP3D_LOOPS" = yes ]; then timed bench_login; fi
        wants retr && timed bench_retr
        stop_login_pop3ds
        stop_pid "$NULLPOP_PID"
        stop_pid "$NULLPOP_ND_PID"
    fi
    wants idle && timed bench_idle
fi

if wants policy || wants proxy || [ "$GATE_LOOPS" = yes ]; then
    if [ -x "$AB_OUT/smtpgate/smtpgate" ]; then
        if wants policy || [ "$GATE_LOOPS" = yes ]; then timed bench_policy; fi
        wants proxy && timed bench_proxy
    else
        say ""
        say "== smtpgate: $AB_OUT/smtpgate/smtpgate is not built; its benchmarks are skipped"
    fi
fi

# The login hooks of issue 11 (Dovecot's auth policy and post-login
# script, authbridge postlogin): bench/hooks.py sets up its own Redis,
# smtpgate and Dovecots with the test harness.
bench_hooks() {
    say ""
    say "== login hooks: OK -> grant visible (negative: grant first), cost per login"
    BENCH_RUNS=$RUNS AB_OUT=$AB_OUT /usr/bin/python3 "$REPO/bench/hooks.py"
}
if wants hooks; then
    if [ -x /usr/sbin/dovecot ] && [ -x "$AB_OUT/smtpgate/smtpgate" ]; then
        timed bench_hooks
    else
        say ""
        say "== login hooks: needs dovecot and smtpgate; skipped"
    fi
fi
if wants grants; then
    need "$BENCH/grantload"
    timed bench_grants
fi
wants checkrelay && timed bench_checkrelay
wants mta && timed bench_mta

say ""
say "done, load average now $(cut -d' ' -f1-3 /proc/loadavg)"
