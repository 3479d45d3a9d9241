"""Metrics under test: the daemons' /metrics read and parsed, and Debian's
own Prometheus run privately to scrape them.

  fetch(port, path)         (status, headers, body) of one HTTP GET
  samples(text)             {(name, frozenset(labels.items())): value}
  families(text)            {name: type} from the "# TYPE" lines
  value(text, name, **labels)
  prometheus_tools()        (prometheus, promtool) from the Debian package,
                            downloaded once into build/debs/ and unpacked
                            once into build/prometheus-root/ (never installed)
  Prometheus(folder, jobs)  a private server scraping {job: port} with the
                            README's scrape configuration; query(expr)
"""

import http.client
import json
import re
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from conftest import REPO, free_port, terminate, wait_until

DEBS = REPO / "build" / "debs"
ROOT = REPO / "build" / "prometheus-root"
# What the README says, and what the test checks the daemons send.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def fetch(port, path="/metrics", source="127.0.0.1", method="GET",
          headers=None):
    """(status, headers, body) of one request from a chosen source
    address (a distinct client)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10,
                                      source_address=(source, 0))
    try:
        conn.request(method, path, headers=headers or {})
        r = conn.getresponse()
        return r.status, r.headers, r.read().decode(errors="replace")
    finally:
        conn.close()


def metrics_text(port):
    status, headers, body = fetch(port)
    assert status == 200, (status, body)
    return body


def samples(text):
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        assert m, f"not a sample line: {line!r}"
        labels = dict(_LABEL.findall(m.group(2) or ""))
        out[(m.group(1), frozenset(labels.items()))] = float(m.group(3))
    return out


def families(text):
    return {f[2]: f[3] for f in (line.split() for line in text.splitlines()
                                 if line.startswith("# TYPE "))}


def value(text, name, **labels):
    return samples(text).get((name, frozenset(labels.items())), None)


# ---- Debian's prometheus, privately -------------------------------------------

def prometheus_tools():
    """prometheus and promtool from Debian's package: fetched once with
    apt-get download, unpacked once with dpkg-deb -x; a second run
    downloads and unpacks nothing."""
    DEBS.mkdir(parents=True, exist_ok=True)
    debs = sorted(DEBS.glob("prometheus_*.deb"))
    if not debs:
        got = subprocess.run(["apt-get", "download", "prometheus"], cwd=DEBS,
                             capture_output=True, text=True, timeout=600)
        debs = sorted(DEBS.glob("prometheus_*.deb"))
        if not debs:
            pytest.fail(f"apt-get download prometheus failed:\n{got.stderr}")
    deb = debs[-1]
    stamp = ROOT / ".unpacked-from"
    if not stamp.exists() or stamp.read_text() != deb.name:
        shutil.rmtree(ROOT, ignore_errors=True)
        subprocess.run(["dpkg-deb", "-x", str(deb), str(ROOT)], check=True,
                       timeout=300)
        stamp.write_text(deb.name)
    return ROOT / "usr/bin/prometheus", ROOT / "usr/bin/promtool"


def readme_scrape_config():
    """The README's scrape configuration, verbatim: the ```yaml block
    that starts with "# prometheus.yml"."""
    readme = (REPO / "README.md").read_text()
    m = re.search(r"```yaml\n(# prometheus\.yml.*?)```", readme, re.S)
    assert m, "README has no ```yaml block starting with # prometheus.yml"
    return m.group(1)


class Prometheus:
    """A private Prometheus on a free loopback port, scraping every
    second, its data in folder."""

    README_PORTS = {"pop3d": "127.0.0.1:9110", "smtpgate": "127.0.0.1:9125"}

    def __init__(self, folder, jobs):
        self.binary, self.promtool = prometheus_tools()
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        config = readme_scrape_config()
        for job, port in jobs.items():
            assert self.README_PORTS[job] in config, job
            config = config.replace(self.README_PORTS[job],
                                    f"127.0.0.1:{port}")
        # The README's jobs as they are; only the interval is the test's.
        self.config = self.folder / "prometheus.yml"
        self.config.write_text("global:\n  scrape_interval: 1s\n"
                               "  scrape_timeout: 1s\n" + config)
        self.log = self.folder / "prometheus.log"
        self.proc = None

    def start(self):
        for _ in range(3):
            self.port = free_port()
            with open(self.log, "ab") as logf:
                self.proc = subprocess.Popen(
                    [str(self.binary), f"--config.file={self.config}",
                     f"--storage.tsdb.path={self.folder / 'data'}",
                     f"--web.listen-address=127.0.0.1:{self.port}"],
                    stdin=subprocess.DEVNULL, stdout=logf, stderr=logf)
            if wait_until(self._ready, 60, interval=0.1,
                          what="Prometheus to be ready") == "ready":
                return self
        pytest.fail(f"Prometheus did not start:\n{self.log.read_text()}")

    def _ready(self):
        if self.proc.poll() is not None:
            if "address already in use" in self.log.read_text():
                return "busy"
            pytest.fail(f"Prometheus exited:\n{self.log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(
                    f"http://127.0.0.1:{self.port}/-/ready", timeout=1) as r:
                return "ready" if r.status == 200 else None
        except OSError:
            return None

    def query(self, expr):
        """The instant vector of expr: [(labels, value)]."""
        url = (f"http://127.0.0.1:{self.port}/api/v1/query?" +
               urllib.parse.urlencode({"query": expr}))
        with urllib.request.urlopen(url, timeout=10) as r:
            body = json.load(r)
        assert body["status"] == "success", body
        return [(s["metric"], float(s["value"][1]))
                for s in body["data"]["result"]]

    def wait_value(self, expr, want, timeout=20):
        """Poll until expr is one sample equal to want; fail showing the
        last answer."""
        deadline = time.monotonic() + timeout
        got = None
        while time.monotonic() < deadline:
            got = self.query(expr)
            if len(got) == 1 and got[0][1] == want:
                return
            time.sleep(0.25)
        pytest.fail(f"Prometheus: {expr} = {got}, wanted {want}")

    def stop(self):
        if self.proc is not None:
            terminate(self.proc)
            self.proc = None
