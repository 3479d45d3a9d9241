# Helpers for bench/run.sh (sourced, POSIX sh): ports, background
# processes and their clean-up, Redis, figures.
#
# Every process started here is recorded in $WORK/pids and stopped by
# bench_cleanup, which run.sh calls from its EXIT trap.

say() { printf '%s\n' "$*"; }
die() { printf 'bench: %s\n' "$*" >&2; exit 1; }

# A TCP port nobody listens on, below the ephemeral range (so outgoing
# connections cannot take it), never handed out twice in one run.
free_port() {
    while :; do
        p=$(( $(od -An -N2 -tu2 /dev/urandom) % 12000 + 20000 ))
        grep -qx "$p" "$WORK/ports" 2>/dev/null && continue
        ss -Htln "sport = :$p" | grep -q . && continue
        echo "$p" >>"$WORK/ports"
        echo "$p"
        return
    done
}

# wait_listen PORT [SECONDS]: until something listens on 127.0.0.1:PORT.
wait_listen() {
    i=0
    while [ "$i" -lt $(( ${2:-10} * 20 )) ]; do
        ss -Htln "sport = :$1" | grep -q . && return 0
        sleep 0.05
        i=$((i + 1))
    done
    return 1
}

# bg LOG CMD...: start CMD in the background, output to LOG; sets $BG_PID.
bg() {
    log=$1
    shift
    "$@" >>"$log" 2>&1 </dev/null &
    BG_PID=$!
    echo "$BG_PID" >>"$WORK/pids"
}

# stop_pid PID: SIGTERM, then SIGKILL if it is still there after 10 s.
# The PID leaves the list, so the clean-up never signals a number the
# system may since have given to someone else's process.
stop_pid() {
    sed -i "/^$1\$/d" "$WORK/pids"
    kill -TERM "$1" 2>/dev/null || return 0
    i=0
    while kill -0 "$1" 2>/dev/null && [ "$i" -lt 200 ]; do
        sleep 0.05
        i=$((i + 1))
    done
    kill -KILL "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

bench_cleanup() {
    if [ -f "$WORK/pids" ]; then
        # Newest first: clients before the servers they talk to.
        for pid in $(tac "$WORK/pids"); do
            stop_pid "$pid"
        done
    fi
    if [ "${BENCH_KEEP:-0}" = 1 ]; then
        say "bench: kept $WORK"
    else
        rm -rf "$WORK"
    fi
}

# ---- Redis -----------------------------------------------------------------

# redis_at NAME: a private redis-server in $WORK/NAME on a free port;
# sets RI_PORT and RI_PID.
redis_at() {
    RI_PORT=$(free_port)
    mkdir -p "$WORK/$1"
    bg "$WORK/$1/stdout.log" redis-server --port "$RI_PORT" \
        --bind 127.0.0.1 --save '' --appendonly no --dir "$WORK/$1" \
        --logfile "$WORK/$1/redis.log" --daemonize no
    RI_PID=$BG_PID
    i=0
    until redis-cli -p "$RI_PORT" PING >/dev/null 2>&1; do
        i=$((i + 1))
        [ "$i" -lt 200 ] || die "redis-server did not start (see $WORK/$1)"
        sleep 0.05
    done
}

# The Redis every daemon of the bench uses.
start_redis() {
    redis_at redis
    REDIS_PORT=$RI_PORT REDIS_PID=$RI_PID
}

rcli() { redis-cli -p "$REDIS_PORT" "$@"; }

# grant_count PREFIX: "KEYS LOGINS", the grant keys and the sum of their
# login counters (pop3d increments one per login, in the grant write).
grant_count() {
    rcli --no-raw EVAL "local n, s = 0, 0
        for _, k in ipairs(redis.call('KEYS', ARGV[1] .. 'grant:*')) do
            n = n + 1
            s = s + tonumber(redis.call('HGET', k, 'logins') or 0)
        end
        return {n, s}" 0 "$1" | awk '{ printf "%s ", $NF } END { print "" }'
}

# ---- figures ---------------------------------------------------------------

CLK_TCK=$(getconf CLK_TCK)

# cpu_ticks PID: user + system time of PID, all its threads, in ticks.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

# machine_ticks: "BUSY TOTAL" ticks of all CPUs since boot (/proc/stat).
# Busy is time spent in processes (user, nice, system, steal); interrupt
# and softirq time is left out: loopback TCP does much of our own
# packet work there, and it is charged to no process.
machine_ticks() { awk '$1 == "cpu" { t = 0; for (i = 2; i <= NF; i++) t += $i
    print $2 + $3 + $4 + $9, t; exit }' /proc/stat; }

# others_share BEFORE AFTER OURS: percent of the machine's CPU time that
# processes other than ours (OURS ticks) took between two machine_ticks.
# Approximate: per-process and per-CPU times are sampled apart, so a
# quiet machine can come out a little below zero (shown as 0).
others_share() { echo "$1 $2 $3" | awk '{ t = $4 - $2; o = $3 - $1 - $5
    if (t > 0) printf "%.0f\n", (o > 0 ? o : 0) * 100 / t; else print "n/a" }'; }

# per_event_us TICKS COUNT: microseconds of CPU per event (login, message).
per_event_us() { awk -v t="$1" -v n="$2" -v hz="$CLK_TCK" \
    'BEGIN { if (n > 0) printf "%.0f\n", t * 1e6 / hz / n; else print "n/a" }'; }

# kv KEY LINE: the value of key=value in a line of figures.
kv() { printf '%s\n' "$2" | tr ' ' '\n' | sed -n "s/^$1=//p"; }

# median < numbers: the median, as awk prints numbers.
median() {
    sort -g | awk '{ v[NR] = $1 }
        END { if (NR == 0) print "n/a";
              else if (NR % 2) print v[(NR + 1) / 2];
              else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# ratio A B [DIGITS]: A / B.
ratio() { awk -v a="$1" -v b="$2" -v d="${3:-2}" \
    'BEGIN { if (b + 0 == 0) print "n/a"; else printf "%.*f\n", d, a / b }'; }

# verdict VALUE OP TARGET: "ok" or "MISSED" (OP is >= or <=).
verdict() { awk -v v="$1" -v t="$3" -v op="$2" 'BEGIN {
    if (v == "n/a") { print "n/a"; exit }
    ok = op == ">=" ? v + 0 >= t + 0 : v + 0 <= t + 0
    print ok ? "ok" : "MISSED" }'; }

# The figures of one run go to a file per series, one number a line.
record() { echo "$2" >>"$WORK/fig.$1"; }
series_median() { median <"$WORK/fig.$1"; }
series_list() { tr '\n' ' ' <"$WORK/fig.$1" | sed 's/ $//'; }
series_last() { tail -1 "$WORK/fig.$1"; }
