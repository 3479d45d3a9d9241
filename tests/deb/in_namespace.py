"""Runs inside `unshare --mount --net --pid --fork`, as root: installs the
packages into the Debian 12 root ROOT, looks at what they did, starts
both daemons from the installed configuration (as systemd would: in the
foreground, NOTIFY_SOCKET set), talks to them, stops them, purges, and
writes what it saw as JSON to OUT. test_deb_install.py asserts on it.

Private to this process's namespaces: the network (its own loopback, on
which a throw-away redis-server from the host takes 127.0.0.1:6379, the
address of the packaged configuration), the mounts (/proc of the root),
the processes (whatever a maintainer script might have started dies with
the namespace). The machine's own /usr, /etc and services are not used.

    python3 in_namespace.py ROOT OUT
"""

import glob
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time

ROOT, OUT = sys.argv[1], sys.argv[2]
DAEMONS = ("authbridge-pop3d", "authbridge-smtpgate")
CLIENT, OTHER = "192.0.2.10", "192.0.2.11"   # TEST-NET-1, on our own lo
POP3_PORT, POLICY_PORT = 10110, 10031          # the packaged configuration
facts = {}


def sh(*cmd, **kw):
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                         **kw)
    return {"rc": out.returncode, "out": out.stdout, "err": out.stderr}


def chroot(*cmd, **kw):
    return sh("chroot", ROOT, *cmd, **kw)


def processes(names):
    """{pid: comm} of the processes named so, in our pid namespace."""
    found = {}
    for status in glob.glob("/proc/[0-9]*/comm"):
        try:
            comm = open(status).read().strip()
        except OSError:
            continue
        if comm in {n[:15] for n in names}:
            found[int(status.split("/")[2])] = comm
    return found


def uid_of(pid):
    """Real, effective, saved and file-system uid; None once it exited."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("Uid:"):
                    return [int(x) for x in line.split()[1:]]
    except OSError:
        pass
    return None


def wait_port(port, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


# ---- the namespace -------------------------------------------------------------

def setup_namespace():
    # Our own /proc (this pid namespace's processes) and the root's.
    for where in ("/proc", f"{ROOT}/proc"):
        subprocess.run(["mount", "-t", "proc", "proc", where], check=True)
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    for addr in (CLIENT, OTHER):
        subprocess.run(["ip", "addr", "add", f"{addr}/32", "dev", "lo"],
                       check=True)


# ---- install and look ------------------------------------------------------------

def install():
    debs = sorted(os.path.basename(p) for p in glob.glob(f"{ROOT}/tmp/debs/*.deb"))
    facts["debs"] = debs
    facts["install"] = chroot("dpkg", "-i", *[f"/tmp/debs/{d}" for d in debs],
                              env={**os.environ, "DEBIAN_FRONTEND":
                                   "noninteractive"})
    facts["running_after_install"] = processes(DAEMONS)
    facts["status"] = chroot("dpkg-query", "-W", "-f",
                             "${Package} ${db:Status-Abbrev}\n",
                             "authbridge-*")["out"]
    facts["files"] = {p: chroot("dpkg", "-L", p)["out"].split()
                      for p in ("authbridge-common", *DAEMONS)}
    facts["conffiles"] = chroot("dpkg-query", "-W", "-f", "${Conffiles}",
                                "authbridge-common")["out"]
    facts["passwd"] = chroot("getent", "passwd", "authbridge")["out"].strip()
    facts["group"] = chroot("getent", "group", "authbridge")["out"].strip()
    st = os.stat(f"{ROOT}/etc/authbridge/users")
    facts["users_file"] = {"mode": st.st_mode & 0o7777, "uid": st.st_uid,
                           "gid": st.st_gid}
    facts["wants"] = sorted(os.listdir(
        f"{ROOT}/etc/systemd/system/multi-user.target.wants"))
    with open(f"{ROOT}/etc/authbridge/authbridge.conf", "rb") as f:
        facts["conf_md5"] = hashlib.md5(f.read()).hexdigest()
    facts["usr_local"] = sorted(
        os.path.relpath(os.path.join(d, f), ROOT)
        for d, _, fs in os.walk(f"{ROOT}/usr/local") for f in fs)


def check_mode():
    facts["check"] = {p: chroot(f"/usr/{'bin' if p == 'authbridge' else 'sbin'}"
                                f"/{p}", "-t")
                      for p in (*DAEMONS, "authbridge")}


# ---- a real start -----------------------------------------------------------------

def add_customer():
    """What an admin does: a user in the user file, her Maildir with a
    message, owned by the account the daemons run as."""
    with open(f"{ROOT}/etc/authbridge/users", "a") as f:
        f.write("alice:{PLAIN}alice-pw::::/srv/mail/alice::\n")
    md = f"{ROOT}/srv/mail/alice/Maildir"
    for sub in ("cur", "new", "tmp"):
        os.makedirs(f"{md}/{sub}", exist_ok=True)
    with open(f"{md}/new/1700000000.M1P1.test", "w") as f:
        f.write("From: bob@example.net\nSubject: hello\n\nfrom the archive\n")
    chroot("chown", "-R", "authbridge:authbridge", "/srv/mail")


def notify_socket(name):
    """Like systemd's /run/systemd/notify: writable by everyone, since a
    daemon sends its later messages after it dropped privileges."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(f"{ROOT}/run/{name}")
    os.chmod(f"{ROOT}/run/{name}", 0o777)
    s.settimeout(0.2)
    return s


def messages_until(sock, key, timeout=15):
    got, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            got.append(sock.recv(4096).decode())
        except socket.timeout:
            continue
        if any(line == key for line in got[-1].split("\n")):
            break
    return got


def start(daemon, tmp):
    sock = notify_socket(f"{daemon}.notify")
    log = open(f"{tmp}/{daemon}.log", "wb")
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
           "NOTIFY_SOCKET": f"/run/{daemon}.notify"}
    proc = subprocess.Popen(["chroot", ROOT, f"/usr/sbin/{daemon}"],
                            stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                            env=env)
    return proc, sock, log


def pop3_login():
    """APOP (no TLS needed) from CLIENT, the message read, QUIT."""
    import poplib

    class Pop(poplib.POP3):
        def _create_socket(self, timeout):
            return socket.create_connection((self.host, self.port), timeout,
                                            source_address=(CLIENT, 0))
    p = Pop("127.0.0.1", POP3_PORT, timeout=10)
    r = {"welcome": p.getwelcome().decode()}
    r["apop"] = p.apop("alice", "alice-pw").decode()
    r["stat"] = list(p.stat())
    r["retr"] = b"\n".join(p.retr(1)[1]).decode()
    r["quit"] = p.quit().decode()
    return r


def policy(client):
    attrs = {"request": "smtpd_access_policy", "protocol_state": "RCPT",
             "client_address": client, "sender": "alice@example.net",
             "recipient": "friend@remote.example"}
    req = "".join(f"{k}={v}\n" for k, v in attrs.items()) + "\n"
    with socket.create_connection(("127.0.0.1", POLICY_PORT), 10) as s:
        s.sendall(req.encode())
        answer = b""
        while not answer.endswith(b"\n\n"):
            chunk = s.recv(4096)
            if not chunk:
                break
            answer += chunk
    return answer.decode()


def real_start(tmp):
    add_customer()
    redis = subprocess.Popen(
        ["redis-server", "--port", "6379", "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", tmp],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(6379)
    run = {d: start(d, tmp) for d in DAEMONS}
    facts["notify"] = {d: messages_until(run[d][1], "READY=1") for d in DAEMONS}
    facts["pids"] = {d: run[d][0].pid for d in DAEMONS}
    # chroot execs the daemon: the pid is the daemon's.
    facts["uids"] = {d: uid_of(run[d][0].pid) for d in DAEMONS}
    try:
        facts["pop3"] = pop3_login()
    except Exception as e:                      # reported, asserted on
        facts["pop3"] = {"error": repr(e)}
    facts["grant"] = sh("redis-cli", "-p", "6379", "HGETALL",
                        f"authbridge:grant:{CLIENT}")["out"].split()
    facts["show"] = chroot("authbridge", "show", CLIENT)
    facts["policy"] = {"granted": policy(CLIENT), "other": policy(OTHER)}
    facts["exit"] = {}
    for d, (proc, sock, log) in run.items():
        proc.send_signal(signal.SIGTERM)
        try:
            facts["exit"][d] = proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            facts["exit"][d] = "timeout"
        facts["notify"][d] += messages_until(sock, "STOPPING=1", timeout=1)
        log.close()
        facts.setdefault("logs", {})[d] = open(f"{tmp}/{d}.log").read()
    redis.kill()
    redis.wait()


def purge():
    facts["purge"] = chroot("dpkg", "--purge", *DAEMONS, "authbridge-common")
    facts["after_purge"] = {
        "etc_authbridge": os.path.exists(f"{ROOT}/etc/authbridge"),
        "wants": sorted(os.listdir(
            f"{ROOT}/etc/systemd/system/multi-user.target.wants"))
        if os.path.isdir(f"{ROOT}/etc/systemd/system/multi-user.target.wants")
        else [],
        "passwd": chroot("getent", "passwd", "authbridge")["out"].strip(),
    }


def main():
    tmp = f"{ROOT}/tmp/run"
    os.makedirs(tmp, exist_ok=True)
    setup_namespace()
    try:
        install()
        check_mode()
        if facts["install"]["rc"] == 0:
            real_start(tmp)
            purge()
    finally:
        with open(OUT, "w") as f:
            json.dump(facts, f, indent=1, default=str)


if __name__ == "__main__":
    main()
