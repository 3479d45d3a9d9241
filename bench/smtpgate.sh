# smtpgate benchmarks (issue 4), sourced by bench/run.sh after lib.sh.
#
#   policy   decisions/s on policy_listen, 16 persistent connections, one
#            request at a time each, grants for half the client addresses;
#            next to redis-benchmark -c 16 -t get (the Redis round trip
#            every decision needs) and nullpolicy (the round trip alone)
#   proxy    smtp-source (20 sessions, 2 KB messages) through smtpgate
#            into smtp-sink, next to smtp-source straight into smtp-sink;
#            and relayed messages through two gates that differ only in
#            header_from_check (issue 15: the check costs under 10%)

POLICY_ADDRS=256      # client addresses 10.1.0.1..; even ones hold a grant

# start_smtpgate [VARIANT]: smtpgate on free ports (SMTP and policy) in
# front of the smtp-sink on $SINK_PORT; sets GATE_PORT, POLICY_PORT,
# GATE_PID. VARIANT "relay" also trusts loopback, so messages to
# rcpt@remote.example are relayed (path 2, logged to the Redis stream);
# "check" is "relay" with header_from_check = yes.
start_smtpgate() {
    variant=${1:-}
    name=smtpgate${variant:+-$variant}
    GATE_PORT=$(free_port)
    POLICY_PORT=$(free_port)
    trusted=192.0.2.0/24
    check=no
    case $variant in
        relay) trusted="$trusted, 127.0.0.1/32" ;;
        check) trusted="$trusted, 127.0.0.1/32"; check=yes ;;
    esac
    cat >"$WORK/$name.conf" <<EOF
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
# and loopback is not trusted: every RCPT goes through the decision
# (the relay and check variants trust it, for mail to other domains).
trusted_networks = $trusted
header_from_check = $check
node = bench
EOF
    bg "$WORK/$name.log" "$AB_OUT/smtpgate/smtpgate" -c "$WORK/$name.conf"
    GATE_PID=$BG_PID
    wait_listen "$POLICY_PORT" || die "smtpgate did not start: $(tail -5 "$WORK/$name.log")"
    wait_listen "$GATE_PORT" || die "smtpgate did not start: $(tail -5 "$WORK/$name.log")"
    i=0
    until grep -q "event=redis_up" "$WORK/$name.log"; do
        i=$((i + 1))
        [ "$i" -lt 100 ] || die "smtpgate did not reach Redis: $(tail -5 "$WORK/$name.log")"
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

# source PORT COUNT [RCPT]: seconds smtp-source takes for COUNT messages
# (From: <sender@example.org>, an address of the gate's local domain).
source_time() {
    t0=$(date +%s.%N)
    smtp-source -s 20 -l 2048 -m "$2" -f sender@example.org \
        -t "${3:-rcpt@example.org}" "127.0.0.1:$1" >>"$WORK/smtp-source.err" 2>&1 ||
        { echo fail; return; }
    t1=$(date +%s.%N)
    echo "$t0 $t1" | awk '{ printf "%.3f\n", $2 - $1 }'
}

# through NAME PORT PID COUNT [RCPT]: one measured run through a gate:
# records NAME (msg/s), NAME.cpu (the gate's us a message) and NAME.ok
# (every message reached smtp-sink); prints the rate.
through() {
    before=$(sink_messages)
    g0=$(cpu_ticks "$3")
    t=$(source_time "$2" "$4" "${5:-}")
    record "$1.cpu" "$(per_event_us "$(( $(cpu_ticks "$3") - g0 ))" "$4")"
    sleep 0.2
    got=$(( $(sink_messages) - before ))
    if [ "$got" = "$4" ]; then record "$1.ok" 1; else record "$1.ok" 0; fi
    rate=$(ratio "$4" "$t" 1)
    record "$1" "$rate"
    echo "$rate"
}

bench_proxy() {
    say ""
    say "== smtpgate SMTP proxy: smtp-source -s 20 -l 2048 through smtpgate into smtp-sink,"
    say "   next to smtp-source straight into smtp-sink; then relayed mail (a trusted"
    say "   client, to rcpt@remote.example) through two gates that differ only in"
    say "   header_from_check (no / yes), back to back; $RUNS runs of about $SECS s"
    [ -n "${SINK_PID:-}" ] || { start_sink; start_smtpgate; }
    main_port=$GATE_PORT main_pid=$GATE_PID main_policy=$POLICY_PORT
    start_smtpgate relay
    relay_port=$GATE_PORT relay_pid=$GATE_PID
    start_smtpgate check
    check_port=$GATE_PORT check_pid=$GATE_PID
    GATE_PORT=$main_port GATE_PID=$main_pid POLICY_PORT=$main_policy
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
        rd=$(ratio "$n" "$td" 1)
        record direct "$rd"
        k0=$(cpu_ticks "$SINK_PID")
        rg=$(through gate "$GATE_PORT" "$GATE_PID" "$n")
        record gate.sink "$(per_event_us "$(( $(cpu_ticks "$SINK_PID") - k0 ))" "$n")"
        record gate.ratio "$(ratio "$rg" "$rd" 3)"
        # Alternate which of the pair goes first, so a drift in the
        # machine's load does not favour one of them.
        if [ $((r % 2)) -eq 1 ]; then
            rr=$(through relay "$relay_port" "$relay_pid" "$n" rcpt@remote.example)
            rc=$(through check "$check_port" "$check_pid" "$n" rcpt@remote.example)
        else
            rc=$(through check "$check_port" "$check_pid" "$n" rcpt@remote.example)
            rr=$(through relay "$relay_port" "$relay_pid" "$n" rcpt@remote.example)
        fi
        record check.ratio "$(ratio "$rc" "$rr" 3)"
        say "   run $r/$RUNS, $n messages: direct $rd msg/s | through smtpgate $rg msg/s | relayed, header_from_check = no $rr msg/s, = yes $rc msg/s"
        r=$((r + 1))
    done
    d=$(series_median direct)
    g=$(series_median gate)
    say ""
    q=$(series_median gate.ratio)
    say "   median: through smtpgate $g msg/s, direct $d msg/s"
    say "   ratio gate / direct, median of the per-run ratios: $q  (target >= 0.8: $(verdict "$q" ">=" 0.8))"
    say "   CPU per message: smtpgate $(series_median gate.cpu) us; smtp-sink $(series_median gate.sink) us through the gate, $(series_median direct.sink) us direct"
    q=$(series_median check.ratio)
    say "   relayed, median: header_from_check = no $(series_median relay) msg/s, header_from_check = yes $(series_median check) msg/s"
    say "   ratio yes / no, median of the per-run ratios: $q  (target >= 0.9, the check costs under 10%: $(verdict "$q" ">=" 0.9))"
    say "   CPU per relayed message: smtpgate $(series_median relay.cpu) us without the check, $(series_median check.cpu) us with it"
    for f in gate relay check; do
        say "   runs where every message reached smtp-sink ($f): $(awk '{ s += $1 } END { print s + 0 }' "$WORK/fig.$f.ok") of $RUNS"
    done
    [ -s "$WORK/smtp-source.err" ] && head -5 "$WORK/smtp-source.err" | sed 's/^/     /'
    stop_pid "$check_pid"
    stop_pid "$relay_pid"
    return 0
}
