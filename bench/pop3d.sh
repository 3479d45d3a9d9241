# pop3d benchmarks (issue 3), sourced by bench/run.sh after lib.sh.
#
#   login storm   USER/PASS/STAT/QUIT, 16 and 256 clients, next to nullpop
#                 with the same client. Each kind of user has a pop3d of
#                 its own, whose users file holds only that kind: a
#                 {PLAIN} user in a file that also has hashes pays a hash
#                 per login (the timing equalisation of users.c), so the
#                 {PLAIN} figure comes from a pure {PLAIN} file and the
#                 {SHA512-CRYPT} one from a pure {SHA512-CRYPT} file; a
#                 third pop3d on the mixed file shows what a {PLAIN} login
#                 costs there (16 clients). With "loops" wanted and pop3d
#                 taking the key (issue 14), {PLAIN} runs with loops = 1
#                 and loops = 2 in the same runs (bench/loops.sh).
#   RETR          1 MiB messages over plain TCP, next to nullpop serving
#                 the same message from memory
#   idle          10,000 connections held: pop3d's memory for them, and a
#                 fresh client's greeting and login latency meanwhile
#
# Runs are interleaved (nullpop, then each pop3d, then again) so the
# machine's noise falls on every series alike; figures are medians.

NUSERS=1024           # a multiple of 16 and 256: each client owns 4 or 64
NSRC=256              # client addresses 127.1.0.1.. of the login storm
RETR_USERS=4
RETR_MSGS=8
MSG_BYTES=1048576

# ---- Maildirs and users ----------------------------------------------------

# message FILE BYTES: a realistic message of about BYTES octets: headers,
# then base64 text in 76-character lines with LF ends (as MTAs deliver).
message() {
    {
        printf 'Return-Path: <sender@example.net>\n'
        printf 'Delivered-To: user@example.org\n'
        printf 'Received: from client.example.net (client.example.net [192.0.2.10])\n'
        printf '\tby mx.example.org (Postfix) with ESMTPS id 4Tq2Zx1b3Jz9sRt\n'
        printf '\tfor <user@example.org>; Mon, 11 Mar 2024 10:12:13 +0100 (CET)\n'
        printf 'From: Sender <sender@example.net>\nTo: User <user@example.org>\n'
        printf 'Subject: Quarterly figures\nDate: Mon, 11 Mar 2024 10:12:12 +0100\n'
        printf 'Message-ID: <%s@client.example.net>\nMIME-Version: 1.0\n' "$2"
        printf 'Content-Type: application/pdf; name="figures.pdf"\n'
        printf 'Content-Transfer-Encoding: base64\n\n'
        head -c $(( ($2 - 700) * 76 * 3 / (77 * 4) )) /dev/urandom | base64 -w 76
    } >"$1"
}

# fill_maildirs "TEMPLATE..." COUNT HOME...: COUNT copies of each TEMPLATE
# in each home's Maildir/new, named as Postfix names deliveries. One awk
# process writes them all (a cp per file costs a process each).
fill_maildirs() {
    tmpls=$1 count=$2
    shift 2
    for h in "$@"; do
        printf '%s/Maildir/cur\n%s/Maildir/new\n%s/Maildir/tmp\n' "$h" "$h" "$h"
    done | xargs mkdir -p
    printf '%s\n' "$@" | awk -v tmpls="$tmpls" -v count="$count" '
        BEGIN { n = split(tmpls, t, " "); RS = "^$"
                for (j = 1; j <= n; j++) { getline body[j] < t[j]; close(t[j]) }
                RS = "\n" }
        { for (j = 1; j <= n; j++)
              for (i = 0; i < count; i++) {
                  k = (j - 1) * count + i
                  f = sprintf("%s/Maildir/new/%d.V801I%xM%d.bench.example.org",
                              $0, 1700000000 + k, NR * 64 + k, 100000 + k)
                  printf "%s", body[j] > f
                  close(f) } }'
}

# The user files: p<i> {PLAIN} and s<i> {SHA512-CRYPT} (default rounds)
# share home h<i>, as the two kinds never run at the same time; r<i>
# are the RETR users ({PLAIN}). Password of user <x><i>: pw<i>.
#   users        p<i> and r<i>: {PLAIN} only
#   users.sha    s<i>: {SHA512-CRYPT} only
#   users.mixed  all three, as the bench had them in one file before
setup_pop3d_users() {
    say "setting up $NUSERS users ({PLAIN} and {SHA512-CRYPT}) and Maildirs ..."
    H=$WORK/home
    message "$WORK/small1.eml" 2200
    message "$WORK/small2.eml" 5200
    message "$WORK/big.eml" "$MSG_BYTES"
    homes=$(awk -v n="$NUSERS" -v h="$H" \
        'BEGIN { for (i = 0; i < n; i++) printf "%s/h%04d\n", h, i }')
    # shellcheck disable=SC2086
    fill_maildirs "$WORK/small1.eml $WORK/small2.eml" 1 $homes
    rhomes=$(awk -v n="$RETR_USERS" -v h="$H" \
        'BEGIN { for (i = 0; i < n; i++) printf "%s/r%04d\n", h, i }')
    # shellcheck disable=SC2086
    fill_maildirs "$WORK/big.eml" "$RETR_MSGS" $rhomes
    awk -v n="$NUSERS" 'BEGIN { for (i = 0; i < n; i++) printf "pw%04d\n", i }' |
        openssl passwd -6 -stdin >"$WORK/sha.txt"
    awk -v h="$H" '{ printf "s%04d:{SHA512-CRYPT}%s::::%s/h%04d::\n", NR - 1, $0, h, NR - 1 }' \
        "$WORK/sha.txt" >"$WORK/users.sha"
    awk -v n="$NUSERS" -v h="$H" -v r="$RETR_USERS" 'BEGIN {
            for (i = 0; i < n; i++)
                printf "p%04d:{PLAIN}pw%04d::::%s/h%04d::\n", i, i, h, i
            for (i = 0; i < r; i++)
                printf "r%04d:{PLAIN}pw%04d::::%s/r%04d::\n", i, i, h, i
        }' >"$WORK/users"
    cat "$WORK/users.sha" "$WORK/users" >"$WORK/users.mixed"
    chmod 600 "$WORK/users" "$WORK/users.sha" "$WORK/users.mixed"
    MSG_SIZE=$(wc -c <"$WORK/big.eml")
}

# pop3d_conf FILE PORT USERS [LOOPS]: a pop3d configuration.
pop3d_conf() {
    cat >"$1" <<EOF
[redis]
address = 127.0.0.1:$REDIS_PORT
prefix = abbench:

[grant]
ttl = 1800

[pop3d]
listen = 127.0.0.1:$2
users = $3
node = bench
EOF
    [ -z "${4:-}" ] || echo "loops = $4" >>"$1"
}

# start_pop3d NAME [USERS [LOOPS]]: a pop3d with its own port, config and
# log (users file: $WORK/users, {PLAIN} only); sets POP3D_PORT and
# POP3D_PID.
start_pop3d() {
    POP3D_PORT=$(free_port)
    pop3d_conf "$WORK/$1.conf" "$POP3D_PORT" "${2:-$WORK/users}" "${3:-}"
    bg "$WORK/$1.log" "$AB_OUT/pop3d/pop3d" -c "$WORK/$1.conf"
    POP3D_PID=$BG_PID
    wait_listen "$POP3D_PORT" || die "pop3d did not start: $(tail -5 "$WORK/$1.log")"
    i=0
    until grep -q "event=redis_up" "$WORK/$1.log"; do
        i=$((i + 1))
        [ "$i" -lt 100 ] || die "pop3d did not reach Redis: $(tail -5 "$WORK/$1.log")"
        sleep 0.05
    done
}

# start_nullpop NAME [nullpop options]: sets NULLPOP_PORT.
start_nullpop() {
    name=$1
    shift
    bg "$WORK/$name.log" "$BENCH/nullpop" -m "$WORK/big.eml" "$@"
    i=0
    until NULLPOP_PORT=$(sed -n 's/^port=//p' "$WORK/$name.log") &&
          [ -n "$NULLPOP_PORT" ]; do
        i=$((i + 1))
        [ "$i" -lt 100 ] || die "nullpop did not start"
        sleep 0.05
    done
}

# ---- login storm -------------------------------------------------------------

# The pop3d of each series: pop_start SERIES NAME USERS LOOPS USER-PREFIX
# starts it (LOOPS empty: no key) and records its port, PID, log and
# users as POP_<field>_<series>; pop_get FIELD SERIES reads one back.
pop_start() {
    start_pop3d "$2" "$3" "$4"
    eval "POP_PORT_$1=\$POP3D_PORT POP_PID_$1=\$POP3D_PID"
    eval "POP_LOG_$1=\$WORK/\$2.log POP_USER_$1=\$5"
}
pop_get() { eval "printf '%s\n' \"\${POP_$1_$2:-}\""; }

# login_series CLIENTS: the pop3d series of the login storm at CLIENTS.
# Without "login" wanted, only what the loops figures need.
login_series() {
    if wants login; then
        printf 'plain sha'
        [ "$1" = 16 ] && printf ' mixed'
    else
        printf 'plain'
    fi
    [ "$POP3D_LOOPS" = yes ] && printf ' l2'
    echo
}

login_label() {
    case $1 in
    null) echo "nullpop" ;;
    plain) if [ "$POP3D_LOOPS" = yes ]; then echo "{PLAIN}, loops = 1"; else echo "{PLAIN}"; fi ;;
    sha) echo "{SHA512-CRYPT}" ;;
    mixed) echo "{PLAIN}, mixed file" ;;
    l2) echo "{PLAIN}, loops = 2" ;;
    esac
}

# start_login_pop3ds: one pop3d per series; "plain" ($WORK/users, also
# RETR's and the idle figures' users) is the one POP3D_PORT names after.
# With loops on, every series but l2 runs loops = 1 (one loop, as
# before issue 14).
start_login_pop3ds() {
    one=
    [ "$POP3D_LOOPS" = yes ] && one=1
    if wants login; then
        pop_start sha pop3d-sha "$WORK/users.sha" "$one" s
        pop_start mixed pop3d-mixed "$WORK/users.mixed" "$one" p
    fi
    [ "$POP3D_LOOPS" = yes ] && pop_start l2 pop3d-l2 "$WORK/users" 2 p
    pop_start plain pop3d "$WORK/users" "$one" p
}

stop_login_pop3ds() {
    for s in plain sha mixed l2; do
        pid=$(pop_get PID "$s")
        [ -z "$pid" ] || stop_pid "$pid"
    done
}

# storm SERIES PORT SERVER-PID CLIENTS USER-PREFIX: one run. Records the
# rate, p99 latency, errors and the CPU time per login of the server
# (utime + stime of all its threads, /proc/PID/stat), Redis and the
# client; leaves pop3load's figures in $OUT.
storm() {
    m0=$(machine_ticks)
    s0=$(cpu_ticks "$3")
    r0=$(cpu_ticks "$REDIS_PID")
    OUT=$("$BENCH/pop3load" -m login -p "$2" -c "$4" -t "$SECS" -U "$NUSERS" \
        -u "$5" -P pw -a "$NSRC" -b 127.1.0.1 2>>"$WORK/pop3load.err" || true)
    s1=$(( $(cpu_ticks "$3") - s0 ))
    r1=$(( $(cpu_ticks "$REDIS_PID") - r0 ))
    c1=$(awk -v ms="$(kv cpu_ms "$OUT")" -v hz="$CLK_TCK" \
        'BEGIN { printf "%d\n", ms * hz / 1000 }')
    record "$1.others" "$(others_share "$m0" "$(machine_ticks)" $((s1 + r1 + c1)))"
    n=$(kv logins_total "$OUT")
    record "$1" "$(kv rate "$OUT")"
    record "$1.p99" "$(kv login_p99_ms "$OUT")"
    record "$1.err" "$(kv errors "$OUT")"
    record "$1.cpu" "$(per_event_us "$s1" "$n")"
    record "$1.rcpu" "$(per_event_us "$r1" "$n")"
    record "$1.ccpu" "$(awk -v ms="$(kv cpu_ms "$OUT")" -v n="$n" \
        'BEGIN { if (n > 0) printf "%.0f\n", ms * 1000 / n; else print "n/a" }')"
}

# checked_storm SERIES CLIENTS: a run on the series' pop3d whose grants
# are then counted in Redis (emptied first): one key per client address,
# and their login counters must add up to the logins the client saw.
# Records SERIES<clients> figures; $LAST says what happened.
checked_storm() {
    log=$(pop_get LOG "$1")
    rcli FLUSHALL >/dev/null
    : >"$log"
    storm "$1$2" "$(pop_get PORT "$1")" "$(pop_get PID "$1")" "$2" "$(pop_get USER "$1")"
    seen=$(kv logins_total "$OUT")
    counted=$(grant_count abbench:)
    keys=$(echo "$counted" | awk '{ print $1 }')
    sum=$(echo "$counted" | awk '{ print $2 }')
    failed=$(grep -c "grant=failed" "$log" || true)
    if [ "$sum" = "$seen" ] && [ "$failed" = 0 ] && [ "${seen:-0}" -gt 0 ]; then
        GRANTS_OK=$((GRANTS_OK + 1))
        gnote="grants ok"
    else
        GRANTS_BAD=$((GRANTS_BAD + 1))
        gnote="GRANTS MISMATCH: client saw $seen logins, Redis counts $sum in $keys keys, $failed grant=failed"
    fi
    LAST="$(kv rate "$OUT")/s err=$(kv errors "$OUT") ($gnote)"
}

# Warm-up, not counted: every mailbox once (new/ -> cur/, pages cached)
# through each pop3d, so that no series pays the first login.
login_warmup() {
    for s in $(login_series 16); do
        "$BENCH/pop3load" -m login -p "$(pop_get PORT "$s")" -c 16 -N "$NUSERS" \
            -U "$NUSERS" -u "$(pop_get USER "$s")" -P pw -a "$NSRC" -b 127.1.0.1 \
            >/dev/null 2>>"$WORK/pop3load.err" ||
            die "warm-up logins failed ($s): $(tail -3 "$WORK/pop3load.err")"
    done
}

# login_table CLIENTS: the medians of one client count.
login_table() {
    c=$1
    n=$(series_median "null$c")
    for s in $(login_series "$c"); do
        m=$(series_median "$s$c")
        q=$(series_median "$s$c.ratio")
        case $s in
        sha) t=600 v=$(verdict "$m" ">=" 600) ;;
        mixed) t=- v=- ;;
        *) t=4500/0.55 v="$(verdict "$m" ">=" 4500)/$(verdict "$q" ">=" 0.55)" ;;
        esac
        printf '   %-20s %4s  %7s  %7s  %5s  %9s  %-13s  %6s  %s\n' \
            "$(login_label "$s")" "$c" "$m" "$n" "$q" "$t" "$v" \
            "$(series_median "$s$c.p99")" \
            "$(awk '{ s += $1 } END { print s + 0 }' "$WORK/fig.$s$c.err")"
    done
}

# login_cpu_table CLIENTS
login_cpu_table() {
    c=$1
    for s in null $(login_series "$c"); do
        if [ "$s" = null ]; then q=- v=
        else
            q=$(series_median "$s$c.cpuratio")
            case $s in
            sha|mixed) v= ;;
            *) v=" (<= 80: $(verdict "$(series_median "$s$c.cpu")" "<=" 80))" ;;
            esac
        fi
        printf '   %-20s %4s  %7s  %5s  %6s  %6s%%  %s%s\n' "$(login_label "$s")" "$c" \
            "$(series_median "$s$c.cpu")" "$(series_median "$s$c.rcpu")" \
            "$(series_median "$s$c.ccpu")" "$(series_median "$s$c.others")" "$q" "$v"
    done
}

bench_login() {
    GRANTS_OK=0 GRANTS_BAD=0
    say ""
    say "== pop3d login storm: connect, USER, PASS, STAT, QUIT; $NUSERS users with 2 messages each,"
    say "   clients from $NSRC addresses; $RUNS runs of $SECS s per figure, interleaved."
    if wants login; then
        say "   Users files: {PLAIN} only, {SHA512-CRYPT} only, and (16 clients) both mixed,"
        say "   each served by a pop3d of its own"
    fi
    [ "$POP3D_LOOPS" = yes ] &&
        say "   loops: \"{PLAIN}\" runs with loops = 1, beside {PLAIN} with loops = 2 (issue 14)"
    login_warmup
    for c in 16 256; do
        r=1
        while [ "$r" -le "$RUNS" ]; do
            storm "null$c" "$NULLPOP_PORT" "$NULLPOP_PID" "$c" p
            nrate=$(kv rate "$OUT")
            ncpu=$(series_last "null$c.cpu")
            line="nullpop $nrate/s err=$(kv errors "$OUT")"
            for s in $(login_series "$c"); do
                checked_storm "$s" "$c"
                record "$s$c.ratio" "$(ratio "$(kv rate "$OUT")" "$nrate" 3)"
                record "$s$c.cpuratio" "$(ratio "$(series_last "$s$c.cpu")" "$ncpu" 2)"
                line="$line | $(login_label "$s") $LAST"
            done
            say "   run $r/$RUNS, $c clients: $line"
            r=$((r + 1))
        done
    done
    say ""
    say "   median logins/s       clients    pop3d  nullpop  ratio     target  verdict        p99 ms  errors"
    for c in 16 256; do login_table "$c"; done
    say "   (ratio: median of the per-run ratios, each run paired with the nullpop run before it;"
    say "   targets: issue 3's rate, and for {PLAIN} issue 13's ratio: >= 4500/s and >= 0.55)"
    say ""
    say "   median CPU time per login, us  clients   server  redis  client  others  server/nullpop"
    for c in 16 256; do login_cpu_table "$c"; done
    say "   (server: utime + stime of the process, all threads, from /proc/PID/stat, over the"
    say "   logins of the run; server/nullpop: median of per-run ratios; issue 13: <= 80 us per"
    say "   {PLAIN} login; 2 cores give 2,000,000 us of CPU a second; \"others\": every other"
    say "   process on the machine, during the runs, as a share of both cores: the machine is shared)"
    if wants login; then
        say "   so one {SHA512-CRYPT} check costs about $(awk -v a="$(series_median sha16.cpu)" \
            -v b="$(series_median plain16.cpu)" 'BEGIN { printf "%.2f", (a - b) / 1000 }') ms of CPU here (issue 3 assumed 2.2 ms)"
        say "   a {PLAIN} login costs $(series_median mixed16.cpu) us of pop3d CPU in the mixed file, $(series_median plain16.cpu) us in the {PLAIN}-only"
        say "   file: in a file with hashes a {PLAIN} user pays the costliest hash too (users.c,"
        say "   so that a fast answer does not tell who is {PLAIN}; auth_cache_ttl is off here)"
    fi
    [ "$POP3D_LOOPS" = yes ] && loops_login_summary
    say "   Redis grants checked after each of $((GRANTS_OK + GRANTS_BAD)) pop3d runs: $GRANTS_OK matched the client's login count, $GRANTS_BAD did not"
    if [ -s "$WORK/pop3load.err" ]; then
        say "   first client errors:"
        head -5 "$WORK/pop3load.err" | sed 's/^/     /'
    fi
    return 0
}

# ---- RETR throughput ------------------------------------------------------------

retr_run() {
    "$BENCH/pop3load" -m retr -p "$1" -c "$2" -t "$SECS" -U "$RETR_USERS" \
        -u r -P pw -r "$RETR_MSGS" -a "$2" -b 127.2.0.1 2>>"$WORK/pop3load.err" || true
}

bench_retr() {
    say ""
    say "== pop3d RETR: $RETR_MSGS messages of $MSG_SIZE octets (LF, 76-character lines) per"
    say "   session, plain TCP; message octets received per second; $RUNS runs of $SECS s."
    say "   nullpop sends the same message from memory, with pop3d's socket options"
    say "   (Nagle on), and with TCP_NODELAY (nullpop -n)"
    for c in $RETR_CLIENTS; do
        r=1
        while [ "$r" -le "$RUNS" ]; do
            out=$(retr_run "$NULLPOP_PORT" "$c")
            nrate=$(kv mib_s "$out")
            record "rnull$c" "$nrate"
            null="$nrate MiB/s err=$(kv errors "$out")"
            out=$(retr_run "$NULLPOP_ND_PORT" "$c")
            record "rnd$c" "$(kv mib_s "$out")"
            nd="$(kv mib_s "$out") MiB/s err=$(kv errors "$out")"
            out=$(retr_run "$POP3D_PORT" "$c")
            record "rpop$c" "$(kv mib_s "$out")"
            record "rpop$c.ratio" "$(ratio "$(kv mib_s "$out")" "$nrate" 3)"
            record "rpop$c.err" "$(kv errors "$out")"
            say "   run $r/$RUNS, $c client(s): nullpop $null | nullpop -n $nd | pop3d $(kv mib_s "$out") MiB/s err=$(kv errors "$out") messages=$(kv messages "$out")"
            r=$((r + 1))
        done
    done
    say ""
    say "   median MiB/s    clients   pop3d  nullpop  ratio  nullpop -n  target  verdict  errors"
    for c in $RETR_CLIENTS; do
        m=$(series_median "rpop$c")
        n=$(series_median "rnull$c")
        printf '   RETR 1 MiB       %4s  %6s  %7s  %5s  %10s  >=%-4s  %-7s  %s\n' "$c" "$m" "$n" \
            "$(series_median "rpop$c.ratio")" "$(series_median "rnd$c")" 477 "$(verdict "$m" ">=" 477)" \
            "$(awk '{ s += $1 } END { print s + 0 }' "$WORK/fig.rpop$c.err")"
    done
    say "   (target 500 MB/s = 477 MiB/s; ratio: median of per-run pop3d / nullpop, same socket options)"
}

# ---- idle connections ------------------------------------------------------------

# mem PID: "RSS PSS PRIVATE" in KiB from smaps_rollup.
mem() {
    awk '/^Rss:/ { r = $2 } /^Pss:/ { p = $2 }
         /^Private_(Clean|Dirty):/ { v += $2 }
         END { print r, p, v }' "/proc/$1/smaps_rollup"
}

# idle_hold NAME COUNT [pop3idle options]: on a fresh pop3d, hold COUNT
# connections; print memory per connection and a fresh client's latency.
idle_hold() {
    name=$1 count=$2
    shift 2
    start_pop3d "$name"
    # One login first: worker threads, the Redis connection, the user file
    # and the allocator's arenas exist before the "before" figure.
    "$BENCH/pop3load" -m login -p "$POP3D_PORT" -c 1 -N 4 -U "$NUSERS" -u p -P pw \
        -a 1 -b 127.4.0.1 >/dev/null 2>>"$WORK/pop3load.err" || die "idle warm-up failed"
    sleep 0.5
    before=$(mem "$POP3D_PID")
    bg "$WORK/$name.hold" "$BENCH/pop3idle" -p "$POP3D_PORT" -n "$count" -T 120 "$@"
    hold_pid=$BG_PID
    i=0
    until grep -q '^held=' "$WORK/$name.hold"; do
        i=$((i + 1))
        [ "$i" -lt 1200 ] || die "pop3idle did not get its connections"
        sleep 0.05
    done
    setup=$(kv seconds "$(grep '^held=' "$WORK/$name.hold" | head -1)")
    sleep 1
    after=$(mem "$POP3D_PID")
    # Users the holder does not use (it takes 0..999 when it logs in).
    probe=$("$BENCH/pop3load" -m login -p "$POP3D_PORT" -c 1 -N 20 -O 1000 \
        -U $((NUSERS - 1000)) -u p -P pw -a 1 -b 127.4.0.2 2>>"$WORK/pop3load.err" || true)
    stop_pid "$hold_pid"
    held=$(tail -1 "$WORK/$name.hold")
    stop_pid "$POP3D_PID"
    # shellcheck disable=SC2086 # "RSS PSS PRIVATE" twice, split on purpose
    set -- $before $after
    rss=$(( ($4 - $1) * 1024 / count ))
    pss=$(( ($5 - $2) * 1024 / count ))
    priv=$(( ($6 - $3) * 1024 / count ))
    say "   $count connections set up in ${setup}s; pop3d before: RSS $1 KiB, after: RSS $4 KiB"
    say "   per connection: RSS $rss B, PSS $pss B, private $priv B  (target < 16384 B: $(verdict "$priv" "<=" 16384));"
    say "     the kernel's socket buffers come on top (not in the process's memory)"
    say "   fresh client meanwhile, 20 sessions: greeting p50 $(kv greet_p50_ms "$probe") ms, max $(kv greet_max_ms "$probe") ms;"
    say "     login (connect to +OK for PASS) p50 $(kv login_p50_ms "$probe") ms, max $(kv login_max_ms "$probe") ms  (target < 1000 ms: $(verdict "$(kv login_max_ms "$probe")" "<=" 1000)), errors $(kv errors "$probe")"
    say "   holder at the end: $held"
}

bench_idle() {
    say ""
    say "== pop3d idle connections: $IDLE_CONNS held after the greeting (not logged in),"
    say "   from 1000 client addresses; pop3d's memory from /proc/PID/smaps_rollup"
    idle_hold idle "$IDLE_CONNS" -a 1000 -b 127.3.0.1
    say ""
    say "== pop3d idle sessions, logged in: 1000 held after PASS (mailbox snapshot, lock)"
    idle_hold idlelogin 1000 -a 1000 -b 127.3.0.1 -l -U 1000 -u p -P pw
}
