"""The whole point, end to end with the real daemons: a POP3 login at
pop3d gives that address relay rights at smtpgate (and at a real Postfix
asking smtpgate's policy service), right away, for the grant's TTL."""

import os
import shutil
import tempfile
import time
from pathlib import Path


from conftest import wait_until, write_config
from pop3_harness import Pop3d, pop3d_factory  # noqa: F401
from smtp_harness import DENY_HINT, gate_factory, sink  # noqa: F401
from test_smtpgate_postfix import Postfix, postfix, swaks  # noqa: F401

CUSTOMER, NEIGHBOUR = "127.0.5.1", "127.0.5.2"


def check_mail(d, source, user="alice", pw="secret"):
    p = d.client(source)
    p.user(user)
    assert p.pass_(pw).startswith(b"+OK")
    count = p.stat()[0]
    p.quit()
    return count


def relay(gate, source, rcpt="friend@remote.example"):
    with gate.smtp(source) as s:
        s.ehlo("customer.example")
        s.mail("alice@example.net")
        code, text = s.rcpt(rcpt)
        if code == 250:
            assert s.data(b"Subject: hi\r\n\r\nhello\r\n")[0] == 250
        return code, text.decode()


def test_relay_is_refused_until_the_client_checks_mail(pop3d_factory,
                                                       gate_factory, sink):
    pop = pop3d_factory()
    gate = gate_factory()
    code, text = relay(gate, CUSTOMER)
    assert code == 550 and text.startswith("5.7.1 <friend@remote.example>: ")
    assert DENY_HINT in text
    check_mail(pop, CUSTOMER)
    # No wait: the grant was in Redis before pop3d said +OK.
    assert relay(gate, CUSTOMER)[0] == 250
    assert sink.messages()[-1]["rcpts"] == ["friend@remote.example"]
    assert relay(gate, NEIGHBOUR)[0] == 550
    line = gate.wait_log(rf"event=rcpt .*client={CUSTOMER} .*path=grant")
    assert "user=alice" in line


def test_relay_rights_end_with_the_grant(pop3d_factory, gate_factory,
                                         redis_server):
    pop = pop3d_factory(start=False)
    pop.sections["grant"]["ttl"] = 2
    write_config(pop.config, pop.sections)
    pop.start()
    gate = gate_factory()
    check_mail(pop, CUSTOMER)
    assert relay(gate, CUSTOMER)[0] == 250
    time.sleep(2.5)
    assert relay(gate, CUSTOMER)[0] == 550
    check_mail(pop, CUSTOMER)            # checking mail again renews them
    assert relay(gate, CUSTOMER)[0] == 250


def test_postfix_with_the_policy_service(postfix, pop3d_factory,
                                         gate_factory):
    pop = pop3d_factory()
    gate_factory(policy_listen=f"127.0.0.1:{postfix.policy_port}")
    refused = swaks(postfix.port, CUSTOMER)
    assert "554 5.7.1 <bob@remote.example>: Relay access denied" in refused
    check_mail(pop, CUSTOMER)
    accepted = swaks(postfix.port, CUSTOMER)
    assert "<-  250 2.0.0 Ok: queued as" in accepted, accepted
    assert "Relay access denied" in swaks(postfix.port, NEIGHBOUR)


class DeliveringPostfix(Postfix):
    """The provider's MTA as `make run` has it: example.net delivered into
    pop3d's Maildirs (by the virtual agent, as nobody), the rest discarded."""

    def __init__(self, mail_base):
        super().__init__()
        (self.folder / "vmailbox").write_text(
            "alice@example.net alice/Maildir/\ndave@example.net dave/Maildir/\n")
        cf = (self.folder / "main.cf").read_text()
        cf = cf.replace("mydestination = example.net", "mydestination =")
        cf += (f"virtual_mailbox_domains = example.net\n"
               f"virtual_mailbox_base = {mail_base}\n"
               f"virtual_mailbox_maps = texthash:{self.folder}/vmailbox\n"
               f"virtual_uid_maps = static:65534\n"
               f"virtual_gid_maps = static:65534\n")
        (self.folder / "main.cf").write_text(cf)


def test_mail_through_the_gate_is_read_back_over_pop3(redis_server,
                                                      gate_factory):
    world = Path(tempfile.mkdtemp(prefix="ab-loop-"))
    world.chmod(0o755)
    pf = None
    pop = None
    try:
        pop = Pop3d(world, redis_server)
        for root, dirs, files in os.walk(pop.home):
            for n in [root] + [os.path.join(root, x) for x in dirs + files]:
                shutil.chown(n, "nobody", "nogroup")
        for folder in (pop.dir, pop.home.parent):
            folder.chmod(0o755)
        pf = DeliveringPostfix(pop.home)
        pf.start()
        pop.start()
        gate = gate_factory(downstream=f"127.0.0.1:{pf.port}",
                            policy_listen=f"127.0.0.1:{pf.policy_port}")
        with gate.smtp(NEIGHBOUR) as s:       # inbound: from anyone
            s.ehlo("sender.example")
            s.sendmail("someone@remote.example", ["alice@example.net"],
                       b"Subject: through the gate\r\n\r\nread me over POP3\r\n")

        def arrived():
            return check_mail(pop, CUSTOMER) > 0
        wait_until(arrived, 20, interval=0.3, what="Postfix to deliver")
        p = pop.client(CUSTOMER)
        p.user("alice")
        p.pass_("secret")
        _, lines, _ = p.retr(1)
        p.quit()
        assert b"Subject: through the gate" in lines
        assert b"read me over POP3" in lines
        # The gate told Postfix who the client really was (XCLIENT).
        assert f"client=unknown[{NEIGHBOUR}]" in pf.log.read_text()
    finally:
        if pop is not None:
            pop.stop()
        if pf is not None:
            pf.stop()
        shutil.rmtree(world, ignore_errors=True)
