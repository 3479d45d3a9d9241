"""A Redis Sentinel set for the tests: one master, one replica, three
sentinels, each a real redis-server on loopback.

  Cluster(folder).start()    the set, the replica synced and seen by every
                             sentinel; master_addr(), promoted(), stop()
  cluster                    fixture: a started Cluster, killed at teardown
  sentinel_sections(cluster, **pop3d)   [redis]/[grant] that find the master
                             through the sentinels ([grant] replicas = 1)
  use_sentinels(daemon, cluster)        point a harness daemon's config at
                             the sentinels instead of one address
  NO_REDIS                   the stand-in "redis_server" those daemons get

Short timings keep a failover within a few seconds: a master is judged
down after 800 ms, and full syncs start at once (no diskless-sync delay,
which is 5 s by default in Redis 7).
"""

import subprocess

import pytest
import redis

from conftest import REDIS_SERVER, free_port, wait_until, write_config

MASTER = "mymaster"


def spawn(args, folder, name):
    log = open(folder / f"{name}.log", "ab")
    return subprocess.Popen(args, stdout=log, stderr=log,
                            stdin=subprocess.DEVNULL)


def ping(port):
    try:
        return redis.Redis(port=port, socket_timeout=0.3,
                           socket_connect_timeout=0.3).ping()
    except redis.RedisError:
        return False


class Cluster:
    def __init__(self, folder):
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.master_port, self.replica_port = free_port(), free_port()
        self.sentinel_ports = [free_port() for _ in range(3)]
        self.procs = {}

    def start(self):
        for role, port in (("master", self.master_port),
                           ("replica", self.replica_port)):
            args = [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1",
                    "--save", "", "--appendonly", "no", "--dir",
                    str(self.folder), "--repl-diskless-sync-delay", "0"]
            if role == "replica":
                args += ["--replicaof", "127.0.0.1", str(self.master_port)]
            self.procs[role] = spawn(args, self.folder, role)
            wait_until(lambda p=port: ping(p), 5, what=f"redis {role}")
        r = redis.Redis(port=self.replica_port)
        wait_until(lambda: r.info("replication")["master_link_status"] == "up",
                   10, what="the replica to sync")
        # The replica's side is up before writes flow to it: after a
        # diskless sync the master streams only once the replica's first
        # ACK came (sent once a second); until then a WAIT after a write
        # says 0. One connection (WAIT counts its own writes), no key left.
        m = redis.Redis(port=self.master_port, single_connection_client=True)

        def streaming():
            m.set("sentinel-harness:probe", 1)    # a write replicates
            m.delete("sentinel-harness:probe")
            return m.execute_command("WAIT", 1, 100) >= 1
        wait_until(streaming, 10, interval=0.05,
                   what="the master to stream to its replica")
        m.close()
        for i, port in enumerate(self.sentinel_ports):
            conf = self.folder / f"sentinel{i}.conf"
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\n"
                f"sentinel monitor {MASTER} 127.0.0.1 {self.master_port} 2\n"
                f"sentinel down-after-milliseconds {MASTER} 800\n"
                f"sentinel failover-timeout {MASTER} 4000\n"
                f"sentinel parallel-syncs {MASTER} 1\n")
            self.procs[f"s{i}"] = spawn([REDIS_SERVER, str(conf), "--sentinel"],
                                        self.folder, f"sentinel{i}")
        for port in self.sentinel_ports:
            s = redis.Redis(port=port, decode_responses=True)
            wait_until(lambda s=s: ping(port) and s.execute_command(
                "SENTINEL", "replicas", MASTER), 15,
                what="sentinels to see the replica")
        return self

    def master_addr(self):
        s = redis.Redis(port=self.sentinel_ports[0], decode_responses=True)
        return tuple(s.sentinel_get_master_addr_by_name(MASTER))

    def promoted(self):
        """True once the replica says it is a master (REPLICAOF NO ONE
        done: from here on it takes writes)."""
        try:
            r = redis.Redis(port=self.replica_port, socket_timeout=0.3,
                            socket_connect_timeout=0.3, decode_responses=True)
            return r.execute_command("ROLE")[0] == "master"
        except redis.RedisError:
            return False

    def stop(self):
        for p in self.procs.values():
            if p.poll() is None:
                p.kill()
                p.wait()


@pytest.fixture
def cluster(tmp_path):
    c = Cluster(tmp_path / "cluster")
    try:
        yield c.start()
    finally:
        c.stop()


def sentinel_sections(cluster, **pop3d):
    return {
        "redis": {"sentinels": [f"127.0.0.1:{p}" for p in cluster.sentinel_ports],
                  "master_name": MASTER, "timeout_ms": 500},
        "grant": {"ttl": 1800, "replicas": 1},
        "pop3d": {"node": "e2e-node", **pop3d},
    }


class _NoRedis:
    """What the harness daemons take for their Redis when the sentinels
    name it: no single address, and "running" so that start() waits for
    the daemon's redis_up."""
    address = "127.0.0.1:1"
    running = True


NO_REDIS = _NoRedis()


def use_sentinels(daemon, cluster):
    """Rewrite a harness daemon's config: [redis] and [grant] from the
    sentinels, everything else as it was."""
    daemon.sections.update({k: v for k, v in sentinel_sections(cluster).items()
                            if k != "pop3d"})
    write_config(daemon.config, daemon.sections)
    return daemon
