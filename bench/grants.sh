# The grant storm (issue 14), sourced by bench/run.sh after lib.sh.
#
#   grants   grant writes straight through the grant store, no POP3 in
#            front: bench/grantload keeps $GRANT_INFLIGHT writes in flight
#            on one loop and one connection, each for a new address,
#            against a private redis-server of its own (nothing else
#            talks to it). Two forms in the same runs, alternating which
#            goes first: the EVALSHA the daemons send (after) and the
#            seven-command transaction they sent before (MULTI, HSETNX,
#            HSET, HINCRBY, EXPIRE, XADD, EXEC). Redis's CPU per grant
#            comes from its own INFO cpu (used_cpu_sys + used_cpu_user).

GRANT_INFLIGHT=${BENCH_GRANT_INFLIGHT:-128}

# redis_cpu_us PORT: the server's user + system CPU so far, microseconds.
redis_cpu_us() {
    redis-cli -p "$1" INFO cpu | tr -d '\r' | awk -F: '
        $1 == "used_cpu_sys" || $1 == "used_cpu_user" { s += $2 }
        END { printf "%.0f\n", s * 1e6 }'
}

# grant_run SERIES MODE: one run on an emptied Redis. Records SERIES
# (grants/s), .rcpu (Redis us a grant), .ccpu (grantload's), .p99, .err;
# .ok is 1 when Redis holds one key per grant written (and the log).
grant_run() {
    redis-cli -p "$GR_PORT" FLUSHALL >/dev/null
    u0=$(redis_cpu_us "$GR_PORT")
    OUT=$("$BENCH/grantload" -p "$GR_PORT" -m "$2" -c "$GRANT_INFLIGHT" \
        -t "$SECS" 2>>"$WORK/grantload.err" || true)
    u1=$(redis_cpu_us "$GR_PORT")
    total=$(kv written_total "$OUT")
    keys=$(redis-cli -p "$GR_PORT" DBSIZE)
    logins=$(redis-cli -p "$GR_PORT" HGET abbench:grant:10.128.0.1 logins)
    if [ -n "$total" ] && [ "$keys" = $((total + 1)) ] && [ "$logins" = 1 ] &&
       [ "$(kv failed "$OUT")" = 0 ]; then
        record "$1.ok" 1
        gnote="keys ok"
    else
        record "$1.ok" 0
        gnote="KEYS MISMATCH: $total written, Redis holds $keys keys (the log included), logins=$logins"
    fi
    n=$(kv grants "$OUT")
    record "$1" "$(kv rate "$OUT")"
    record "$1.rcpu" "$(awk -v u=$((u1 - u0)) -v n="$n" \
        'BEGIN { if (n > 0) printf "%.1f\n", u / n; else print "n/a" }')"
    record "$1.ccpu" "$(awk -v ms="$(kv cpu_ms "$OUT")" -v n="$n" \
        'BEGIN { if (n > 0) printf "%.1f\n", ms * 1000 / n; else print "n/a" }')"
    record "$1.p99" "$(kv p99_ms "$OUT")"
    record "$1.err" "$(kv failed "$OUT")"
    LAST="$(kv rate "$OUT")/s, Redis $(series_last "$1.rcpu") us/grant ($gnote)"
}

bench_grants() {
    say ""
    say "== grant storm: grant writes straight through the grant store (no POP3), $GRANT_INFLIGHT in"
    say "   flight on one connection, each for a new address, into a private Redis; the"
    say "   daemons' EVALSHA (after) beside the seven-command MULTI ... EXEC (before), in the"
    say "   same runs; $RUNS runs of $SECS s; Redis CPU from its INFO cpu"
    redis_at redis-grants
    GR_PORT=$RI_PORT GR_PID=$RI_PID
    r=1
    while [ "$r" -le "$RUNS" ]; do
        if [ $((r % 2)) -eq 1 ]; then
            grant_run gmulti multi
            before=$LAST
            grant_run gscript script
        else
            grant_run gscript script
            after=$LAST
            grant_run gmulti multi
            before=$LAST
            LAST=$after
        fi
        record gscript.ratio "$(ratio "$(series_last gscript)" "$(series_last gmulti)" 3)"
        record gscript.cpuratio "$(ratio "$(series_last gscript.rcpu)" "$(series_last gmulti.rcpu)" 3)"
        say "   run $r/$RUNS: before (MULTI) $before | after (EVALSHA) $LAST"
        r=$((r + 1))
    done
    redis-cli -p "$GR_PORT" FLUSHALL >/dev/null
    stop_pid "$GR_PID"
    say ""
    say "   median                    grants/s  Redis CPU us/grant  grantload CPU us/grant  p99 ms"
    for s in gmulti gscript; do
        case $s in
        gmulti) label="before: MULTI ... EXEC" ;;
        gscript) label="after: EVALSHA        " ;;
        esac
        printf '   %s  %8s  %18s  %22s  %6s\n' "$label" "$(series_median "$s")" \
            "$(series_median "$s.rcpu")" "$(series_median "$s.ccpu")" "$(series_median "$s.p99")"
    done
    say "   after / before, median of the per-run ratios: grants/s $(series_median gscript.ratio), Redis CPU per grant $(series_median gscript.cpuratio)"
    say "   so one Redis core takes about $(awk -v u="$(series_median gscript.rcpu)" \
        'BEGIN { if (u > 0) printf "%.0f", 1e6 / u; else print "n/a" }') grants/s as the daemons write them ($(awk -v u="$(series_median gmulti.rcpu)" \
        'BEGIN { if (u > 0) printf "%.0f", 1e6 / u; else print "n/a" }') before), at 100% of its CPU"
    say "   (grants/s: Redis and grantload share the two cores, so the rate is bounded by"
    say "   both; Redis CPU per grant is Redis's own, whatever the client costs)"
    say "   runs where Redis held one key per grant written: before $(awk '{ s += $1 } END { print s + 0 }' "$WORK/fig.gmulti.ok") of $RUNS, after $(awk '{ s += $1 } END { print s + 0 }' "$WORK/fig.gscript.ok") of $RUNS;"
    say "   failed writes: $(cat "$WORK/fig.gmulti.err" "$WORK/fig.gscript.err" | awk '{ s += $1 } END { print s + 0 }')"
    [ -s "$WORK/grantload.err" ] && grep -v 'event=redis_up' "$WORK/grantload.err" | head -5 | sed 's/^/     /'
    return 0
}
