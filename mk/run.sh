#!/bin/sh
# `make run`: a private Redis, pop3d, smtpgate and a downstream Postfix on
# loopback with the demo configuration (conf/authbridge.conf), in the
# foreground. Everything lives under ./run; Ctrl-C stops all of it.
set -eu

TOP=$(pwd)
RUN=$TOP/run
CONF=$TOP/conf/authbridge.conf
BIN=${AB_OUT:-$TOP}
REDIS_PORT=16379
PIDS=""

say() { printf '%s\n' "$*"; }
die() { say "make run: $*" >&2; exit 1; }

cleanup() {
    trap - EXIT INT TERM
    for pid in $PIDS; do kill "$pid" 2>/dev/null || true; done
    sleep 0.3
    for pid in $PIDS; do kill -9 "$pid" 2>/dev/null || true; done
    if [ -f "$RUN/postfix/main.cf" ] && [ "$(id -u)" -eq 0 ]; then
        postfix -c "$RUN/postfix" stop >/dev/null 2>&1 || true
    fi
    wait 2>/dev/null || true
    say "" "authbridge demo stopped."
}
trap cleanup EXIT INT TERM

# Start "$@" in the background with its output in run/logs/NAME.log, and
# check that it is still alive a moment later.
start() {
    name=$1; shift
    "$@" >"$RUN/logs/$name.log" 2>&1 &
    pid=$!
    PIDS="$PIDS $pid"
    sleep 0.3
    kill -0 "$pid" 2>/dev/null || {
        cat "$RUN/logs/$name.log" >&2
        die "$name did not start (is its port in use? see above)"
    }
}

# Postfix's virtual delivery agent writes the demo Maildirs as nobody, and
# never as root: the mail must live where nobody can reach it.
choose_mail_folder() {
    MAIL=$RUN/mail
    [ "$(id -u)" -eq 0 ] || return 0
    mkdir -p "$MAIL"
    if ! runuser -u nobody -- test -x "$MAIL" 2>/dev/null; then
        MAIL=/var/tmp/authbridge-demo/mail
        say "make run: $RUN is not reachable for user nobody; demo mail lives in $MAIL"
    fi
}

prepare() {
    mkdir -p "$RUN/logs" "$RUN/redis" "$RUN/tls"
    choose_mail_folder
    if [ ! -f "$RUN/tls/cert.pem" ]; then
        openssl req -x509 -newkey rsa:2048 -nodes -days 365 \
            -subj /CN=localhost -keyout "$RUN/tls/key.pem" \
            -out "$RUN/tls/cert.pem" >/dev/null 2>&1
    fi
    chmod 600 "$RUN/tls/key.pem"
    sed "s|@MAIL@|$MAIL|g" "$TOP/conf/users.demo" >"$RUN/users"
    chmod 600 "$RUN/users"
    for u in alice bob; do
        mkdir -p "$MAIL/$u/Maildir/cur" "$MAIL/$u/Maildir/new" \
                 "$MAIL/$u/Maildir/tmp"
    done
    if [ -z "$(find "$MAIL/alice/Maildir" -type f | head -n 1)" ]; then
        printf 'From: postmaster@example.net\nTo: alice@example.net\nSubject: Welcome to the authbridge demo\n\nChecking this mail over POP3 gave your address relay rights.\n' \
            >"$MAIL/alice/Maildir/new/1700000000.V1I1M1.demo"
    fi
    [ "$(id -u)" -ne 0 ] || chown -R nobody:nogroup "$MAIL"
}

# A private Postfix that delivers example.net into the demo Maildirs and
# accepts (and discards) everything else: the provider's MTA. smtpgate
# passes it the real client with XCLIENT, so Postfix judges relaying for
# that client too: it asks smtpgate's policy service, as a provider's
# Postfix behind the gate would.
start_postfix() {
    pf=$RUN/postfix
    mkdir -p "$pf/queue" "$pf/data"
    chown postfix "$pf/data"
    cat >"$pf/main.cf" <<PF
compatibility_level = 3.6
queue_directory = $pf/queue
data_directory = $pf/data
maillog_file = $RUN/logs/postfix.log
maillog_file_prefixes = $RUN/logs
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = mx.example.net
mydestination =
mynetworks = 127.0.0.1/32
smtpd_authorized_xclient_hosts = 127.0.0.1
smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated,
    check_policy_service inet:127.0.0.1:10031, reject_unauth_destination
virtual_mailbox_domains = example.net
virtual_mailbox_base = $MAIL
virtual_mailbox_maps = texthash:$pf/vmailbox
virtual_uid_maps = static:65534
virtual_gid_maps = static:65534
default_transport = discard:the demo has no outside network
smtputf8_enable = no
PF
    printf 'alice@example.net alice/Maildir/\nbob@example.net bob/Maildir/\n' >"$pf/vmailbox"
    sed 's/^smtp\( *\)inet\(.*\)smtpd$/127.0.0.1:10025\1inet\2smtpd/' \
        /etc/postfix/master.cf >"$pf/master.cf"
    dirs=$(postconf -h alternate_config_directories)
    case " $dirs " in
        *" $pf "*|*"$pf,"*) ;;
        *) postconf -e "alternate_config_directories = ${dirs:+$dirs, }$pf" ;;
    esac
    postfix -c "$pf" stop >/dev/null 2>&1 || true
    postfix -c "$pf" start >/dev/null 2>&1 || {
        tail -5 "$RUN/logs/postfix.log" >&2 2>/dev/null
        die "the private Postfix did not start (see run/logs/postfix.log)"
    }
}

prepare
"$BIN/pop3d/pop3d" -c "$CONF" -t >/dev/null
start redis redis-server --port $REDIS_PORT --bind 127.0.0.1 --save '' \
    --appendonly no --dir "$RUN/redis"
start pop3d "$BIN/pop3d/pop3d" -c "$CONF"
GATE=no
if [ -x "$BIN/smtpgate/smtpgate" ]; then
    if [ "$(id -u)" -eq 0 ]; then
        start_postfix
        start smtpgate "$BIN/smtpgate/smtpgate" -c "$CONF"
        GATE=yes
    else
        say "make run: smtpgate's demo needs a private Postfix, which needs root;"
        say "          starting Redis and pop3d only."
    fi
fi

A="$BIN/authbridge/authbridge -c conf/authbridge.conf"
cat <<TOUR

authbridge demo is running; Ctrl-C stops everything. Logs: run/logs/.
  Redis     127.0.0.1:$REDIS_PORT
  pop3d     127.0.0.1:1110 (POP3, STLS), 127.0.0.1:1995 (POP3S)
TOUR
if [ "$GATE" = yes ]; then
cat <<TOUR
  smtpgate  127.0.0.1:2525 (SMTP), 2465 (SMTPS), policy 10031, WHOSON 9876,
            socketmap 10032
  Postfix   127.0.0.1:10025, the downstream MTA (delivers example.net)

Try it as a customer whose mail client sits at 127.0.0.2:
 1. Relaying before checking mail is refused (550 5.7.1):
      swaks --server 127.0.0.1:2525 --local-interface 127.0.0.2 \\
            --from alice@example.net --to friend@example.com
 2. Check mail over POP3 - this grants 127.0.0.2 relay rights for 30 min:
      curl --interface 127.0.0.2 pop3://alice:alice-pw@127.0.0.1:1110/1
 3. See the grant:
      redis-cli -p $REDIS_PORT HGETALL authbridge:grant:127.0.0.2
      $A list
 4. Relay again: now accepted (250).
 5. Mail to a local user goes through Postfix into bob's Maildir:
      swaks --server 127.0.0.1:2525 --local-interface 127.0.0.2 \\
            --from alice@example.net --to bob@example.net
      curl pop3://bob:bob-pw@127.0.0.1:1110/1
 6. Watch grants and relay decisions live: $A watch
TOUR
else
cat <<TOUR

Try:
  curl --interface 127.0.0.2 pop3://alice:alice-pw@127.0.0.1:1110/1
  redis-cli -p $REDIS_PORT HGETALL authbridge:grant:127.0.0.2
  $A list
TOUR
fi
say ""
say "Following the daemons' logs:"
tail -n 0 -f "$RUN/logs/pop3d.log" $( [ "$GATE" = yes ] && echo "$RUN/logs/smtpgate.log" ) &
PIDS="$PIDS $!"
wait
