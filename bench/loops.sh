# Event loops per daemon (issue 14), sourced by bench/run.sh after lib.sh.
#
#   loops    the login storm ({PLAIN}) and the warm policy storm with
#            loops = 1 and loops = 2, in the same interleaved runs as the
#            other series of bench_login and bench_policy, with the
#            daemons' CPU per login / decision for each. Only when the
#            daemon takes the key: loops_probe asks each one with -t on
#            its bench configuration plus "loops = 1".
#
# On a 2-core machine the load generator, Redis and the daemon share the
# cores: a second loop can only show that it costs no more CPU per login
# (no lock contention), not what it gains on a host with cores to spare.

POP3D_LOOPS=no
GATE_LOOPS=no

# probe_key DAEMON CONF: "yes" if DAEMON -t takes CONF, "no" if it refuses
# the loops key; anything else it refuses is fatal (the bench's own
# configuration is wrong).
probe_key() {
    if out=$("$1" -t -c "$2" 2>&1); then
        echo yes
    elif printf '%s\n' "$out" | grep -q "'loops'"; then
        echo no
    else
        die "$1 -t refused the bench configuration: $out"
    fi
}

loops_probe() {
    pop3d_conf "$WORK/probe-pop3d.conf" "$(free_port)" "$WORK/users" 1
    POP3D_LOOPS=$(probe_key "$AB_OUT/pop3d/pop3d" "$WORK/probe-pop3d.conf")
    if [ -x "$AB_OUT/smtpgate/smtpgate" ]; then
        cat >"$WORK/probe-smtpgate.conf" <<EOF
[redis]
address = 127.0.0.1:$REDIS_PORT
prefix = abbench:

[smtpgate]
listen = 127.0.0.1:$(free_port)
policy_listen = 127.0.0.1:$(free_port)
downstream = 127.0.0.1:$(free_port)
hostname = gate.example.org
local_domains = example.org
loops = 1
EOF
        GATE_LOOPS=$(probe_key "$AB_OUT/smtpgate/smtpgate" "$WORK/probe-smtpgate.conf")
    fi
    say ""
    for d in pop3d:$POP3D_LOOPS smtpgate:$GATE_LOOPS; do
        if [ "${d#*:}" = yes ]; then
            say "== loops: ${d%%:*} takes \"loops = N\": its storm runs with loops = 1 and loops = 2"
        else
            say "== loops: ${d%%:*} -t refuses \"loops = 1\" (not implemented yet): its loops figures are skipped"
        fi
    done
}

# What bench_login prints about the loops series.
loops_login_summary() {
    say "   loops, pop3d CPU per {PLAIN} login: 16 clients $(series_median plain16.cpu) us with loops = 1,"
    say "   $(series_median l216.cpu) us with loops = 2; 256 clients $(series_median plain256.cpu) us and $(series_median l2256.cpu) us"
    say "   (loops = 2 / loops = 1, median of per-run ratios of the rates: 16 clients $(loops_rate_ratio 16),"
    say "   256 clients $(loops_rate_ratio 256); per login CPU must not grow with the loops: no lock"
    say "   contention; the rate cannot show the second loop's gain here: the client and Redis"
    say "   take the other core)"
}

# loops_rate_ratio CLIENTS: median of the per-run l2 / plain rate ratios.
loops_rate_ratio() {
    paste "$WORK/fig.l2$1" "$WORK/fig.plain$1" |
        awk '{ if ($2 > 0) printf "%.3f\n", $1 / $2 }' | median
}

# What bench_policy prints about the loops series.
loops_policy_summary() {
    say "   loops, smtpgate CPU per warm decision: $(series_median warm.cpu) us with loops = 1, $(series_median l2.cpu) us with"
    say "   loops = 2; rate loops = 2 / loops = 1, median of per-run ratios: $(paste "$WORK/fig.l2" "$WORK/fig.warm" |
        awk '{ if ($2 > 0) printf "%.3f\n", $1 / $2 }' | median)"
    say "   (the 16 connections are spread over the loops by SO_REUSEPORT's hash, not evenly;"
    say "   a cache per loop would count each loop's first lookups as misses)"
}
