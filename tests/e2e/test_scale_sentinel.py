"""Many hosts, one Redis: three pop3d and two smtpgate processes, each on
its own loopback address (127.0.0.2 to 127.0.0.6), all finding the master
through the same Sentinel set (one master, one replica, three sentinels).

Clients log in from distinct 127.x.y.z source addresses, so every login
is its own grant key (`authbridge:grant:<source>`), and every check names
that address: WHOSON `QUERY <addr>` and the policy service's
`client_address` on each gate, and SMTP `RCPT` from the address itself.

What pop3d promises (pop3d/login.c, authbridge/grant.c):
  - `+OK` is sent only after the grant script was answered by the master
    and, with `[grant] replicas = 1`, after `WAIT 1` was answered.
  - When the write fails (no master reachable, a timeout, `READONLY`),
    the login still gets `+OK` (mail access does not depend on Redis) and
    the grant goes into pop3d's retry queue, written once a master
    answers again.
  - A short `WAIT` (answered by a live master with too few replicas) is
    logged (`grant_wait_short`), not fatal: the grant is on the master.
    A `WAIT` whose connection is lost counts as a failed write
    (`grant_wait_lost`): the grant goes into the retry queue.

What that does not promise: Redis replicates asynchronously, and `WAIT`
only tells whether a replica has a write. A grant whose `WAIT` the
master answered short just before it was killed was answered `+OK` and
may be missing from the promoted replica (logged). The test's bound is
looser than that: at most one login per client thread in flight at the
kill, plus any login whose `WAIT` came back short. So the failover
test asserts every login whose PASS was sent after the master was dead
(that covers every login answered after the promotion) has its grant, and
bounds the loss among the earlier ones by that window; it does not
require the in-flight ones.
"""

import collections
import concurrent.futures
import itertools
import poplib
import re
import smtplib
import socket
import time

import pytest
import redis

from conftest import ClientThreads, wait_until
from pop3_harness import Pop3d
from sentinel_harness import MASTER, NO_REDIS, Cluster, use_sentinels
from smtp_harness import Gate, PySink

POP_HOSTS = ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
GATE_HOSTS = ["127.0.0.5", "127.0.0.6"]
# One user per storm thread, so no mailbox lock is ever contended.
USERS = [f"u{i}" for i in range(6)]
PASSWORD = "pw-scale"
PREFIX = "authbridge:grant:"
STORM_THREADS = 4
PACE_S = 0.01                           # between one thread's logins
# The harness gate trusts 127.0.0.5/32 and 127.0.1.0/24: clients come from
# 127.40.0.0/16 (one login per pop3d) and 127.50.0.0/16 up (the storms).
NOBODY = "127.40.9.9"                   # never logs in


# ---- the hosts -------------------------------------------------------------------

class HostPop3d(Pop3d):
    """A pop3d on its own loopback address, with the storm's users and its
    own node name (the grant records which host wrote it)."""

    def __init__(self, folder, cluster, host, node):
        self.host = host
        super().__init__(folder, NO_REDIS)
        self.sections["pop3d"].update({
            "listen": f"{host}:{self.port}",
            "listen_tls": f"{host}:{self.tls_port}", "node": node})
        use_sentinels(self, cluster)

    def _write_users(self):
        self.users.write_text("".join(
            f"{u}:{{PLAIN}}{PASSWORD}::::{self.home / u}::\n" for u in USERS))
        self.users.chmod(0o600)
        for u in USERS:
            for sub in ("cur", "new", "tmp"):
                (self.home / u / "Maildir" / sub).mkdir(parents=True,
                                                        exist_ok=True)

    def start(self):
        return super().start(address=self.host)


class HostGate(Gate):
    """An smtpgate whose every front door listens on its own address."""

    def __init__(self, folder, cluster, host, node, downstream):
        self.host = host
        super().__init__(folder, NO_REDIS, downstream, node=node)
        use_sentinels(self, cluster)

    def _listen_keys(self):
        return {k: v.replace("127.0.0.1:", f"{self.host}:")
                for k, v in super()._listen_keys().items()}

    def start(self):
        return super().start(address=self.host)


class Fleet:
    def __init__(self, tmp_path):
        self.cluster = Cluster(tmp_path / "cluster")
        self.sink = None
        self.pops, self.gates = [], []

    def start(self, tmp_path):
        self.cluster.start()
        self.sink = PySink()
        self.pops = [HostPop3d(tmp_path / f"pop{i}", self.cluster, h,
                               f"pop{i}") for i, h in enumerate(POP_HOSTS)]
        self.gates = [HostGate(tmp_path / f"mx{i}", self.cluster, h, f"mx{i}",
                               self.sink.address)
                      for i, h in enumerate(GATE_HOSTS)]
        # Five daemons at once: each start() waits for its own redis_up.
        with concurrent.futures.ThreadPoolExecutor(5) as ex:
            for f in [ex.submit(d.start) for d in self.pops + self.gates]:
                f.result()
        for d in self.pops + self.gates:
            assert re.search(rf"event=redis_up redis=127\.0\.0\.1:"
                             rf"{self.cluster.master_port}\(master {MASTER}\)",
                             d.log()), f"{d.name} on {d.host} found no master"
        return self

    def stop(self):
        errors = []
        for d in self.pops + self.gates:
            try:
                d.stop()
            except BaseException as e:    # report every daemon, not the first
                errors.append(e)
        if self.sink:
            self.sink.stop()
        self.cluster.stop()
        if errors:
            raise errors[0]


@pytest.fixture
def fleet(tmp_path):
    f = Fleet(tmp_path)
    try:
        yield f.start(tmp_path)
    finally:
        f.stop()


# ---- clients ----------------------------------------------------------------------

class PopClient(poplib.POP3):
    """poplib to a host's address, from a chosen source address."""

    def __init__(self, host, port, source, timeout=5):
        self._source = source
        super().__init__(host, port, timeout=timeout)

    def _create_socket(self, timeout):
        return socket.create_connection((self.host, self.port), timeout,
                                        source_address=(self._source, 0))


Login = collections.namedtuple("Login", "pop source user sent answered answer")


def pop_login(pop_index, pop, source, user):
    """One USER/PASS login. sent: when PASS went out (None: never);
    answered: when its answer (or the failure) came; answer: bytes, the
    server's line or the client's error."""
    sent, c = None, None
    try:
        c = PopClient(pop.host, pop.port, source)
        c.user(user)
        sent = time.monotonic()
        answer = c.pass_(PASSWORD)
    except poplib.error_proto as e:          # -ERR, or "-ERR EOF" (str)
        answer = e.args[0]
    except OSError as e:                     # refused, reset, timed out
        answer = type(e).__name__
    answered = time.monotonic()
    if isinstance(answer, str):
        answer = answer.encode()
    if c is not None:
        try:
            if answer.startswith(b"+OK"):
                c.quit()
        except (poplib.error_proto, OSError):
            pass                             # the answer is what counts
        c.close()
    return Login(pop_index, source, user, sent, answered, answer)


class Lines:
    """A line-protocol client (WHOSON, policy) to host:port: requests out,
    answers up to the empty line in."""

    def __init__(self, host, port):
        self.sock = socket.create_connection((host, port), 5)
        self.buf = b""

    def request(self, data):
        self.sock.sendall(data)
        while b"\n\n" not in self.buf.replace(b"\r\n", b"\n"):
            chunk = self.sock.recv(65536)
            assert chunk, "the gate closed the connection"
            self.buf += chunk
        answer, self.buf = self.buf.replace(b"\r\n", b"\n").split(b"\n\n", 1)
        return answer.decode()

    def close(self):
        self.sock.close()


def whoson_users(gate, addrs):
    """{addr: user, or None for no grant} as the gate's WHOSON QUERY
    answers (a temporary failure fails the test)."""
    c, out = Lines(gate.host, gate.whoson_port), {}
    try:
        for a in addrs:
            answer = c.request(f"QUERY {a}\r\n\r\n".encode())
            assert answer[:1] in ("+", "-"), f"{gate.host}: {a}: {answer}"
            out[a] = answer[1:] if answer[0] == "+" else None
    finally:
        c.close()
    return out


def policy_action(gate, addr):
    c = Lines(gate.host, gate.policy_port)
    try:
        return c.request(
            (f"request=smtpd_access_policy\nprotocol_state=RCPT\n"
             f"protocol_name=ESMTP\nclient_address={addr}\n"
             f"client_name=unknown\nhelo_name=client.example\n"
             f"sender=x@remote.example\nrecipient=friend@remote.example\n"
             f"\n").encode())
    finally:
        c.close()


def smtp_rcpt(gate, source):
    """The gate's answer to a foreign RCPT from `source`: (code, text)."""
    s = smtplib.SMTP(gate.host, gate.port, timeout=10,
                     source_address=(source, 0))
    try:
        s.ehlo("client.example")
        code, text = s.mail("x@remote.example")
        assert code == 250, text
        return s.rcpt("friend@remote.example")
    finally:
        s.close()


def grants(rdb, addrs):
    """{addr: {field: value}} of what the server holds ({}: no grant)."""
    pipe = rdb.pipeline(transaction=False)
    for a in addrs:
        pipe.hgetall(PREFIX + a)
    return dict(zip(addrs, pipe.execute()))


def assert_recorded(got, logins):
    """Each login's grant names its user and the host that answered it."""
    wrong = [(x, got[x.source]) for x in logins
             if (got[x.source].get("user"), got[x.source].get("node")) !=
             (x.user, f"pop{x.pop}")]
    assert not wrong, wrong[:5]


def assert_every_gate_honours(gates, users):
    """users: {addr: user}. Every gate's WHOSON names that user for each
    address, and knows nobody at NOBODY."""
    for gate in gates:
        assert whoson_users(gate, list(users) + [NOBODY]) == \
            {**users, NOBODY: None}, gate.host


# ---- 1. a grant from any pop3d is honoured by every gate ----------------------------

def test_a_grant_from_any_pop3d_is_honoured_by_every_gate(fleet):
    master = redis.Redis(port=fleet.cluster.master_port,
                         decode_responses=True)
    logins = []
    for i, pop in enumerate(fleet.pops):
        x = pop_login(i, pop, f"127.40.0.{i + 1}", USERS[i])
        assert x.answer.startswith(b"+OK"), x
        logins.append(x)
    # Written to the master before +OK, and on its replica (WAIT 1).
    replica = redis.Redis(port=fleet.cluster.replica_port,
                          decode_responses=True)
    for rdb in (master, replica):
        assert_recorded(grants(rdb, [x.source for x in logins]), logins)

    assert_every_gate_honours(fleet.gates, {x.source: x.user for x in logins})
    for gate in fleet.gates:
        for x in logins:
            assert policy_action(gate, x.source) == "action=OK"
            assert smtp_rcpt(gate, x.source)[0] == 250, (gate.host, x.source)
        assert policy_action(gate, NOBODY) == "action=DUNNO"
        code, text = smtp_rcpt(gate, NOBODY)
        assert code == 550 and b"Relaying denied" in text, (code, text)


# ---- the storm ------------------------------------------------------------------------

class Storm(ClientThreads):
    """Threads logging in over and over, each login from a new source
    address, round robin over the pop3d hosts in `targets` (which the test
    may change). Thread i always logs in as USERS[i], one session at a
    time, so no mailbox lock is ever contended."""

    def __init__(self, pops, threads=STORM_THREADS):
        super().__init__(threads)
        self.pops = pops
        self.targets = list(range(len(pops)))
        self.numbers = itertools.count(0)
        self.logins = []

    @staticmethod
    def source(n):
        return f"127.{50 + n // 62500}.{n // 250 % 250}.{n % 250 + 1}"

    def run(self, i):
        while not self.stop.is_set():
            with self.lock:
                n = next(self.numbers)
                target = self.targets[n % len(self.targets)]
            x = pop_login(target, self.pops[target], self.source(n), USERS[i])
            with self.lock:
                self.logins.append(x)
            # With no master a login is answered in a millisecond: a pause
            # keeps the storm (and the checks after it) a few thousand
            # logins however long the sentinels take to promote.
            self.stop.wait(PACE_S)

    def select(self, pred=lambda x: True, ok=True):
        """The logins answered +OK (ok=False: the others) that pred likes."""
        with self.lock:
            return [x for x in self.logins
                    if x.answer.startswith(b"+OK") == ok and pred(x)]

    def wait_oks(self, pred, n, timeout, what):
        wait_until(lambda: len(self.select(pred)) >= n, timeout,
                   interval=0.05, what=what)


def wait_short_zero(pop):
    """Grant writes a live master said were on no replica (WAIT said 0)."""
    return len(re.findall(r"event=grant_wait_short replicas=0 ", pop.log()))


def wait_written(rdb, logins, timeout, what):
    """Poll until the server holds a grant for every login (the retry
    queue makes one pass a second); the grants."""
    def all_there():
        got = grants(rdb, [x.source for x in logins])
        return got if all(got.values()) else None
    return wait_until(all_there, timeout, interval=0.2, what=what)


# ---- 2. the master dies during a login storm -----------------------------------------

def test_no_login_answered_after_the_master_died_lacks_its_grant(fleet):
    """SIGKILL the master mid-storm. Every login whose PASS went out once the
    master was dead and that was answered +OK has its grant on the promoted
    replica, with its user and host, and every gate honours it: that covers
    every +OK after the promotion, and the ones in between (pop3d answered
    them with the write failed and queued). Of the earlier logins only
    those in flight at the kill may be missing (see the module docstring):
    at most one per client thread, plus any WAIT logged short."""
    cluster = fleet.cluster
    with Storm(fleet.pops) as storm:
        storm.wait_oks(lambda x: True, 30, 10, "the storm to get going")
        kill_sent = time.monotonic()
        cluster.procs["master"].kill()
        cluster.procs["master"].wait()
        dead = time.monotonic()          # from here no write can reach it
        short_before = sum(wait_short_zero(p) for p in fleet.pops)
        wait_until(cluster.promoted, 20, interval=0.01,
                   what="the sentinels to promote the replica")
        promoted = time.monotonic()
        # Go on until every host has answered logins begun after the
        # promotion.
        for i in range(len(fleet.pops)):
            storm.wait_oks(lambda x, i=i: x.pop == i and x.sent > promoted, 3,
                           15, f"pop{i} to answer +OK after the promotion")

    failed = storm.select(ok=False)
    odd = [x for x in failed if not (
        x.answer.startswith((b"-ERR [SYS/TEMP]", b"-ERR [IN-USE]")) or
        x.answer == b"TimeoutError")]
    assert not odd, odd[:5]
    new_master = redis.Redis(port=cluster.replica_port, decode_responses=True)
    assert new_master.execute_command("ROLE")[0] == "master"
    # The sentinels that did not lead the failover hear of it a bit later.
    wait_until(lambda: int(cluster.master_addr()[1]) == cluster.replica_port,
               10, what="the sentinels to agree on the new master")

    after = storm.select(lambda x: x.sent is not None and x.sent > dead)
    got = wait_written(new_master, after, 10,
                       "every grant answered +OK after the kill")
    assert_recorded(got, after)
    # The same, literally: every +OK that came after the promotion (all of
    # them were sent after the kill, or got there through the retry queue).
    late = storm.select(lambda x: x.answered > promoted)
    assert late and all(grants(new_master, [x.source for x in late]).values())

    before = storm.select(lambda x: x.sent is None or x.sent <= dead)
    got_before = grants(new_master, [x.source for x in before])
    lost = [x for x in before if not got_before[x.source]]
    assert len(lost) <= STORM_THREADS + short_before, lost
    # +OK before the kill came after a WAIT that said "on the replica"
    # (or logged it short).
    assert len([x for x in lost if x.answered < kill_sent]) <= short_before, \
        lost
    kept = [x for x in before if got_before[x.source]]
    assert_recorded(got_before, kept)

    # Every gate follows the failover and honours every grant.
    for gate in fleet.gates:
        gate.wait_log(rf"event=redis_up redis=127\.0\.0\.1:"
                      rf"{cluster.replica_port}\(master {MASTER}\)", 10)
    assert_every_gate_honours(fleet.gates,
                              {x.source: x.user for x in after + kept})
    between = [x for x in storm.logins if dead < x.answered < promoted]
    print(f"\nfailover storm: {len(storm.logins)} logins; promoted "
          f"{promoted - dead:.1f}s after the kill; +OK: {len(before)} sent "
          f"before the kill ({len(lost)} lost), {len(after)} after; "
          f"answered between kill and promotion: {len(between)} "
          f"({sum(x.answer.startswith(b'+OK') for x in between)} +OK); "
          f"failed: {len(failed)}")


# ---- 3. one pop3d dies during a login storm -------------------------------------------

def test_a_pop3d_killed_mid_storm_costs_no_other_hosts_grant(fleet):
    """SIGKILL pop0 mid-storm. The other two answer every login (+OK, not
    a single failure), each with its grant on the master; the grants pop0
    answered before it died stay too (written before its +OK), and every
    gate honours them all."""
    master = redis.Redis(port=fleet.cluster.master_port,
                         decode_responses=True)
    victim = fleet.pops[0]
    with Storm(fleet.pops) as storm:
        storm.wait_oks(lambda x: x.pop == 0, 10, 10,
                       "the storm to reach pop0")
        victim.kill()
        dead = time.monotonic()
        with storm.lock:
            storm.targets = [1, 2]
        for i in (1, 2):
            storm.wait_oks(lambda x, i=i: x.pop == i and x.sent > dead, 10,
                           10, f"pop{i} to answer +OK after pop0 died")

    survivors_failed = storm.select(lambda x: x.pop != 0, ok=False)
    assert not survivors_failed, survivors_failed[:5]
    oks = storm.select()
    # Redis was up throughout: pop3d wrote each grant before its +OK
    # (a write that timed out would be logged grant=failed and retried;
    # pop0's retries died with it).
    retried = set(re.findall(r"event=login .*rip=(\S+) .*grant=failed",
                             victim.log()))
    expected = [x for x in oks if x.pop != 0 or x.source not in retried]
    got = wait_written(master, expected, 5, "every grant answered +OK")
    assert_recorded(got, expected)
    assert_every_gate_honours(fleet.gates,
                              {x.source: x.user for x in expected})
    print(f"\npop3d kill storm: {len(storm.logins)} logins, {len(oks)} +OK "
          f"({sum(x.pop == 0 for x in oks)} from pop0 before it died), "
          f"{len(storm.select(ok=False))} failed (all pop0)")
