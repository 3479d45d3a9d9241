#!/bin/sh
# Make sure the Debian packages authbridge needs are installed.
# As root with apt-get: install what is missing (one apt-get line).
# Otherwise: print that line and fail, so nothing half-works.
set -eu

# mandoc...: man page lint, unit checks, the fail2ban filter's test
# (make check); debhelper...: Debian packages and their install test (make
# deb, make deb-test); dovecot...: the POP3/IMAP servers and ucspi chains
# whose logins become grants (make check).
PKGS="build-essential pkg-config libevent-dev libssl-dev libhiredis-dev
libcrypt-dev libcmocka-dev libinih-dev redis-server redis-tools
python3 python3-pytest python3-redis curl fetchmail swaks postfix openssl
mandoc systemd fail2ban iproute2
debhelper dpkg-dev fakeroot lintian mmdebstrap
dovecot-pop3d dovecot-imapd ucspi-tcp m4"

missing=""
for p in $PKGS; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
        missing="$missing $p"
    fi
done
[ -z "$missing" ] && exit 0

line="apt-get install -y --no-install-recommends$missing"
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "authbridge: missing Debian packages. As root, run:" >&2
    echo "  $line" >&2
    exit 1
fi
echo "authbridge: installing:$missing" >&2
export DEBIAN_FRONTEND=noninteractive
# A fresh machine may have no package lists yet.
if ! apt-get install -y --no-install-recommends $missing >/dev/null 2>&1; then
    apt-get update -qq
    apt-get install -y --no-install-recommends $missing
fi
