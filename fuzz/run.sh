#!/bin/sh
# `make fuzz`: build every fuzz/fuzz_*.c with clang's libFuzzer (plus
# ASan and UBSan) and run each for $1 seconds (default 60), starting from
# the committed corpus in fuzz/corpus/<target>/. New interesting inputs
# go to build/fuzz/corpus/<target>/ (fold them in with
# `build/fuzz/fuzz_<target> -merge=1 fuzz/corpus/<target> build/fuzz/corpus/<target>`);
# crashes to fuzz/artifacts/ (commit them into fuzz/corpus/<target>/ once
# fixed: make check replays that folder).
# FUZZ_TARGETS="a b" limits the run; FUZZ_JOBS runs that many at once.
set -eu

SECONDS_EACH=${1:-60}
TOP=$(pwd)
B=$TOP/build/fuzz
JOBS=${FUZZ_JOBS:-1}

if ! command -v clang >/dev/null 2>&1 ||
   ! ls /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a >/dev/null 2>&1; then
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
            clang libclang-rt-14-dev >/dev/null
    else
        echo "make fuzz: needs clang and libFuzzer. As root, run:" >&2
        echo "  apt-get install -y --no-install-recommends clang libclang-rt-14-dev" >&2
        exit 1
    fi
fi

PKGS="libevent libevent_openssl libssl libcrypto hiredis libcrypt inih"
CFLAGS="-std=c11 -D_GNU_SOURCE -g -O1 -fno-omit-frame-pointer -I$TOP \
  -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
  $(pkg-config --cflags $PKGS)"
LIBS="$(pkg-config --libs $PKGS) -lpthread"
CORE="$(ls authbridge/*.c | grep -v authbridge/authbridge.c) \
  $(ls pop3d/*.c | grep -v pop3d/main.c) $(ls smtpgate/*.c 2>/dev/null | grep -v smtpgate/main.c || true)"

mkdir -p "$B" "$TOP/fuzz/artifacts"
# One instrumented copy of the core for all targets.
if [ ! -f "$B/core.a" ] || [ -n "$(find authbridge pop3d smtpgate fuzz -newer "$B/core.a" -name '*.[ch]' 2>/dev/null)" ]; then
    rm -rf "$B/obj" && mkdir -p "$B/obj"
    for f in $CORE fuzz/support.c; do
        clang $CFLAGS -fsanitize=fuzzer-no-link -c -o "$B/obj/$(echo "$f" | tr / _).o" "$f"
    done
    # libFuzzer's main must not be in the archive's objects' way.
    rm -f "$B/core.a"
    ar rcs "$B/core.a" "$B"/obj/*.o
fi

targets=${FUZZ_TARGETS:-$(ls fuzz/fuzz_*.c | sed 's|fuzz/fuzz_||; s|\.c$||')}
run_one() {
    t=$1
    clang $CFLAGS -o "$B/fuzz_$t" "fuzz/fuzz_$t.c" "$B/core.a" $LIBS
    mkdir -p "$B/corpus/$t" "fuzz/corpus/$t"
    echo "== fuzz_$t for ${SECONDS_EACH}s"
    "$B/fuzz_$t" -max_total_time="$SECONDS_EACH" -print_final_stats=1 \
        -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="$TOP/fuzz/artifacts/$t-" \
        "$B/corpus/$t" "fuzz/corpus/$t" >"$B/$t.log" 2>&1 || {
        tail -40 "$B/$t.log"
        echo "fuzz_$t FOUND A PROBLEM: input in fuzz/artifacts/" >&2
        return 1
    }
    grep -E "^#[0-9]+.*(DONE|pulse)|stat::number_of_executed_units|stat::peak_rss|cov:" "$B/$t.log" | tail -3
}

# Batches of FUZZ_JOBS targets at a time (POSIX sh has no `wait -n`).
status=0
batch=""
run_batch() {
    for t in $batch; do run_one "$t" & done
    wait || true
}
for t in $targets; do
    batch="$batch $t"
    if [ "$(echo $batch | wc -w)" -ge "$JOBS" ]; then
        run_batch
        batch=""
    fi
done
[ -z "$batch" ] || run_batch
if ls "$TOP"/fuzz/artifacts/* >/dev/null 2>&1; then
    echo "make fuzz: crashing inputs in fuzz/artifacts/" >&2
    status=1
fi
exit $status
