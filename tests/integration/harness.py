"""Starts the real jobcast binaries on loopback and talks to them as clients do.

Every process started here is killed when the test ends (addCleanup), and
waits are conditions polled against a deadline, never bare sleeps.
"""

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import msgpack
import zmq

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts"))
import redis_cluster  # noqa: E402

BIN = os.environ.get("JOBCAST_BIN", os.path.join(os.path.dirname(__file__), "../../build/test/bin"))
HERE = os.path.dirname(os.path.abspath(__file__))
LOG_TAIL = 60  # lines of each process's log printed when a test fails


def wait_until(predicate, timeout=20.0, interval=0.02, what="condition"):
    """Polls predicate() until it returns a truthy value or the deadline passes."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Process:
    """A child process whose stderr is collected line by line in a thread."""

    def __init__(self, argv, env=None, name=None):
        self.argv = argv
        self.name = name or os.path.basename(argv[0])
        full_env = dict(os.environ)
        full_env.update(env or {})
        self.lines = []
        self._cond = threading.Condition()
        self.proc = subprocess.Popen(
            argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=full_env,
            start_new_session=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for raw in self.proc.stderr:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            with self._cond:
                self.lines.append(line)
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def wait_for_line(self, pattern, timeout=30.0):
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self.lines:
                    m = regex.search(line)
                    if m:
                        return m
                if self.proc.poll() is not None and not self._reader.is_alive():
                    raise AssertionError(
                        f"{self.name} exited ({self.proc.returncode}) before logging "
                        f"/{pattern}/:\n" + "\n".join(self.lines[-40:]))
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"{self.name} did not log /{pattern}/ in {timeout}s:\n"
                        + "\n".join(self.lines[-40:]))
                self._cond.wait(min(left, 0.2))

    def output(self):
        with self._cond:
            return "\n".join(self.lines)

    def alive(self):
        return self.proc.poll() is None

    def kill(self, sig=signal.SIGKILL):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass
        if sig in (signal.SIGKILL, signal.SIGTERM):
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        if self.proc.poll() is not None:
            self._reader.join(timeout=5)
            self.proc.stderr.close()


class Broker(Process):
    def __init__(self, db, http="127.0.0.1:0", zmq="tcp://127.0.0.1:0", args=(), env=None,
                 heartbeat="200ms"):
        argv = [os.path.join(BIN, "jobcast-broker"), "--http", http, "--zmq", zmq, "--db", db,
                "--heartbeat", heartbeat, *args]
        super().__init__(argv, env=env, name="broker")
        m = self.wait_for_line(r"listening http=(\S+) zmq=(\S+)")
        self.http = m.group(1)
        self.zmq = m.group(2)
        self.host, port = self.http.rsplit(":", 1)
        self.port = int(port)
        # An ssl.SSLContext that trusts the broker's certificate, when it serves
        # TLS (--tls-cert): clients made from this broker then speak https/wss.
        self.tls = None


class Worker(Process):
    def __init__(self, endpoint, types, capacity=4, name=None, args=(), env=None):
        argv = [os.path.join(BIN, "jobcast-worker"), "--broker", endpoint, "--types",
                ",".join(types), "--capacity", str(capacity), *args]
        if name:
            argv += ["--name", name]
        super().__init__(argv, env=env, name=name or "worker")


class Client:
    """A minimal JSON-over-HTTP client for Client API v1."""

    def __init__(self, host, port, token=None, tls=None):
        self.host, self.port, self.token, self.tls = host, port, token, tls

    def connection(self, timeout=30):
        if self.tls:
            return http.client.HTTPSConnection(self.host, self.port, timeout=timeout,
                                               context=self.tls)
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def request(self, method, path, body=None, headers=None, raw=None, timeout=30):
        conn = self.connection(timeout)
        try:
            hdrs = {"Content-Type": "application/json"}
            if self.token:
                hdrs["Authorization"] = "Bearer " + self.token
            hdrs.update(headers or {})
            data = raw if raw is not None else (json.dumps(body) if body is not None else None)
            conn.request(method, path, body=data, headers=hdrs)
            resp = conn.getresponse()
            text = resp.read().decode("utf-8")
            try:
                payload = json.loads(text) if text else None
            except ValueError:
                payload = text
            return resp.status, payload, dict(resp.getheaders())
        finally:
            conn.close()

    def submit(self, job_type, params=None, **extra):
        body = {"type": job_type, "params": params or {}}
        body.update(extra)
        status, job, _ = self.request("POST", "/v1/jobs", body)
        assert status == 201, (status, job)
        return job

    def job(self, job_id):
        status, job, _ = self.request("GET", f"/v1/jobs/{job_id}")
        assert status == 200, (status, job)
        return job

    def events(self, job_id, after=0, limit=10000):
        """Every event of the job after `after`, following pages."""
        out = []
        while True:
            status, page, _ = self.request(
                "GET", f"/v1/jobs/{job_id}/events?after={after}&limit={limit}")
            assert status == 200, (status, page)
            out += page["events"]
            if not page["events"]:
                return out
            after = page["events"][-1]["seq"]

    def wait_state(self, job_id, states, timeout=60):
        states = {states} if isinstance(states, str) else set(states)
        return wait_until(lambda: (lambda j: j if j["state"] in states else None)(
            self.job(job_id)), timeout=timeout, interval=0.05,
            what=f"job {job_id} to reach {states}")


def metric(client, name, labels=None):
    """The value of one sample from GET /metrics (sum over matching label sets)."""
    status, text, _ = client.request("GET", "/metrics")
    assert status == 200, status
    total, found = 0.0, False
    for line in text.splitlines():
        if not line.startswith(name):
            continue
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)$", line)
        if not m or m.group(1) != name:
            continue
        if labels:
            got = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
            if any(got.get(k) != v for k, v in labels.items()):
                continue
        total += float(m.group(3))
        found = True
    return total if found else None


# ---- the llm.generate sim backend, ported from workers/jobs/llm_sim.hpp ----

SIM_VOCABULARY = (
    "the a stream of tokens flows through jobcast and every event is stored before it reaches "
    "client worker broker log resumes after crash without gap or duplicate model writes quickly "
    "slowly while browser watches progress in real time with ordered durable messages queue "
    "lease expires retries succeed fail cancel research plan gather read write summary result "
    "data signal noise light river mountain quiet bright").split()
assert len(SIM_VOCABULARY) == 64


def sim_tokens(prompt, seed, n):
    """The tokens the sim backend emits: FNV-1a of the prompt XOR seed seeds splitmix64."""
    mask = 2**64 - 1
    h = 0xcbf29ce484222325
    for c in prompt.encode():
        h = ((h ^ c) * 0x100000001b3) & mask
    s = h ^ (seed & mask)
    out = []
    for i in range(n):
        s = (s + 0x9e3779b97f4a7c15) & mask
        z = s
        z = ((z ^ (z >> 30)) * 0xbf58476d1ce4e5b9) & mask
        z = ((z ^ (z >> 27)) * 0x94d049bb133111eb) & mask
        z ^= z >> 31
        word = SIM_VOCABULARY[z % 64]
        out.append(word if i == 0 else " " + word)
    return out


def sim_text(prompt, seed, n):
    return "".join(sim_tokens(prompt, seed, n))


assert sim_text("hello", 0, 8) == "the write plan ordered fail is research with"


def check_contiguous(test, events):
    seqs = [e["seq"] for e in events]
    test.assertEqual(seqs, list(range(1, len(seqs) + 1)), "seq must be 1..N with no gap")


class JobcastTest(unittest.TestCase):
    """Gives each test a temp dir and helpers that clean up their processes."""

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="jobcast-it-")
        self.addCleanup(self.tmp.cleanup)
        self.db = os.path.join(self.tmp.name, "jobcast.db")
        self.processes = []

    def run(self, result=None):
        # A failing test prints the last lines its broker and workers logged,
        # so a failure in CI explains itself.
        failed_before = len(result.failures) + len(result.errors) if result else 0
        out = super().run(result)
        if result and len(result.failures) + len(result.errors) > failed_before:
            for p in getattr(self, "processes", []):
                with p._cond:
                    tail = p.lines[-LOG_TAIL:]
                print(f"\n--- {self.id()}: last {len(tail)} lines of {p.name} "
                      f"(pid {p.proc.pid}) ---", file=sys.stderr)
                print("\n".join(tail), file=sys.stderr)
        return out

    def start_broker(self, **kw):
        b = Broker(kw.pop("db", self.db), **kw)
        self.processes.append(b)
        self.addCleanup(b.kill)
        return b

    def start_worker(self, broker_or_endpoint, types, **kw):
        endpoint = getattr(broker_or_endpoint, "zmq", broker_or_endpoint)
        w = Worker(endpoint, types, **kw)
        self.processes.append(w)
        self.addCleanup(w.kill)
        return w

    def client(self, broker, token=None):
        return Client(broker.host, broker.port, token, tls=getattr(broker, "tls", None))


@unittest.skipUnless(redis_cluster.available(), "redis-tools is not installed")
class ClusterTestCase(JobcastTest):
    """Gives a test class a Redis Cluster of its own (real redis-server nodes
    on loopback: 3 primaries, one replica each, `node_args` passed to each),
    shut down when the class's tests are done, and brokers on it."""

    node_args = None

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        kw = {"node_args": cls.node_args} if cls.node_args else {}
        cls.cluster = redis_cluster.RedisCluster(primaries=3, replicas=1, **kw)
        cls.cluster.start()

    @classmethod
    def tearDownClass(cls):
        cls.cluster.close()
        super().tearDownClass()

    def cluster_store(self, partitions=16):
        return f"redis-cluster://{self.cluster.seeds()}?partitions={partitions}"

    def start_cluster_broker(self, *args, **kw):
        """A broker on this class's cluster (16 partitions, --retention 1h),
        with `args` added to its command line."""
        return self.start_broker(
            args=["--store", self.cluster_store(), "--retention", "1h", *args], **kw)


class ZmqPeers:
    """Hand-written worker protocol v1 peers for tests: DEALER sockets (or a
    ROUTER posing as a broker), closed when the test ends."""

    def zmq_socket(self, kind):
        sock = zmq.Context.instance().socket(kind)
        sock.setsockopt(zmq.LINGER, 0)
        self.addCleanup(sock.close)
        return sock

    def dealer(self, target, curve=None):
        """A DEALER on a broker's worker port (a Broker or an endpoint);
        `curve` = (server public, public, secret) for a CURVE connection."""
        sock = self.zmq_socket(zmq.DEALER)
        if curve:
            server_public, public, secret = curve
            sock.curve_serverkey = server_public
            sock.curve_publickey = public
            sock.curve_secretkey = secret
        sock.connect(target if isinstance(target, str) else target.zmq)
        return sock

    def recv_type(self, sock, types, timeout=10.0, want=None):
        """The next message whose "t" is in `types` (and satisfies `want`)."""
        types = {types} if isinstance(types, str) else set(types)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            self.assertGreater(left, 0, f"no {types} within {timeout}s")
            if sock.poll(int(left * 1000) + 1):
                m = msgpack.unpackb(sock.recv(), raw=False, strict_map_key=False)
                if m.get("t") in types and (want is None or want(m)):
                    return m

    def hello(self, sock, name, types, inflight=(), session=None, capacity=1):
        m = {"v": 1, "t": "hello", "worker": name, "types": list(types), "capacity": capacity,
             "inflight": list(inflight)}
        if session is not None:
            m["session"] = session
        sock.send(msgpack.packb(m))

    def say_hello(self, sock, name, types):
        """hello, and the welcome that answers it."""
        self.hello(sock, name, types)
        return self.recv_type(sock, "welcome", timeout=5)
