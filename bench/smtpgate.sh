# smtpgate benchmarks (issue 4), sourced by bench/run.sh after lib.sh.
#
#   policy   decisions/s on policy_listen, 16 persistent connections, one
#            request at a time each, grants for half the client addresses;
#            next to redis-benchmark -c 16 -t get (the Redis round trip
#            every decision needs) and nullpolicy (the round trip alone)
#   proxy    smtp-source (20 sessions, 2 KB messages) through smtpgate
#            into smtp-sink, next to smtp-source straight into smtp-sink

POLICY_ADDRS=256      # client addresses 10.1.0.1..; even ones hold a grant

# start_smtpgate: smtpgate on free ports (SMTP and policy) in front of the
# smtp-sink on $SINK_PORT; sets GATE_PORT, POLICY_PORT, GATE_PID.
start_smtpgate() {
    GATE_PORT=$(free_port)
    POLICY_PORT=$(free_port)
    cat >"$WORK/smtpgate.conf" <<EOF
[redis]
address = 127.0.0.1:$REDIS_PORT
prefix = abbench:

[grant]
ttl = 1800

[smtpgate]
listen = 127.0.0.1:$GATE_PORT
policy_listen = 127.0.0.1:$POLICY_PORT
downstream = 127.0.0.1:$SINK_PORT
hostname = gate.example.org
local_domains = example.org
# The proxy's recipients are local (inbound mail), so no grant is needed
# and loopback is not trusted: every RCPT goes through the decision.
trusted_networks = 192.0.2.0/24
node = bench
EOF
    bg "$WORK/smtpgate.log" "$AB_OUT/smtpgate/smtpgate" -c "$WORK/smtpgate.conf"
    GATE_PID=$BG_PID
    wait_listen "$POLICY_PORT" || die "smtpgate did not start: $(tail -5 "$WORK/smtpgate.log")"
    wait_listen "$GATE_PORT" || die "smtpgate did not start: $(tail -5 "$WORK/smtpgate.log")"
    i=0
    until grep -q "event=redis_up" "$WORK/smtpgate.log"; do
        i=$((i + 1))
        [ "$i" -lt 100 ] || die "smtpgate did not reach Redis: $(tail -5 "$WORK/smtpgate.log")"
        sleep 0.05
    done
}

# smtp-sink as the MTA behind the gate; -c keeps a running count of
# sessions and messages on its output, the proof the mail arrived.
start_sink() {
    SINK_PORT=$(free_port)
    bg "$WORK/sink.out" smtp-sink -u nobody -c "127.0.0.1:$SINK_PORT" 1024
    SINK_PID=$BG_PID
    wait_listen "$SINK_PORT" || die "smtp-sink did not start"
}

sink_messages() {
    tr '\r' '\n' <"$WORK/sink.out" | sed -n 's/.*mesg=\([0-9]*\).*/\1/p' | tail -1
}

# ---- policy decisions --------------------------------------------------------------

# The grants, written by the admin command as an operator would.
write_policy_grants() {
    rcli FLUSHALL >/dev/null
    i=0
    while [ "$i" -lt "$POLICY_ADDRS" ]; do
        "$AB_OUT/authbridge/authbridge" -c "$WORK/smtpgate.conf" grant \
            "10.1.$((i / 256)).$((i % 256 + 1))" "user$i" >/dev/null ||
            die "authbridge grant failed"
        i=$((i + 2))
    done
}

redis_get_rate() {
    redis-benchmark -p "$REDIS_PORT" -c 16 -t get -n "$1" --csv 2>/dev/null |
        awk -F'"' '$2 == "GET" { print $4 }'
}

bench_policy() {
    say ""
    say "== smtpgate policy service: 16 persistent connections, one request at a time each"
    say "   (Postfix 3.7 RCPT requests), $POLICY_ADDRS client addresses, grants for half;"
    say "   next to redis-benchmark -c 16 -t get and nullpolicy; $RUNS runs of $SECS s"
    start_sink
    start_smtpgate
    write_policy_grants
    bg "$WORK/nullpolicy.log" "$BENCH/nullpolicy"
    NULLPOLICY_PID=$BG_PID
    i=0
    until NULLPOLICY_PORT=$(sed -n 's/^port=//p' "$WORK/nullpolicy.log") &&
          [ -n "$NULLPOLICY_PORT" ]; do
        i=$((i + 1))
        [ "$i" -lt 100 ] || die "nullpolicy did not start"
        sleep 0.05
    done
    # redis-benchmark takes a request count: aim at $SECS seconds.
    gets=$(( $(redis_get_rate 50000 | cut -d. -f1) * SECS ))
    r=1
    while [ "$r" -le "$RUNS" ]; do
        redis=$(redis_get_rate "$gets")
        record redisget "$redis"
        out=$("$BENCH/policyload" -p "$NULLPOLICY_PORT" -c 16 -t "$SECS" \
            -a "$POLICY_ADDRS" 2>>"$WORK/policyload.err" || true)
        record nullpolicy "$(kv rate "$out")"
        null=$(kv rate "$out")
        g0=$(cpu_ticks "$GATE_PID")
        r0=$(cpu_ticks "$REDIS_PID")
        out=$("$BENCH/policyload" -p "$POLICY_PORT" -c 16 -t "$SECS" \
            -a "$POLICY_ADDRS" -g 2>>"$WORK/policyload.err" || true)
        record policy.cpu "$(per_event_us "$(( $(cpu_ticks "$GATE_PID") - g0 ))" "$(kv requests "$out")")"
        record policy.rcpu "$(per_event_us "$(( $(cpu_ticks "$REDIS_PID") - r0 ))" "$(kv requests "$out")")"
        record policy "$(kv rate "$out")"
        record policy.ratio "$(ratio "$(kv rate "$out")" "$redis" 3)"
        record policy.err "$(kv errors "$out")"
        say "   run $r/$RUNS: redis GET $redis/s | nullpolicy $null/s | smtpgate $(kv rate "$out")/s (OK $(kv ok "$out"), DUNNO $(kv dunno "$out"), errors $(kv errors "$out"), p99 $(kv p99_ms "$out") ms)"
        r=$((r + 1))
    done
    stop_pid "$NULLPOLICY_PID"
    m=$(series_median policy)
    g=$(series_median redisget)
    say ""
    say "   median: smtpgate $m decisions/s, redis GET $g/s, nullpolicy $(series_median nullpolicy)/s"
    q=$(series_median policy.ratio)
    say "   ratio smtpgate / redis GET, median of the per-run ratios: $q  (target >= 0.8: $(verdict "$q" ">=" 0.8))"
    say "   CPU per decision: smtpgate $(series_median policy.cpu) us, redis $(series_median policy.rcpu) us"
    say "   errors (wrong or missing answers): $(awk '{ s += $1 } END { print s + 0 }' "$WORK/fig.policy.err")"
    [ -s "$WORK/policyload.err" ] && head -5 "$WORK/policyload.err" | sed 's/^/     /'
    return 0
}

# ---- SMTP proxy ---------------------------------------------------------------------

# source PORT COUNT: seconds smtp-source takes for COUNT messages.
source_time() {
    t0=$(date +%s.%N)
    smtp-source -s 20 -l 2048 -m "$2" -f sender@example.net \
        -t rcpt@example.org "127.0.0.1:$1" >>"$WORK/smtp-source.err" 2>&1 ||
        { echo fail; return; }
    t1=$(date +%s.%N)
    echo "$t0 $t1" | awk '{ printf "%.3f\n", $2 - $1 }'
}

bench_proxy() {
    say ""
    say "== smtpgate SMTP proxy: smtp-source -s 20 -l 2048 through smtpgate into smtp-sink,"
    say "   next to smtp-source straight into smtp-sink; $RUNS runs of about $SECS s"
    [ -n "${SINK_PID:-}" ] || { start_sink; start_smtpgate; }
    # smtp-source takes a message count: aim at $SECS seconds through the
    # gate, guessed from the faster of two short direct runs (the first
    # one warms up) and the gate's usual 0.7 of that.
    t1=$(source_time "$SINK_PORT" 2000)
    t2=$(source_time "$SINK_PORT" 2000)
    if [ "$t1" = fail ] || [ "$t2" = fail ]; then
        die "smtp-source failed: $(tail -3 "$WORK/smtp-source.err")"
    fi
    n=$(awk -v a="$t1" -v b="$t2" -v s="$SECS" 'BEGIN { t = a < b ? a : b
        n = int(2000 / t * s * 0.7); print n < 1000 ? 1000 : n }')
    r=1
    while [ "$r" -le "$RUNS" ]; do
        k0=$(cpu_ticks "$SINK_PID")
        td=$(source_time "$SINK_PORT" "$n")
        record direct.sink "$(per_event_us "$(( $(cpu_ticks "$SINK_PID") - k0 ))" "$n")"
        before=$(sink_messages)
        k0=$(cpu_ticks "$SINK_PID")
        g0=$(cpu_ticks "$GATE_PID")
        tg=$(source_time "$GATE_PORT" "$n")
        record gate.cpu "$(per_event_us "$(( $(cpu_ticks "$GATE_PID") - g0 ))" "$n")"
        record gate.sink "$(per_event_us "$(( $(cpu_ticks "$SINK_PID") - k0 ))" "$n")"
        sleep 0.2
        got=$(( $(sink_messages) - before ))
        rd=$(ratio "$n" "$td" 1)
        rg=$(ratio "$n" "$tg" 1)
        record direct "$rd"
        record gate "$rg"
        record gate.ratio "$(ratio "$rg" "$rd" 3)"
        if [ "$got" = "$n" ]; then record gate.ok 1; else record gate.ok 0; fi
        say "   run $r/$RUNS, $n messages: direct $rd msg/s | through smtpgate $rg msg/s, $got of $n reached smtp-sink"
        r=$((r + 1))
    done
    d=$(series_median direct)
    g=$(series_median gate)
    say ""
    q=$(series_median gate.ratio)
    say "   median: through smtpgate $g msg/s, direct $d msg/s"
    say "   ratio gate / direct, median of the per-run ratios: $q  (target >= 0.8: $(verdict "$q" ">=" 0.8))"
    say "   CPU per message: smtpgate $(series_median gate.cpu) us; smtp-sink $(series_median gate.sink) us through the gate, $(series_median direct.sink) us direct"
    say "   runs where every message reached smtp-sink: $(awk '{ s += $1 } END { print s + 0 }' "$WORK/fig.gate.ok") of $RUNS"
    [ -s "$WORK/smtp-source.err" ] && head -5 "$WORK/smtp-source.err" | sed 's/^/     /'
    return 0
}
