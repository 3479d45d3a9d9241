"""Whoever can write a Maildir (a shared vmail account, another customer)
may plant links, FIFOs and colliding names in it. None of them is ever
followed or opened in a way that can block, and no message is lost."""

import os
import socket
import threading

from pop3_harness import pop3d, pop3d_factory  # noqa: F401


def login(d, user="alice", pw="secret", source="127.0.0.1"):
    p = d.client(source)
    p.user(user)
    p.pass_(pw)
    return p


def greeting_within(d, seconds, source="127.0.0.2"):
    """Another client is greeted within `seconds` (the loop is not stuck)."""
    s = socket.create_connection(("127.0.0.1", d.port), seconds,
                                 source_address=(source, 0))
    s.settimeout(seconds)
    try:
        return s.recv(100).startswith(b"+OK")
    except socket.timeout:
        return False
    finally:
        s.close()


def retr_all(p):
    """Every listed message's body."""
    count, _ = p.stat()
    return [b"\n".join(p.retr(i)[1]) for i in range(1, count + 1)]


def test_fifo_in_cur_is_skipped_and_never_blocks_the_server(pop3d):
    pop3d.deliver("alice", "Subject: real\n\nhello\n")
    os.mkfifo(pop3d.maildir("alice") / "cur" / "1700000003.fifo,S=5,W=5:2,")
    p = login(pop3d)
    bodies = []
    t = threading.Thread(target=lambda: bodies.extend(retr_all(p)))
    t.start()
    t.join(5)
    assert not t.is_alive(), "RETR of the mailbox hung"
    assert greeting_within(pop3d, 2), "other clients get no greeting"
    assert len(bodies) == 1 and b"hello" in bodies[0]
    p.quit()
    pop3d.wait_log(r"event=maildir_skipped .*user=alice count=1 first=.*"
                   r"1700000003.fifo.*not a regular file")


def test_fifos_in_new_do_not_lock_out_other_logins(pop3d_factory):
    d = pop3d_factory(worker_threads=2)
    for i in range(2):
        os.mkfifo(d.maildir("alice") / "new" / f"170000001{i}.fifo")
    done = []

    def alice():
        login(d).quit()
        done.append("alice")
    t = threading.Thread(target=alice, daemon=True)
    t.start()
    t.join(5)
    assert done == ["alice"], "alice's login hung on the FIFOs"
    # Other users log in as usual.
    p = login(d, "bob", "hunter2", "127.0.0.3")
    p.quit()
    # The FIFOs stay where they were, untouched.
    assert sorted(os.listdir(d.maildir("alice") / "new")) == [
        "1700000010.fifo", "1700000011.fifo"]


def test_symbolic_link_in_cur_is_never_followed(pop3d, tmp_path):
    secret = tmp_path / "someone-elses-mail"
    secret.write_text("root:$6$secret-hash:19000:0:99999:7:::\n")
    os.symlink(secret, pop3d.maildir("alice") / "cur" / "1700000001.evil:2,")
    os.symlink(secret, pop3d.maildir("alice") / "cur" /
               "1700000002.evil,S=40,W=41:2,")
    pop3d.deliver("alice", "Subject: real\n\nhello\n")
    p = login(pop3d)
    bodies = retr_all(p)
    assert len(bodies) == 1 and b"hello" in bodies[0]
    assert not any(b"secret-hash" in b for b in bodies)
    p.quit()
    assert secret.read_text().startswith("root:")        # not touched


def test_symbolic_link_in_new_is_neither_moved_nor_followed(pop3d, tmp_path):
    secret = tmp_path / "shadow"
    secret.write_text("secret-hash\n")
    os.symlink(secret, pop3d.maildir("alice") / "new" / "1700000005.evil")
    p = login(pop3d)
    assert p.stat()[0] == 0
    p.quit()
    assert os.path.islink(pop3d.maildir("alice") / "new" / "1700000005.evil")
    assert os.listdir(pop3d.maildir("alice") / "cur") == []


def test_moving_new_to_cur_never_overwrites_a_message(pop3d):
    md = pop3d.maildir("alice")
    # Same unique part and size: they map to one cur/ name.
    pop3d.deliver("alice", "Subject: one\n\nAAAA\n", name="1700000100.X.host")
    pop3d.deliver("alice", "Subject: two\n\nBBBB\n",
                  name="1700000100.X.host:2,")
    # A new/ message whose cur/ name is already taken by another message.
    pop3d.deliver("alice", "Subject: three\n\nCCCC\n", name="1700000200.Y.host")
    (md / "cur" / "1700000200.Y.host,S=21,W=24:2,").write_bytes(
        b"Subject: four\n\nDDDD\n")
    p = login(pop3d)
    bodies = retr_all(p)
    uidls = [line.split()[1] for line in p.uidl()[1]]
    p.quit()
    for word in (b"AAAA", b"BBBB", b"CCCC", b"DDDD"):
        assert sum(word in b for b in bodies) == 1, (word, bodies)
    assert len(set(uidls)) == 4, uidls
    assert os.listdir(md / "new") == []
    pop3d.wait_log(r"event=maildir_collision .*user=alice renamed=2")


def test_an_interrupted_move_does_not_show_a_message_twice(pop3d):
    """A hard link left in new/ by a move that never removed it: the same
    file, not a second message."""
    md = pop3d.maildir("alice")
    cur = md / "cur" / "1700000300.Z.host,S=20,W=22:2,"
    cur.write_bytes(b"Subject: once\n\nEEEE\n")
    os.link(cur, md / "new" / "1700000300.Z.host,S=20,W=22")
    p = login(pop3d)
    assert p.stat()[0] == 1
    p.quit()
    assert os.listdir(md / "new") == []


def test_a_fifo_planted_as_the_lock_is_broken_not_opened(pop3d):
    """Judging a lock means reading it: a FIFO there would block the
    worker for ever; only a regular file can be a real lock."""
    os.mkfifo(pop3d.maildir("alice") / "authbridge-pop3.lock")
    done = []
    t = threading.Thread(target=lambda: done.append(login(pop3d).quit()),
                         daemon=True)
    t.start()
    t.join(5)
    assert done, "the login hung on the planted lock"
