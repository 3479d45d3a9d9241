# authbridge — POP-before-SMTP relay authorization.
#
#   make            build libauthbridge.a and the programs
#   make run        install missing Debian packages (as root), build, start
#                   a private Redis and the daemons on loopback (demo config)
#   make check      the same set-up, then every test (unit + end-to-end)
#   make asan       build with AddressSanitizer + UBSan and run the tests
#   make bench      benchmarks (figures printed)
#   make fuzz       libFuzzer targets, FUZZ_SECONDS each (default 60)
#   make install    PREFIX=/usr/local DESTDIR=
#   make deb        Debian packages in dist/ (dpkg-buildpackage, offline)
#   make deb-test   make deb, then install them into a clean Debian 12 root
#
# CFLAGS, CPPFLAGS and LDFLAGS from the environment are added to ours
# (dpkg-buildflags' hardening flags come in that way).

PREFIX  ?= /usr/local
DESTDIR ?=
BINDIR  ?= $(PREFIX)/bin
SBINDIR ?= $(PREFIX)/sbin
MANDIR  ?= $(PREFIX)/share/man
DOCDIR  ?= $(PREFIX)/share/doc/authbridge
# systemd reads /usr/local/lib/systemd/system too; the packages use /lib.
UNITDIR ?= $(PREFIX)/lib/systemd/system
# The programs look for /etc/authbridge/authbridge.conf whatever PREFIX is.
SYSCONFDIR ?= /etc
CC      ?= cc
PY      := /usr/bin/python3
OUT     ?= .
OBJ     ?= build/obj
OPT     ?= -O2
SAN     ?=

PKGS     = libevent libevent_openssl libssl libcrypto hiredis libcrypt inih
CFLAGS_ALL = -std=c11 -D_GNU_SOURCE $(OPT) -g -Wall -Wextra -Werror \
             -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wformat=2 \
             -fno-strict-aliasing $(SAN) -I. $(shell pkg-config --cflags $(PKGS)) \
             $(CPPFLAGS) $(CFLAGS)
# LDFLAGS before the objects (-Wl,--as-needed only counts that way).
LDFLAGS_ALL = $(SAN) $(LDFLAGS)
LDLIBS_ALL = $(shell pkg-config --libs $(PKGS)) -lpthread
CMOCKA_LIBS = $(shell pkg-config --libs cmocka)

# The admin command: authbridge.c (main) and one cli_*.c per verb group.
CLI_SRC   = authbridge/authbridge.c $(wildcard authbridge/cli_*.c)
CLI_OBJ   = $(CLI_SRC:%.c=$(OBJ)/%.o)
LIB_SRC   = $(filter-out $(CLI_SRC),$(wildcard authbridge/*.c))
LIB_OBJ   = $(LIB_SRC:%.c=$(OBJ)/%.o)
LIB       = $(OUT)/authbridge/libauthbridge.a
CLI       = $(OUT)/authbridge/authbridge

POP3D_SRC = $(wildcard pop3d/*.c)
POP3D_OBJ = $(POP3D_SRC:%.c=$(OBJ)/%.o)
POP3D     = $(OUT)/pop3d/pop3d

GATE_SRC  = $(wildcard smtpgate/*.c)
GATE_OBJ  = $(GATE_SRC:%.c=$(OBJ)/%.o)
GATE      = $(OUT)/smtpgate/smtpgate

# Daemon code minus main.c, as archives: a unit test pulls in only the
# objects it uses (pop3d and smtpgate both have a session_accept()).
POP3D_CORE = $(OBJ)/pop3d-core.a
GATE_CORE  = $(OBJ)/smtpgate-core.a

UNIT_SRC  = $(wildcard tests/unit/test_*.c)
UNIT_BIN  = $(UNIT_SRC:tests/unit/%.c=$(OUT)/tests/unit/%)
FUZZ_TARGETS = $(patsubst fuzz/fuzz_%.c,%,$(wildcard fuzz/fuzz_*.c))
REPLAY_BIN = $(FUZZ_TARGETS:%=$(OUT)/fuzz/replay_%)
BENCH_SRC = $(wildcard bench/*.c)
BENCH_BIN = $(BENCH_SRC:bench/%.c=$(OUT)/bench/%)

PROGRAMS  = $(CLI) $(if $(POP3D_SRC),$(POP3D)) $(if $(GATE_SRC),$(GATE))

.PHONY: all deps run check test unit fuzz-replay e2e asan tsan bench fuzz install clean \
        deb deb-test
.DELETE_ON_ERROR:
# Keep objects made by chained rules (test and fuzz programs) between runs.
.SECONDARY:

all: $(LIB) $(PROGRAMS)

deps:
	@sh mk/deps.sh

$(OBJ)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -MMD -MP -c -o $@ $<

$(LIB): $(LIB_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@
	ar rcs $@ $^

# `why` links smtpgate's decision code (relay.c, rcpt.c, sendermap.c):
# the rules live in one place. The archive gives only what is used.
$(CLI): $(CLI_OBJ) $(GATE_CORE) $(LIB)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LDLIBS_ALL)

$(POP3D): $(POP3D_OBJ) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LDLIBS_ALL)

$(GATE): $(GATE_OBJ) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LDLIBS_ALL)

$(POP3D_CORE): $(filter-out $(OBJ)/pop3d/main.o,$(POP3D_OBJ))
	rm -f $@
	ar rcs $@ $^

$(GATE_CORE): $(filter-out $(OBJ)/smtpgate/main.o,$(GATE_OBJ))
	rm -f $@
	ar rcs $@ $^

$(OUT)/tests/unit/%: $(OBJ)/tests/unit/%.o $(POP3D_CORE) $(GATE_CORE) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(CMOCKA_LIBS) $(LDLIBS_ALL)

# A fuzz target without libFuzzer: replays the committed corpus.
$(OUT)/fuzz/replay_%: $(OBJ)/fuzz/fuzz_%.o $(OBJ)/fuzz/replay.o $(OBJ)/fuzz/support.o \
                      $(POP3D_CORE) $(GATE_CORE) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LDLIBS_ALL)

$(OUT)/bench/%: $(OBJ)/bench/%.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LDLIBS_ALL)

# The async grant store against a real Redis (run by tests/e2e/test_grant_store.py).
$(OUT)/tests/e2e/grant_store_test: $(OBJ)/tests/e2e/grant_store_test.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LDLIBS_ALL)

-include $(shell find $(OBJ) -name '*.d' 2>/dev/null)

# ---- the two commands ------------------------------------------------------

run: deps
	@$(MAKE) --no-print-directory all
	@sh mk/run.sh

check: deps
	@$(MAKE) --no-print-directory all $(BENCH_BIN)
	@$(MAKE) --no-print-directory test

test: unit fuzz-replay e2e

unit: $(UNIT_BIN)
	@set -e; for t in $(UNIT_BIN); do echo "== $$t"; $$t; done

# Every seed and every input that ever crashed a fuzz target, once each.
fuzz-replay: $(REPLAY_BIN)
	@set -e; for t in $(FUZZ_TARGETS); do $(OUT)/fuzz/replay_$$t fuzz/corpus/$$t; done

E2E_ARGS ?=
E2E_BIN  = $(OUT)/tests/e2e/grant_store_test
e2e: $(LIB) $(PROGRAMS) $(E2E_BIN)
	AB_OUT=$(abspath $(OUT)) $(PY) -m pytest -q -p no:cacheprovider $(E2E_ARGS) tests/e2e

asan: deps
	@$(MAKE) --no-print-directory OUT=build/asan OBJ=build/asan/obj OPT=-O1 \
	    SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" \
	    all test

# The loops' shared state under ThreadSanitizer: the multi-loop tests,
# then the daemons' main paths with two loops each (AB_TEST_LOOPS=2).
# Tests that count per-loop things (a cache, a sample, log lines) in the
# order of their own requests are left out.
TSAN_TESTS = test_loops.py test_pop3d_protocol.py test_pop3d_grant.py \
    test_pop3d_process.py test_pop3d_throttle.py test_smtpgate_auth.py \
    test_smtpgate_proxy.py test_smtpgate_process.py test_dovecot_door.py \
    test_metrics.py test_notify.py
# ... and within them, those that need one loop: the MTA connection kept
# for the next session (each loop has its pool), the connection held
# first being the one refused (the kernel picks the loop).
TSAN_ORDERED = \
    test_smtpgate_proxy.py::test_the_next_session_reuses_the_idle_mta_connection \
    test_smtpgate_proxy.py::test_a_reused_connection_that_dies_unanswered_is_replaced \
    test_dovecot_door.py::test_connections_per_address_are_capped
tsan: deps
	@$(MAKE) --no-print-directory OUT=build/tsan OBJ=build/tsan/obj OPT=-O1 \
	    SAN="-fsanitize=thread -fno-omit-frame-pointer" all \
	    build/tsan/tests/e2e/grant_store_test
	AB_OUT=$(abspath build/tsan) AB_TEST_LOOPS=2 $(PY) -m pytest -q \
	    -p no:cacheprovider $(addprefix --deselect tests/e2e/,$(TSAN_ORDERED)) \
	    $(addprefix tests/e2e/,$(TSAN_TESTS))

bench: deps
	@$(MAKE) --no-print-directory all $(BENCH_BIN)
	@AB_OUT=$(abspath $(OUT)) sh bench/run.sh

FUZZ_SECONDS ?= 60
fuzz: deps
	@sh fuzz/run.sh $(FUZZ_SECONDS)

# Program names: authbridge-pop3d and authbridge-smtpgate, not "pop3d",
# which other POP3 servers' packages also use. Units, man pages and
# the fail2ban/logcheck files are named to match. The configuration is
# installed only where there is none yet: never over an admin's file.
MAN8 = man/authbridge.8 man/authbridge-pop3d.8 man/authbridge-smtpgate.8
MAN5 = man/authbridge.conf.5
UNITS = conf/systemd/authbridge-pop3d.service conf/systemd/authbridge-smtpgate.service
install: all
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(BINDIR) $(DESTDIR)$(DOCDIR) \
	    $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(UNITDIR) \
	    $(DESTDIR)$(SYSCONFDIR)/authbridge \
	    $(DESTDIR)$(SYSCONFDIR)/fail2ban/filter.d $(DESTDIR)$(SYSCONFDIR)/fail2ban/jail.d
	install -m 0755 $(CLI) $(DESTDIR)$(BINDIR)/authbridge
	$(if $(POP3D_SRC),install -m 0755 $(POP3D) $(DESTDIR)$(SBINDIR)/authbridge-pop3d)
	$(if $(GATE_SRC),install -m 0755 $(GATE) $(DESTDIR)$(SBINDIR)/authbridge-smtpgate)
	install -m 0644 $(MAN8) $(DESTDIR)$(MANDIR)/man8/
	install -m 0644 $(MAN5) $(DESTDIR)$(MANDIR)/man5/
	for u in $(UNITS); do \
	    sed 's|/usr/sbin/|$(SBINDIR)/|g; s|/etc/authbridge/|$(SYSCONFDIR)/authbridge/|g' \
	        $$u > $(DESTDIR)$(UNITDIR)/$${u##*/}; \
	done
	test -e $(DESTDIR)$(SYSCONFDIR)/authbridge/authbridge.conf || \
	    install -m 0644 conf/authbridge.conf.dist $(DESTDIR)$(SYSCONFDIR)/authbridge/authbridge.conf
	install -m 0644 conf/fail2ban/filter.d/authbridge.conf $(DESTDIR)$(SYSCONFDIR)/fail2ban/filter.d/
	install -m 0644 conf/fail2ban/jail.d/authbridge.conf $(DESTDIR)$(SYSCONFDIR)/fail2ban/jail.d/
	install -m 0644 README.md conf/authbridge.conf conf/postfix-main.cf.sample \
	    conf/logcheck/authbridge $(DESTDIR)$(DOCDIR)/

# Debian packages (mk/deb.sh: a copy of the tree, dpkg-buildpackage -b,
# lintian), then installed into a clean Debian 12 root and started there
# (tests/deb/: mmdebstrap, cached under build/deb-root/).
deb: deps
	@sh mk/deb.sh

deb-test: deb
	$(PY) -m pytest -q -p no:cacheprovider tests/deb

clean:
	rm -rf dist build $(LIB) $(CLI) $(POP3D) $(GATE) $(UNIT_BIN) $(E2E_BIN) \
	    $(REPLAY_BIN) run
