# The MTA wirings (issue 10), sourced by bench/run.sh after lib.sh.
#
#   checkrelay   the cost per connection of `authbridge checkrelay` under
#                tcpserver: connections one at a time, each timed from
#                connect() to the first line of nullsmtpd (qmail-smtpd's
#                stand-in), through `checkrelay nullsmtpd` (one Redis
#                lookup, grants for half the client addresses) next to
#                nullsmtpd run straight by tcpserver, in the same run
#   mta          each MTA wiring's real answers (no grant, grant, Redis
#                down, local mail) and the latency a relay decision adds
#                (bench/mta.py, with the end-to-end tests' private MTAs)

CHECKRELAY_ADDRS=16      # client addresses 127.0.7.1..; even ones hold a grant

# start_tcpserver NAME PROGRAM...: tcpserver on a free port running
# PROGRAM; sets TCPSERVER_PID, TCPSERVER_PORT.
start_tcpserver() {
    name=$1
    shift
    port=$(free_port)
    bg "$WORK/tcpserver-$name.log" tcpserver -R -H -l0 -c 100 127.0.0.1 "$port" "$@"
    wait_listen "$port" || die "tcpserver did not start: $(tail -3 "$WORK/tcpserver-$name.log")"
    TCPSERVER_PID=$BG_PID TCPSERVER_PORT=$port
}

bench_checkrelay() {
    say ""
    say "== authbridge checkrelay under tcpserver: connections one at a time, connect to"
    say "   first line; checkrelay + nullsmtpd next to nullsmtpd alone; $RUNS runs of $SECS s"
    command -v tcpserver >/dev/null || die "tcpserver is missing (make deps: ucspi-tcp)"
    cat >"$WORK/checkrelay.conf" <<EOC
[redis]
address = 127.0.0.1:$REDIS_PORT
prefix = abbench:
EOC
    rcli FLUSHALL >/dev/null
    i=0
    while [ "$i" -lt "$CHECKRELAY_ADDRS" ]; do
        "$AB_OUT/authbridge/authbridge" -c "$WORK/checkrelay.conf" grant \
            "127.0.7.$((i + 1))" "user$i" >/dev/null || die "authbridge grant failed"
        i=$((i + 2))
    done
    start_tcpserver direct "$BENCH/nullsmtpd"
    DIRECT_PID=$TCPSERVER_PID DIRECT_PORT=$TCPSERVER_PORT
    start_tcpserver checkrelay "$AB_OUT/authbridge/authbridge" -c "$WORK/checkrelay.conf" \
        checkrelay "$BENCH/nullsmtpd"
    CHECK_PID=$TCPSERVER_PID CHECK_PORT=$TCPSERVER_PORT
    r=1
    while [ "$r" -le "$RUNS" ]; do
        d=$("$BENCH/connload" -p "$DIRECT_PORT" -t "$SECS" -a "$CHECKRELAY_ADDRS" -n \
            2>>"$WORK/connload.err" || true)
        c=$("$BENCH/connload" -p "$CHECK_PORT" -t "$SECS" -a "$CHECKRELAY_ADDRS" -g \
            2>>"$WORK/connload.err" || true)
        record cr.direct "$(kv mean_ms "$d")"
        record cr.check "$(kv mean_ms "$c")"
        added=$(awk -v a="$(kv mean_ms "$c")" -v b="$(kv mean_ms "$d")" \
            'BEGIN { printf "%.3f\n", a - b }')
        record cr.added "$added"
        record cr.err "$(( $(kv errors "$d") + $(kv errors "$c") ))"
        say "   run $r/$RUNS: nullsmtpd alone $(kv mean_ms "$d") ms (p99 $(kv p99_ms "$d")) | checkrelay + nullsmtpd $(kv mean_ms "$c") ms (p99 $(kv p99_ms "$c")) | added $added ms"
        r=$((r + 1))
    done
    stop_pid "$CHECK_PID"
    stop_pid "$DIRECT_PID"
    a=$(series_median cr.added)
    say ""
    say "   median per connection: nullsmtpd alone $(series_median cr.direct) ms, through checkrelay $(series_median cr.check) ms"
    say "   added by checkrelay, median of the per-run differences: $a ms  (target <= 3 ms: $(verdict "$a" "<=" 3))"
    say "   errors (wrong or missing first lines): $(awk '{ s += $1 } END { print s + 0 }' "$WORK/fig.cr.err")"
    [ -s "$WORK/connload.err" ] && head -5 "$WORK/connload.err" | sed 's/^/     /'
    return 0
}

# ---- the MTA wirings -----------------------------------------------------------

bench_mta() {
    say ""
    say "== MTA wirings (bench/mta.py): the real answers, and the latency one relay"
    say "   decision adds: RCPT TO a remote domain from a granted client next to the"
    say "   same RCPT from a trusted one (no lookup), same MTA, interleaved"
    AB_OUT=$AB_OUT /usr/bin/python3 "$REPO/bench/mta.py" "$WORK/mta" ||
        say "   bench/mta.py failed (see above)"
    return 0
}
