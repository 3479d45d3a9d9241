# smtpgate benchmarks (issue 4), sourced by bench/run.sh after lib.sh.
#
#   policy   decisions/s on policy_listen, 16 persistent connections, one
#            request at a time each, grants for half the client addresses;
#            next to redis-benchmark -c 16 -t get (the Redis round trip
#            every decision needed before the grant cache) and nullpolicy
#            (the round trip alone). Warm: 256 addresses asked again and
#            again, the gate's grant cache (issue 13) answering; its hit
#            rate from the gate's metrics. Cold: every request a client
#            address never asked before, so every lookup goes to Redis.
#            With "loops" wanted and smtpgate taking the key (issue 14),
#            the warm run with loops = 1 and loops = 2 (bench/loops.sh).
#   proxy    smtp-source (20 sessions, 2 KB messages) through smtpgate
#            into smtp-sink, next to smtp-source straight into smtp-sink;
#            and relayed messages through two gates that differ only in
#            header_from_check (issue 15: the check costs under 10%)

POLICY_ADDRS=256      # client addresses 10.1.0.1..; even ones hold a grant
COLD_BASE=10.64.0.0   # cold runs: 10.64.0.0 + offset.., never asked twice

# start_smtpgate [VARIANT [LOOPS]]: smtpgate on free ports (SMTP, policy
# and metrics) in front of the smtp-sink on $SINK_PORT; sets GATE_PORT,
# POLICY_PORT, GATE_METRICS, GATE_PID. VARIANT "relay" also trusts
# loopback, so messages to rcpt@remote.example are relayed (path 2,
# logged to the Redis stream); "check" is "relay" with header_from_check
# = yes; any other name is the plain gate under that name. LOOPS: the
# loops key's value (empty: no key).
start_smtpgate() {
    variant=${1:-}
    name=smtpgate${variant:+-$variant}
    GATE_PORT=$(free_port)
    POLICY_PORT=$(free_port)
    GATE_METRICS=$(free_port)
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
metrics_listen = 127.0.0.1:$GATE_METRICS
EOF
    [ -z "${2:-}" ] || echo "loops = $2" >>"$WORK/$name.conf"
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

# Grants for the even addresses among COUNT from the cold base plus
# OFFSET, in the schema's fields (README "Redis schema"), by one script
# per 50,000 (an admin command per grant would take minutes).
COLD_GRANTS_LUA="local base, n, off = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local now = ARGV[4]
for i = off, off + n - 1, 2 do
    local a = base + i
    local ip = string.format('%d.%d.%d.%d', math.floor(a / 16777216) % 256,
        math.floor(a / 65536) % 256, math.floor(a / 256) % 256, a % 256)
    local k = ARGV[5] .. 'grant:' .. ip
    redis.call('HSET', k, 'user', 'cold' .. i, 'since', now, 'renewed', now,
        'node', 'bench', 'method', 'USER', 'tls', '0', 'logins', '1')
    redis.call('EXPIRE', k, 1800)
end
return n"

# write_cold_grants BASE-ADDRESS COUNT
write_cold_grants() {
    b=$(echo "$1" | awk -F. '{ printf "%.0f\n", (($1 * 256 + $2) * 256 + $3) * 256 + $4 }')
    off=0
    while [ "$off" -lt "$2" ]; do
        n=$(( $2 - off < 50000 ? $2 - off : 50000 ))
        rcli EVAL "$COLD_GRANTS_LUA" 0 "$b" "$n" "$off" "$(date +%s)" abbench: >/dev/null ||
            die "writing the cold run's grants failed"
        off=$((off + n))
    done
}

# ipv4_plus ADDRESS N: ADDRESS + N as a dotted quad.
ipv4_plus() {
    echo "$1" | awk -F. -v n="$2" '{ a = (($1 * 256 + $2) * 256 + $3) * 256 + $4 + n
        printf "%d.%d.%d.%d\n", int(a / 16777216) % 256, int(a / 65536) % 256,
            int(a / 256) % 256, a % 256 }'
}

redis_get_rate() {
    redis-benchmark -p "$REDIS_PORT" -c 16 -t get -n "$1" --csv 2>/dev/null |
        awk -F'"' '$2 == "GET" { print $4 }'
}

# cache_counts METRICS-PORT: "HIT MISS OFF", the gate's grant lookups
# so far (authbridge_grant_cache_lookups_total, grant.c).
cache_counts() {
    curl -s --max-time 5 "http://127.0.0.1:$1/metrics" | awk '
        /grant_cache_lookups_total\{result="hit"\}/ { h = $2 }
        /grant_cache_lookups_total\{result="miss"\}/ { m = $2 }
        /grant_cache_lookups_total\{result="off"\}/ { o = $2 }
        END { print h + 0, m + 0, o + 0 }'
}

# policy_run SERIES POLICY-PORT GATE-PID METRICS-PORT [policyload options]:
# one run against a gate, beside $redis (this run's GET rate). Records
# SERIES (decisions/s), .ratio, .cpu, .rcpu, .err, .hit (percent of the
# lookups answered from the cache); leaves policyload's figures in $OUT.
policy_run() {
    series=$1 port=$2 pid=$3 mport=$4
    shift 4
    c0=$(cache_counts "$mport")
    g0=$(cpu_ticks "$pid")
    r0=$(cpu_ticks "$REDIS_PID")
    OUT=$("$BENCH/policyload" -p "$port" -c 16 -t "$SECS" "$@" 2>>"$WORK/policyload.err" || true)
    n=$(kv requests "$OUT")
    record "$series.cpu" "$(per_event_us "$(( $(cpu_ticks "$pid") - g0 ))" "$n")"
    record "$series.rcpu" "$(per_event_us "$(( $(cpu_ticks "$REDIS_PID") - r0 ))" "$n")"
    record "$series" "$(kv rate "$OUT")"
    record "$series.ratio" "$(ratio "$(kv rate "$OUT")" "$redis" 3)"
    record "$series.err" "$(kv errors "$OUT")"
    hit=$(echo "$c0 $(cache_counts "$mport")" | awk '{ h = $4 - $1; t = h + $5 - $2 + $6 - $3
        if (t > 0) printf "%.1f\n", h * 100 / t; else print "n/a" }')
    record "$series.hit" "$hit"
    LAST="$(kv rate "$OUT")/s (hits $hit%, OK $(kv ok "$OUT"), DUNNO $(kv dunno "$OUT"), errors $(kv errors "$OUT"), p99 $(kv p99_ms "$OUT") ms)"
}

# policy_series: the warm series of this run (l1 is the main gate).
policy_series() {
    if wants policy || [ "$GATE_LOOPS" = yes ]; then printf 'warm'; fi
    [ "$GATE_LOOPS" = yes ] && printf ' l2'
    echo
}

policy_label() {
    case $1 in
    warm) if [ "$GATE_LOOPS" = yes ]; then echo "warm, loops = 1"; else echo "warm"; fi ;;
    l2) echo "warm, loops = 2" ;;
    cold) echo "cold" ;;
    esac
}

bench_policy() {
    say ""
    say "== smtpgate policy service: 16 persistent connections, one request at a time each"
    say "   (Postfix 3.7 RCPT requests), grants for half the client addresses; next to"
    say "   redis-benchmark -c 16 -t get and nullpolicy; $RUNS runs of $SECS s, interleaved."
    say "   warm: $POLICY_ADDRS client addresses asked again and again (the grant cache answers);"
    wants policy &&
        say "   cold: every request from an address never asked before (every lookup goes to Redis)"
    [ "$GATE_LOOPS" = yes ] &&
        say "   loops: the warm run with loops = 1 and loops = 2 (issue 14)"
    one=
    [ "$GATE_LOOPS" = yes ] && one=1
    start_sink
    if [ "$GATE_LOOPS" = yes ]; then
        start_smtpgate l2 2
        L2_POLICY=$POLICY_PORT L2_PID=$GATE_PID L2_METRICS=$GATE_METRICS
    fi
    start_smtpgate "" "$one"
    write_policy_grants
    if wants policy; then
        bg "$WORK/nullpolicy.log" "$BENCH/nullpolicy"
        NULLPOLICY_PID=$BG_PID
        i=0
        until NULLPOLICY_PORT=$(sed -n 's/^port=//p' "$WORK/nullpolicy.log") &&
              [ -n "$NULLPOLICY_PORT" ]; do
            i=$((i + 1))
            [ "$i" -lt 100 ] || die "nullpolicy did not start"
            sleep 0.05
        done
    fi
    # redis-benchmark takes a request count: aim at $SECS seconds.
    gets=$(( $(redis_get_rate 50000 | cut -d. -f1) * SECS ))
    cold_at=0 exhausted=0
    r=1
    while [ "$r" -le "$RUNS" ]; do
        redis=$(redis_get_rate "$gets")
        record redisget "$redis"
        line="redis GET $redis/s"
        if wants policy; then
            out=$("$BENCH/policyload" -p "$NULLPOLICY_PORT" -c 16 -t "$SECS" \
                -a "$POLICY_ADDRS" 2>>"$WORK/policyload.err" || true)
            record nullpolicy "$(kv rate "$out")"
            line="$line | nullpolicy $(kv rate "$out")/s"
        fi
        for s in $(policy_series); do
            if [ "$s" = l2 ]; then
                policy_run l2 "$L2_POLICY" "$L2_PID" "$L2_METRICS" -a "$POLICY_ADDRS" -g
            else
                policy_run warm "$POLICY_PORT" "$GATE_PID" "$GATE_METRICS" -a "$POLICY_ADDRS" -g
            fi
            line="$line | $(policy_label "$s") $LAST"
        done
        if wants policy; then
            # Cold: fresh addresses for twice what the warm gate answered
            # (the run stops early, exhausted=1, if that was too few),
            # grants for the even ones; afterwards Redis is emptied (the
            # gate hears of it and empties its cache) and the warm grants
            # are written again.
            span=$(awk -v r="$(series_last warm)" -v s="$SECS" \
                'BEGIN { print int(r * s) * 2 + 20000 }')
            base=$(ipv4_plus "$COLD_BASE" "$cold_at")
            cold_at=$((cold_at + span))
            write_cold_grants "$base" "$span"
            policy_run cold "$POLICY_PORT" "$GATE_PID" "$GATE_METRICS" -a "$span" -b "$base" -n -g
            [ "$(kv exhausted "$OUT")" = 1 ] && exhausted=$((exhausted + 1))
            line="$line | cold $LAST"
            write_policy_grants
        fi
        say "   run $r/$RUNS: $line"
        r=$((r + 1))
    done
    [ -n "${NULLPOLICY_PID:-}" ] && stop_pid "$NULLPOLICY_PID"
    [ -n "${L2_PID:-}" ] && stop_pid "$L2_PID"
    say ""
    say "   median decisions/s       smtpgate  redis GET  ratio  target  verdict  hit rate  CPU us: gate  redis"
    g=$(series_median redisget)
    for s in $(policy_series) $(wants policy && echo cold); do
        q=$(series_median "$s.ratio")
        t=1.0
        [ "$s" = cold ] && t=0.69
        printf '   %-22s  %8s  %9s  %5s  >=%-4s  %-7s  %7s%%  %12s  %5s\n' \
            "$(policy_label "$s")" "$(series_median "$s")" "$g" "$q" "$t" \
            "$(verdict "$q" ">=" "$t")" "$(series_median "$s.hit")" \
            "$(series_median "$s.cpu")" "$(series_median "$s.rcpu")"
    done
    wants policy && say "   nullpolicy (the round trip alone): $(series_median nullpolicy)/s"
    say "   (ratio: median of the per-run ratios to the GET rate measured just before; targets:"
    say "   issue 13, warm >= 1.0, cold no worse than the 0.69 before the cache; hit rate: lookups"
    say "   answered from the gate's cache, from authbridge_grant_cache_lookups_total)"
    if wants policy; then
        say "   cold runs cut short (fresh addresses used up, the rate still counts): $exhausted of $RUNS"
    fi
    [ "$GATE_LOOPS" = yes ] && loops_policy_summary
    errs=0
    for s in $(policy_series) $(wants policy && echo cold); do
        errs=$((errs + $(awk '{ s += $1 } END { print s + 0 }' "$WORK/fig.$s.err")))
    done
    say "   errors (wrong or missing answers): $errs"
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
    say "   ratio gate / direct, median of the per-run ratios: $q  (issue 13: >= 0.85: $(verdict "$q" ">=" 0.85))"
    c=$(series_median gate.cpu)
    say "   CPU per message: smtpgate $c us (issue 13: <= 45: $(verdict "$c" "<=" 45)); smtp-sink $(series_median gate.sink) us through the gate, $(series_median direct.sink) us direct"
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
