"""The mailbox: one session at a time, nothing lost to crashes or errors."""

import os
import re
import shutil
import socket
import subprocess
import time
import poplib

import pytest

from conftest import wait_until
from pop3_harness import pop3d, pop3d_factory  # noqa: F401

LOCK = "authbridge-pop3.lock"


def login(d, user="alice", pw="secret", source="127.0.0.1"):
    p = d.client(source)
    p.user(user)
    p.pass_(pw)
    return p


def test_second_session_gets_in_use(pop3d):
    a = login(pop3d)
    b = pop3d.client()
    b.user("alice")
    with pytest.raises(poplib.error_proto, match=r"^b'-ERR \[IN-USE\]"):
        b.pass_("secret")
    a.quit()
    b.user("alice")               # the lock went with the first session
    assert b.pass_("secret").startswith(b"+OK")
    b.quit()


def test_in_use_across_processes_sharing_the_maildir(pop3d_factory):
    first = pop3d_factory()
    second = pop3d_factory(start=False)
    shutil.rmtree(second.home)
    second.home.symlink_to(first.home)
    second.start()
    a = login(first)
    b = second.client()
    b.user("alice")
    with pytest.raises(poplib.error_proto, match=r"IN-USE"):
        b.pass_("secret")
    a.quit()
    b.quit()


def test_lock_is_released_when_the_client_vanishes(pop3d):
    a = login(pop3d)
    a.sock.close()
    a.file.close()
    lock = pop3d.maildir("alice") / LOCK
    wait_until(lambda: not lock.exists(), 5, what="the lock to go")
    login(pop3d).quit()


def test_kill_9_after_dele_loses_nothing(pop3d):
    pop3d.deliver("alice", b"one\n")
    pop3d.deliver("alice", b"two\n")
    p = login(pop3d)
    p.dele(1)
    p.dele(2)
    pop3d.kill()
    assert len(pop3d.files("alice")) == 2
    assert (pop3d.maildir("alice") / LOCK).exists(), "a crash leaves its lock"
    pop3d.start()
    p = login(pop3d)              # the dead process's lock is stale
    assert p.stat()[0] == 2
    p.quit()


def test_kill_9_during_update_leaves_a_usable_mailbox(pop3d):
    bodies = {f"message {i}\n".encode() for i in range(300)}
    for b in bodies:
        pop3d.deliver("alice", b)
    p = login(pop3d)
    for i in range(1, 301):
        p.dele(i)
    p.sock.sendall(b"QUIT\r\n")
    time.sleep(0.002)             # let UPDATE begin, then pull the plug
    pop3d.kill()
    left = pop3d.files("alice")
    assert len(left) <= 300
    pop3d.start()
    p = login(pop3d)
    count, _ = p.stat()
    assert count == len([f for f in left if f != LOCK])
    seen = set()
    for i in range(1, count + 1):
        _, lines, _ = p.retr(i)
        seen.add(b"\n".join(lines) + b"\n")
    assert seen <= bodies         # whatever is left is whole
    for i in range(1, count + 1):
        p.dele(i)
    p.quit()
    assert pop3d.files("alice") == []


def test_stale_lock_from_another_host_is_broken_after_its_time(pop3d):
    lock = pop3d.maildir("alice") / LOCK
    lock.write_text("otherhost 12345 1700000000\n")
    p = pop3d.client()
    p.user("alice")
    with pytest.raises(poplib.error_proto, match="IN-USE"):
        p.pass_("secret")         # fresh: the other host may be reading
    old = time.time() - 301
    os.utime(lock, (old, old))
    p.user("alice")
    assert p.pass_("secret").startswith(b"+OK")
    p.quit()
    assert not lock.exists()


def test_lock_of_a_dead_process_here_is_broken_at_once(pop3d):
    dead = subprocess.Popen(["true"])
    dead.wait()
    host = socket.gethostname()
    (pop3d.maildir("alice") / LOCK).write_text(f"{host} {dead.pid} 1\n")
    login(pop3d).quit()


def test_a_lock_taken_over_by_someone_else_is_left_alone(pop3d):
    p = login(pop3d)
    lock = pop3d.maildir("alice") / LOCK
    lock.unlink()                         # someone judged us dead, broke
    lock.write_text("otherhost 1 1\n")    # our lock and took their own
    p.quit()
    assert lock.read_text() == "otherhost 1 1\n"


def test_message_renamed_by_another_reader_is_still_served(pop3d):
    pop3d.deliver("alice", b"flagged\n", name="1700000100.X.host")
    p = login(pop3d)
    cur = pop3d.maildir("alice") / "cur"
    (name,) = [f for f in os.listdir(cur)]
    os.rename(cur / name, cur / (name + "S"))     # an IMAP server set \Seen
    _, lines, _ = p.retr(1)
    assert lines == [b"flagged"]
    p.dele(1)
    assert p.quit() == b"+OK Bye, 1 message deleted."
    assert os.listdir(cur) == []


def test_message_deleted_by_another_reader(pop3d):
    pop3d.deliver("alice", b"gone soon\n")
    p = login(pop3d)
    cur = pop3d.maildir("alice") / "cur"
    for f in os.listdir(cur):
        os.unlink(cur / f)
    with pytest.raises(poplib.error_proto, match=r"SYS/TEMP"):
        p.retr(1)
    p.dele(1)
    assert p.quit().startswith(b"+OK Bye, 1 message deleted")
    assert "event=message_unreadable" in pop3d.log()


def test_missing_maildir_is_created(pop3d):
    shutil.rmtree(pop3d.maildir("dave"))
    p = login(pop3d, "dave", "dave-pw")
    assert p.stat() == (0, 0)
    p.quit()
    assert (pop3d.maildir("dave") / "new").is_dir()


def test_broken_maildir_gives_sys_temp_and_the_server_goes_on(pop3d):
    cur = pop3d.maildir("alice") / "cur"
    shutil.rmtree(cur)
    cur.write_text("not a folder")
    p = pop3d.client()
    p.user("alice")
    with pytest.raises(poplib.error_proto, match=r"^b'-ERR \[SYS/TEMP\]"):
        p.pass_("secret")
    p.quit()
    assert re.search(r"event=mailbox_error .*user=alice .*error=", pop3d.log())
    login(pop3d, "dave", "dave-pw").quit()


def test_permission_denied_as_unprivileged_user(pop3d_factory):
    d = pop3d_factory(start=False, user="nobody")
    for user in ("alice", "dave"):
        shutil.chown(d.home / user, "nobody", "nogroup")
        for root, dirs, files in os.walk(d.home / user):
            for n in dirs + files:
                shutil.chown(os.path.join(root, n), "nobody", "nogroup")
    for folder in [d.home, *d.home.parents]:     # pytest's tmp is 0700
        if str(folder) in ("/", "/tmp"):
            break
        folder.chmod(folder.stat().st_mode | 0o055)
    (d.maildir("dave") / "cur").chmod(0o700)
    shutil.chown(d.maildir("dave") / "cur", "root", "root")
    d.start()
    assert "event=privileges_dropped user=nobody" in d.log()
    p = d.client()
    p.user("dave")
    with pytest.raises(poplib.error_proto, match="SYS/TEMP"):
        p.pass_("dave-pw")
    p.quit()
    assert "Permission denied" in d.log()
    login(d).quit()               # alice's mailbox is fine


def fill_inodes(md):
    i = 0
    try:
        while True:
            (md / "tmp" / f"fill{i}").write_bytes(b"")
            i += 1
    except OSError:
        pass


def fill_blocks(md):
    try:
        with open(md / "tmp" / "fill", "wb") as f:
            while True:
                f.write(b"x" * 4096)
                f.flush()
    except OSError:
        pass


@pytest.mark.parametrize("fill", [fill_inodes, fill_blocks],
                         ids=["no inode for the lock", "no block for its token"])
def test_disk_full_gives_sys_temp(pop3d_factory, tmp_path, fill):
    d = pop3d_factory(start=False)
    md = d.maildir("alice")
    shutil.rmtree(md)
    md.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k,nr_inodes=8",
                    "tmpfs", str(md)], check=True)
    try:
        for sub in ("cur", "new", "tmp"):
            (md / sub).mkdir()
        fill(md)
        d.start()
        p = d.client()
        p.user("alice")
        with pytest.raises(poplib.error_proto, match="SYS/TEMP"):
            p.pass_("secret")
        p.quit()
        assert "No space left on device" in d.log()
        assert sorted(os.listdir(md)) == ["cur", "new", "tmp"]   # no debris
        login(d, "dave", "dave-pw").quit()
    finally:
        d.stop()
        if subprocess.run(["umount", str(md)]).returncode != 0:
            subprocess.run(["umount", "-l", str(md)])
