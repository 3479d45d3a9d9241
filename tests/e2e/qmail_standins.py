#!/usr/bin/python3
"""Stand-ins for qmail's POP3 chain (qmail is not in Debian 12), each
doing its real counterpart's job in the same order, so `authbridge
postlogin` runs in a real checkpassword chain under tcpserver:

  popup HOST SUBPROGRAM...      qmail-popup: greets, reads USER and PASS,
                                runs SUBPROGRAM with "user\\0pass\\0\\0"
                                on descriptor 3 (checkpassword's interface)
  checkpassword PROGRAM...      reads descriptor 3, checks the password
                                (AB_PASSWORDS: "user:pass,..."), sets USER
                                and HOME, execs PROGRAM (exit 1 if wrong)
  pop3d MAILDIR                 qmail-pop3d: the +OK for PASS comes from
                                it; first it notes what it was given (its
                                arguments, environment, and whether the
                                grant was already in Redis) in
                                $AB_RECORD_DIR/<client address>.json
"""

import json
import os
import socket
import sys


def popup(host, sub):
    out = sys.stdout.buffer
    out.write(f"+OK <{os.getpid()}@{host}>\r\n".encode())
    out.flush()
    creds = {}
    for raw in sys.stdin.buffer:
        words = raw.decode().strip().split(" ", 1)
        verb = words[0].upper()
        if verb in ("USER", "PASS") and len(words) == 2:
            creds[verb] = words[1]
            if verb == "USER":
                out.write(b"+OK \r\n")
                out.flush()
                continue
            break
        out.write(b"-ERR authorization first\r\n")
        out.flush()
    r, w = os.pipe()
    os.write(w, f"{creds.get('USER', '')}\0{creds.get('PASS', '')}\0\0"
             .encode())
    os.close(w)
    if r != 3:
        os.dup2(r, 3)
    os.set_inheritable(3, True)
    os.execvp(sub[0], sub)


def checkpassword(prog):
    data = os.read(3, 512).split(b"\0")
    user, password = data[0].decode(), data[1].decode()
    table = dict(p.split(":", 1)
                 for p in os.environ.get("AB_PASSWORDS", "").split(","))
    if table.get(user) != password:
        sys.stdout.write("-ERR authorization failed\r\n")
        sys.exit(1)
    os.environ["USER"] = user
    os.environ["HOME"] = "/nonexistent"
    os.execvp(prog[0], prog)


def grant_now(addr):
    """HGET user of the grant, with a raw RESP request (no redis-py needed
    as the mail user)."""
    try:
        s = socket.create_connection(
            ("127.0.0.1", int(os.environ["AB_REDIS_PORT"])), 2)
        key = f"authbridge:grant:{addr}"
        s.sendall(f"*3\r\n$4\r\nHGET\r\n${len(key)}\r\n{key}\r\n"
                  f"$4\r\nuser\r\n".encode())
        reply = s.recv(4096).decode()
        s.close()
    except OSError:
        return None
    if reply.startswith("$-1"):
        return None
    return reply.split("\r\n")[1]


def pop3d(args):
    addr = os.environ.get("TCPREMOTEIP", "unknown")
    note = {"argv": sys.argv, "env": dict(os.environ),
            "grant_user_at_start": grant_now(addr)}
    with open(os.path.join(os.environ["AB_RECORD_DIR"], f"{addr}.json"),
              "w") as f:
        json.dump(note, f)
    out = sys.stdout.buffer
    out.write(b"+OK \r\n")
    out.flush()
    for raw in sys.stdin.buffer:
        if raw.strip().upper() == b"QUIT":
            out.write(b"+OK \r\n")
            out.flush()
            return
        out.write(b"-ERR stand-in\r\n")
        out.flush()


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "popup":
        popup(sys.argv[2], sys.argv[3:])
    elif mode == "checkpassword":
        checkpassword(sys.argv[2:])
    else:
        pop3d(sys.argv[2:])
