"""The asynchronous grant store (grant.c, redis.c) against a real Redis.

The checks live in grant_store_test.c (built as
$AB_OUT/tests/e2e/grant_store_test); this test starts its Redis, runs it
with the port, and carries out what it asks for: stop the server, start it
again on the same port, freeze it (SIGSTOP) and thaw it.
"""

import subprocess

from conftest import program, read_line

RUN_TIMEOUT = 60          # seconds for the whole program, sanitizers included


def test_async_store_completes_every_call_and_survives_outages(
        redis_server, tmp_path):
    binary = program("tests/e2e/grant_store_test")
    actions = {"stop": redis_server.stop, "start": redis_server.start,
               "pause": redis_server.pause, "resume": redis_server.resume}
    log_path = tmp_path / "grant_store_test.log"
    figures, done = {}, []
    with open(log_path, "w") as log:
        # stderr to a file: the store logs every retried grant, and a full
        # pipe would stall the program.
        proc = subprocess.Popen([str(binary), str(redis_server.port)],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=log, text=True)
        try:
            while True:
                line = read_line(proc, timeout=RUN_TIMEOUT)
                assert line is not None, "grant_store_test hangs"
                if line == "":
                    break
                words = line.split()
                if words[0] == "ACTION":
                    actions[words[1]]()
                    done.append(words[1])
                    proc.stdin.write("done\n")
                    proc.stdin.flush()
                elif words[0] == "FIGURE":
                    figures[words[1]] = float(words[2])
            code = proc.wait(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    for name, value in figures.items():
        print(f"{name:28} {value:10.1f}")
    output = log_path.read_text(errors="replace")
    assert code == 0, output[-4000:]
    assert "FAIL" not in output
    assert done == ["stop", "start", "pause", "resume", "stop", "start",
                    "pause", "resume"]
    assert figures["burst_puts"] == 10000
    bound = figures["timeout_ms"] + figures["slack_ms"]
    assert figures["stopped_worst_ms"] <= bound
    assert figures["hung_worst_ms"] <= bound
    assert figures["hung_worst_ms"] >= figures["timeout_ms"] - 50, \
        "a hung server must be waited for timeout_ms, not given up on early"
