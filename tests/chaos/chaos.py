#!/usr/bin/env python3
"""Chaos and soak harness: the guarantees of DESIGN.md under hostile faults.

Starts a broker on a fresh database, several jobcast-worker processes (llm
sim, research, exec), WebSocket and SSE subscribers, submits a stream of jobs
and, for a bounded time, injects faults on a schedule drawn from a seeded RNG
(printed; `--seed N` replays the schedule):

  broker_kill   SIGKILL the broker, restart it on the same database and ports
                (sometimes after up to 3 s away)
  worker_kill   SIGKILL a worker, start a replacement
  worker_stop   SIGSTOP a worker for longer than its lease, then SIGCONT (a zombie)
  broker_stop   SIGSTOP the broker for longer than a lease, then SIGCONT (its
                workers were not silent: their own messages waited in the socket)
  sub_drop      cut a subscriber's connection; it resumes with its last seq
  sub_stall     a subscriber stops reading for a while
  late_subscribe  a new subscriber joins a running job after a random seq
  cancel        cancel a random job
  dup_submit    submit again with an Idempotency-Key already used
  link_cut      (with --netns, as root) cut the worker<->broker link of the
                workers that run in a network namespace, then restore it

--cluster runs the same on a Redis Cluster (scripts/redis_cluster.py: 3
primaries, 1 replica each, node timeout 1.5 s) with 3 brokers on it
(--store redis-cluster://...) and workers that list every broker (each its
own broker first); subscribers connect to random brokers, submits go to random
brokers. There broker_kill SIGKILLs one broker and restarts it 1-8 s later, and
these faults are added (one Redis fault at a time; one that comes while the
last is healing is skipped and counted):

  primary_kill  SIGKILL the primary of a shard holding unfinished jobs; its
                replica is promoted; restart the old node (it rejoins as replica)
  replica_kill  SIGKILL a shard's replica: its writes must pause (nothing new
                visible on that shard) until the replica is back
  primary_stop  SIGSTOP a primary until its replica is promoted, then SIGCONT
                (it comes back as a replica)
  cross_cancel  cancel a job on another broker than the one it was submitted to
  cross_dup_submit  dup_submit sent to other brokers than the job's

--faults selects the kinds (default: every kind of the mode).

Then it checks from the outside, and exits 1 (printing the seed) on any
violation: every job is terminal (or legitimately still running); every
job's log has seq 1..N; each attempt's output is exactly the deterministic
output of its job type from where the attempt resumed (so every chunk a
worker had acknowledged is in the log once and in order, and nothing was
lost); no event lies outside a lease (a zombie's writes after its lease was
lost); every subscriber's reassembled stream equals the stored log, and at the end
every log read back again is byte-equal (canonical JSON) to every stream and
to the log as it was checked (nothing seen was later lost or rewritten); one
job per Idempotency-Key; cancelled exec jobs left no processes; broker RSS and
WAL size (Redis memory and cluster state with --cluster) stayed within bounds.

--duration 3600 --soak reports RSS, fd count, WAL size and p99 delivery
latency every --report-every seconds.
"""

import argparse
import binascii
import hashlib
import http.client
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
sys.path.insert(0, os.path.join(HERE, "..", "..", "scripts"))

from harness import Broker, Client, Worker, free_port, metric, sim_tokens  # noqa: E402
from redis_cluster import RedisCluster  # noqa: E402
from test_streaming import TERMINAL, WsClient, is_terminal  # noqa: E402

FAULT_KINDS = ("broker_kill", "worker_kill", "worker_stop", "sub_drop", "sub_stall",
               "late_subscribe", "cancel", "dup_submit", "link_cut", "broker_stop",
               "primary_kill", "replica_kill", "primary_stop", "cross_cancel", "cross_dup_submit")
CLUSTER_FAULTS = ("primary_kill", "replica_kill", "primary_stop", "cross_cancel",
                  "cross_dup_submit")
REDIS_FAULTS = ("primary_kill", "replica_kill", "primary_stop")
# Mean seconds between two faults of a kind (CI profile); --fault-scale stretches them.
FAULT_MEAN_GAP = {"broker_kill": 25.0, "worker_kill": 11.0, "worker_stop": 14.0,
                  "sub_drop": 2.5, "sub_stall": 8.0, "late_subscribe": 1.0, "cancel": 2.0, "dup_submit": 3.0,
                  "link_cut": 15.0, "broker_stop": 20.0, "primary_kill": 30.0, "replica_kill": 30.0,
                  "primary_stop": 30.0, "cross_cancel": 2.0, "cross_dup_submit": 3.0}
HEARTBEAT_MS = 200
LIVENESS = 3
LEASE_S = HEARTBEAT_MS * LIVENESS / 1000.0
CANCEL_GRACE_MS = 10000  # the broker's: a running job is then cancelled by force
REDIS_NODE_TIMEOUT_MS = 1500  # CLUSTER.md §5.8's value for tests
PARTITIONS = 16
HEAL_TIMEOUT_S = 60  # a Redis fault's shard back to a primary and a synced replica


def log(msg):
    print(f"[chaos {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def poll_until(predicate, timeout, interval=0.25):
    """predicate()'s first truthy value; TimeoutError after `timeout` s.
    (Each Redis poll runs redis-cli on every node: not too often.)"""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError
        time.sleep(interval)


class Violations:
    def __init__(self, quiet=False):
        self.items = []
        self.lock = threading.Lock()
        self.quiet = quiet

    def add(self, what):
        with self.lock:
            self.items.append(what)
            if len(self.items) <= 50 and not self.quiet:
                log("VIOLATION " + what)


def canonical(event):
    """An event's bytes as compared across transports and reads: its JSON with
    sorted keys and no spaces (a WebSocket `event` frame inlines the fields
    that an `events` frame, SSE and REST nest, so raw frames differ)."""
    return json.dumps(event, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def digest(events):
    h = hashlib.sha256()
    for e in events:
        h.update(canonical(e) + b"\n")
    return h.hexdigest()


class PartitionMap:
    """cluster/partitions.cpp in Python: a job's partition is crc32(id) mod P,
    and partition p's hash tag is the first "p<p>.<n>" whose slot lies in the
    p-th of P equal slot ranges; that slot is the job's."""

    def __init__(self, count):
        self.slots = []
        for p in range(count):
            low, high = p * 16384 // count, (p + 1) * 16384 // count
            n = 0
            while not low <= self.key_slot(f"p{p}.{n}") < high:
                n += 1
            self.slots.append(self.key_slot(f"p{p}.{n}"))

    @staticmethod
    def key_slot(key):
        return binascii.crc_hqx(key.encode(), 0) % 16384  # Redis's CRC16 (XMODEM)

    def slot_of(self, job_id):
        return self.slots[zlib.crc32(job_id.encode()) % len(self.slots)]


# ---------------------------------------------------------------- jobs

class JobSpec:
    """What was submitted, and what its worker must produce for it."""

    def __init__(self, kind, params, key, marker=None):
        self.kind, self.params, self.key, self.marker = kind, params, key, marker
        self.id = None
        self.home = None  # the broker that answered its first submit
        self.checked = None  # (events, digest) of the stored log when it was verified
        self.cancelled_at = None  # unix ms when a cancel that was accepted (202) was sent
        self.cancel_kind = None  # the fault that sent it: cancel or cross_cancel
        self.finished_at = None  # monotonic time it was seen terminal
        self.verified = False
        self.streams = []  # (subscriber name, Stream)

    def body(self):
        return {"type": self.kind, "params": self.params, "max_attempts": 6}

    def expected(self, start):
        """The non-state events an attempt resuming at `start` produces, as
        (kind, comparable payload); and the resume notice it logs first."""
        p = self.params
        if self.kind == "llm.generate":
            toks = sim_tokens(p["prompt"], p["seed"], p["max_tokens"])
            out = [("token", t) for t in toks[start:]]
            if start > 0:
                out.insert(0, ("log", f"resuming at token {start} of {p['max_tokens']}"))
            return out
        if self.kind == "research":
            stages, topic = p["stages"], p["topic"]
            n = len(stages)
            out = []
            if start > 0:
                label = f" ({stages[start]})" if start < n else " (done)"
                out.append(("log", f"resuming at stage {start + 1} of {n}{label}"))
            for i in range(start, n):
                s = stages[i]
                out += [("progress", (i / n, s, f"stage {i + 1} of {n}: {s}")),
                        ("log", f"working on {s} for {topic}"), ("log", f"{s} complete"),
                        ("progress", ((i + 1) / n, s, f"finished {s}"))]
            return out
        # exec: every attempt runs the script from the start
        return [("log", "started sh")] + [("log", f"line {i}") for i in range(1, p["lines"] + 1)]

    @staticmethod
    def comparable(event):
        d = event["data"]
        if event["kind"] == "token":
            return ("token", d.get("text"))
        if event["kind"] == "progress":
            return ("progress", (d.get("fraction"), d.get("stage"), d.get("message")))
        if event["kind"] == "log":
            msg = d.get("message", "")
            if msg.startswith("started sh pid="):
                msg = "started sh"
            return ("log", msg)
        return (event["kind"], None)

    def resume_point(self, segment_events):
        """Where an attempt says it resumed (0 when it started over)."""
        if not segment_events or segment_events[0]["kind"] != "log":
            return 0
        msg = segment_events[0]["data"].get("message", "")
        for prefix in ("resuming at token ", "resuming at stage "):
            if msg.startswith(prefix):
                n = int(msg[len(prefix):].split()[0])
                return n if "token" in prefix else n - 1
        return 0

    def completed_units(self, segment_events, start):
        """How far an attempt got: tokens emitted or stages finished."""
        if self.kind == "llm.generate":
            return start + sum(1 for e in segment_events if e["kind"] == "token")
        if self.kind == "research":
            return start + sum(1 for e in segment_events if e["kind"] == "progress"
                               and e["data"].get("message", "").startswith("finished "))
        return 0


def make_job(rng, run_id, n):
    r = rng.random()
    key = f"{run_id}-{n}"
    if r < 0.6:
        params = {"prompt": f"chaos {run_id} {n}", "max_tokens": rng.randint(40, 400),
                  "tokens_per_second": rng.choice([40, 80, 150, 300]), "seed": rng.randint(0, 10**6)}
        return JobSpec("llm.generate", params, key)
    if r < 0.85:
        stages = [f"s{i}" for i in range(rng.randint(2, 5))]
        params = {"topic": f"topic {n}", "stages": stages, "stage_ms": rng.randint(150, 700)}
        return JobSpec("research", params, key)
    marker = f"chaos-{run_id}-{n}"
    lines = rng.randint(5, 25)
    script = f'i=1; while [ $i -le {lines} ]; do echo "line $i"; i=$((i+1)); sleep 0.15; done'
    params = {"command": "sh", "args": ["-c", script, marker], "lines": lines}
    return JobSpec("exec", params, key, marker)


def rendered_text(events):
    """A job's text as a client renders it (the fold of web/client/job_fold.js):
    tokens appended in order; a `running` event cuts the text back to what the
    log held at its resume_seq (none: the attempt starts over)."""
    text, marks = "", [(0, 0)]  # (seq, len(text) after it) of the current attempt
    for event in events:
        if event["kind"] == "token":
            text += event["data"].get("text", "")
            marks.append((event["seq"], len(text)))
        elif event["kind"] == "state" and event["data"].get("state") == "running":
            resume = event["data"].get("resume_seq") or 0
            keep = next((n for seq, n in reversed(marks) if seq <= resume), len(text))
            text = text[:keep if resume else 0]
            marks = [(resume, len(text))]
    return text


# ---------------------------------------------------------------- subscribers

class Stream:
    """What one subscriber received for one job."""

    def __init__(self, job, after=0):
        self.job, self.after = job, after
        self.events = []  # let go of once the job is verified
        self.count = 0  # what stays: how many were received, and their digest
        self.hash = hashlib.sha256()
        self.last = after
        self.done = False
        self.via = None  # the broker it was last (re)subscribed on, for the reports
        self.history = []  # SSE: each (re)connection's answer and when, for the reports

    def take(self, event, violations, who):
        if event["seq"] != self.last + 1:
            violations.add(f"{who} job {self.job}: got seq {event['seq']} after {self.last}")
        self.events.append(event)
        self.count += 1
        self.hash.update(canonical(event) + b"\n")
        self.last = event["seq"]
        if is_terminal(event):
            self.done = True


class WsSubscriber(threading.Thread):
    """One WebSocket connection subscribed to many jobs; reconnects and
    resubscribes each unfinished job after its last seq."""

    def __init__(self, chaos, index):
        super().__init__(daemon=True, name=f"ws{index}")
        self.chaos, self.index = chaos, index
        self.streams = {}
        self.lock = threading.Lock()
        self.client = None
        self.broker = None  # the name of the broker `client` is connected to
        self.stall_until = 0.0
        self.reconnects = 0
        self.ended = 0

    def add(self, job, after=0):
        with self.lock:
            if job in self.streams:
                return None
            stream = self.streams[job] = Stream(job, after)
            if self.client:
                stream.via = self.broker
                self._subscribe(self.client, job, after)
        return stream

    def _subscribe(self, client, job, after):
        try:
            client.send({"op": "subscribe", "job": job, "after": after})
        except Exception:
            pass  # the reader notices the broken connection and resubscribes

    def drop(self):
        with self.lock:
            if self.client:
                try:
                    self.client.ws.sock.shutdown(socket.SHUT_RDWR)
                except Exception:
                    pass

    def stall(self, seconds):
        self.stall_until = time.monotonic() + seconds

    def run(self):
        while not self.chaos.stop_subscribers.is_set():
            broker = self.chaos.pick_broker()
            try:
                client = WsClient(broker.addr, timeout=15)
            except Exception:
                time.sleep(0.2)
                continue
            with self.lock:
                self.client = client
                self.broker = broker.name
                for s in self.streams.values():
                    if not s.done:
                        s.via = broker.name
                        self._subscribe(client, s.job, s.last)
            try:
                self._read(client)
            except Exception:
                pass
            with self.lock:
                self.client = None
            client.close()
            self.reconnects += 1

    def _read(self, client):
        who = f"ws{self.index}"
        for frame_job, item in client.frames():
            while time.monotonic() < self.stall_until:
                time.sleep(0.05)
            if self.chaos.stop_subscribers.is_set():
                return
            if frame_job is None:
                if item["type"] == "close":
                    return
                if item["type"] == "error":
                    # A subscribe beyond what the broker has committed would
                    # mean a client saw an event that was not durable.
                    self.chaos.violations.add(f"{who}: error frame {item}")
                continue
            with self.lock:
                stream = self.streams.get(frame_job)
            if stream is None:
                self.chaos.violations.add(f"{who}: event of a job it never subscribed to")
                continue
            if stream.done:
                self.chaos.violations.add(f"{who} job {frame_job}: event after the terminal one")
                continue
            stream.take(item, self.chaos.violations, who)
            self.chaos.delivered(item)
            if stream.done:
                self.ended += 1
                if self.ended % 3 == 0:
                    # As a client that resubscribes all it knows after a
                    # reconnect: nothing must come, and the server must not
                    # keep the subscription (checked at the end).
                    self._subscribe(client, frame_job, stream.last)


def not_ready(resp):
    """A 503 that says when to ask again: the broker is starting or its
    engine is full; nothing was refused for good."""
    return resp.status == 503 and resp.getheader("Retry-After") is not None


class SseSubscriber(threading.Thread):
    """Follows one job over SSE, resuming with Last-Event-ID after any break."""

    def __init__(self, chaos, job, after=0):
        super().__init__(daemon=True, name=f"sse-{job}")
        self.chaos = chaos
        self.stream = Stream(job, after)
        self.conn = None
        self.stall_until = 0.0
        self.reconnects = 0

    def drop(self):
        conn = self.conn
        if conn and conn.sock:
            try:
                conn.sock.shutdown(socket.SHUT_RDWR)
            except Exception:
                pass

    def stall(self, seconds):
        self.stall_until = time.monotonic() + seconds

    def run(self):
        while not self.stream.done and not self.chaos.stop_subscribers.is_set():
            if self.stream.count or self.reconnects:
                self.reconnects += 1
                self.chaos.sse_reconnects += 1
            try:
                self._follow()
            except Exception as e:
                self.stream.history.append(f"{type(e).__name__} at {time.strftime('%H:%M:%S')} "
                                           f"with {self.stream.count} events")
                time.sleep(0.1)
        if self.stream.done:
            self._after_the_end()

    def _after_the_end(self):
        """A browser's EventSource reconnects when a stream ends, with the
        terminal event's id; the answer must end it for good (204)."""
        for _ in range(50):  # across a broker restart
            broker = self.chaos.pick_broker()
            addr = broker.addr
            conn = http.client.HTTPConnection(addr.host, addr.port, timeout=5)
            try:
                conn.request("GET", f"/v1/jobs/{self.stream.job}/events",
                             headers={"Accept": "text/event-stream",
                                      "Last-Event-ID": str(self.stream.last)})
                resp = conn.getresponse()
                if resp.status == 204:
                    return
                body = resp.read()  # must end soon: there is nothing more
                if not_ready(resp):
                    time.sleep(0.1)  # a broker still starting: ask again
                    continue
                self.chaos.violations.add(
                    f"sse job {self.stream.job}: reconnecting after the terminal event (seq "
                    f"{self.stream.last}) on {broker.name} got HTTP {resp.status} "
                    f"{body[:100]!r} instead of 204")
                return
            except (socket.timeout, TimeoutError):
                self.chaos.violations.add(
                    f"sse job {self.stream.job}: reconnecting after the terminal event (seq "
                    f"{self.stream.last}) on {broker.name} got a stream that does not end")
                return
            except (OSError, http.client.HTTPException):
                time.sleep(0.1)
            finally:
                conn.close()

    def _follow(self):
        broker = self.chaos.pick_broker()
        self.stream.via = broker.name
        addr = broker.addr
        conn = http.client.HTTPConnection(addr.host, addr.port, timeout=15)
        self.conn = conn
        try:
            headers = {"Accept": "text/event-stream"}
            path = f"/v1/jobs/{self.stream.job}/events"
            if self.stream.count:
                headers["Last-Event-ID"] = str(self.stream.last)
            elif self.stream.after:
                path += f"?after={self.stream.after}"  # a first connection mid-stream
            asked = time.strftime('%H:%M:%S')
            conn.request("GET", path, headers=headers)
            resp = conn.getresponse()
            self.stream.history.append(f"{asked} {broker.name} after {self.stream.last}: "
                                       f"HTTP {resp.status} at {time.strftime('%H:%M:%S')}")
            if not_ready(resp):
                # A broker still opening its store (or an engine full) says
                # so with Retry-After; a client asks again, as it does for REST.
                resp.read()
                time.sleep(0.1)
                return
            if resp.status != 200:
                self.chaos.violations.add(
                    f"sse job {self.stream.job}: HTTP {resp.status} resuming after "
                    f"{self.stream.last}: {resp.read()[:200]!r}")
                time.sleep(0.5)
                return
            fields = {}
            while not self.chaos.stop_subscribers.is_set():
                while time.monotonic() < self.stall_until:
                    time.sleep(0.05)
                line = resp.fp.readline()
                if not line:
                    return
                line = line.decode().rstrip("\n")
                if line == "":
                    if "data" in fields:
                        event = json.loads(fields["data"])
                        if str(event["seq"]) != fields.get("id"):
                            self.chaos.violations.add(f"sse: id {fields.get('id')} != seq")
                        self.stream.take(event, self.chaos.violations, "sse")
                        self.chaos.delivered(event)
                        if self.stream.done:
                            return
                    fields = {}
                elif not line.startswith(":"):
                    key, _, value = line.partition(": ")
                    fields[key] = value
        finally:
            self.conn = None
            conn.close()


# ---------------------------------------------------------------- the run

class BrokerAddr:
    def __init__(self, host, port):
        self.host, self.port = host, port
        self.http = f"{host}:{port}"


class NetNs:
    """A network namespace whose workers reach the broker over a veth pair;
    cutting the link is `ip link set <host end> down`."""

    NAME = "jobcast-chaos"

    def __init__(self, pid):
        self.name = f"{self.NAME}-{pid}"
        self.host_if, self.ns_if = f"jc{pid}h", f"jc{pid}n"
        # A /30 of its own per run: 10.200-249.x.y, from the pid.
        prefix = f"10.{200 + (pid >> 14) % 50}.{(pid >> 6) % 256}."
        self.host_ip, self.ns_ip = prefix + str(pid % 64 * 4 + 1), prefix + str(pid % 64 * 4 + 2)

    @classmethod
    def remove_stale(cls):
        """Namespaces of earlier runs that were killed before their cleanup."""
        out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        for line in out.splitlines():
            name = line.split()[0] if line.split() else ""
            if not name.startswith(cls.NAME + "-"):
                continue
            pid = int(name.rsplit("-", 1)[1])
            if not os.path.exists(f"/proc/{pid}"):
                cls(pid).destroy()

    def create(self):
        cmds = [["ip", "netns", "add", self.name],
                ["ip", "link", "add", self.host_if, "type", "veth", "peer", "name", self.ns_if],
                ["ip", "link", "set", self.ns_if, "netns", self.name],
                ["ip", "addr", "add", f"{self.host_ip}/30", "dev", self.host_if],
                ["ip", "link", "set", self.host_if, "up"],
                ["ip", "-n", self.name, "addr", "add", f"{self.ns_ip}/30", "dev", self.ns_if],
                ["ip", "-n", self.name, "link", "set", self.ns_if, "up"],
                ["ip", "-n", self.name, "link", "set", "lo", "up"]]
        for cmd in cmds:
            r = subprocess.run(cmd, capture_output=True, text=True)
            if r.returncode != 0:
                self.destroy()
                return f"{' '.join(cmd)}: {r.stderr.strip()}"
        return None

    def cut(self, down):
        subprocess.run(["ip", "link", "set", self.host_if, "down" if down else "up"],
                       capture_output=True)

    def destroy(self):
        subprocess.run(["ip", "link", "del", self.host_if], capture_output=True)
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)


class BrokerSlot:
    """One broker of the run: its ports stay the same across restarts (the
    workers' endpoint lists name them), its process and client change."""

    def __init__(self, index, db):
        self.index, self.db = index, db
        self.name = f"broker{index}"
        self.http_port, self.zmq_port = free_port(), free_port()
        self.process = None
        self.addr = None
        self.api = None
        self.down = False  # killed, not restarted yet, or stopped (SIGSTOP)


class Chaos:
    def __init__(self, args):
        self.args = args
        self.seed = args.seed if args.seed is not None else random.randrange(2**31)
        self.run_id = f"{self.seed:x}{os.getpid():x}"
        self.violations = Violations()
        self.tmp = tempfile.TemporaryDirectory(prefix="jobcast-chaos-")
        self.db = os.path.join(self.tmp.name, "jobcast.db")
        self.cluster = args.cluster
        self.brokers = [BrokerSlot(i, os.path.join(self.tmp.name, f"jobcast{i}.db"))
                        for i in range(args.brokers if self.cluster else 1)]
        if not self.cluster:
            self.brokers[0].db = self.db
        self.redis = None
        self.partitions = PartitionMap(PARTITIONS)
        self.redis_busy = threading.Lock()  # one Redis fault at a time
        self.fault_threads = []  # faults that end later (a broker restart, a Redis fault)
        self.failovers = []  # seconds from a primary's kill or stop to its replica's promotion
        self.skipped = {k: 0 for k in REDIS_FAULTS}
        self.pick_rng = random.Random(self.seed + 2)  # which broker a request or subscriber uses
        self.broker_lock = threading.Lock()
        self.broker_restarts = []
        self.workers = {}  # slot -> Worker
        self.processes = []  # every broker and worker started, for their logs
        self.expected_exits = set()  # pids the harness killed
        self.worker_gen = {}
        self.killed_workers = set()
        self.stopped = set()
        self.jobs = []  # JobSpec, submitted in order
        self.jobs_lock = threading.Lock()
        self.ws_subs = []
        self.sse_subs = []
        self.faults = {k: 0 for k in FAULT_KINDS}
        self.stop_submitting = threading.Event()
        self.stop_subscribers = threading.Event()
        self.stop_verifier = threading.Event()
        self.stats = self.new_stats()
        self.samples = []  # (t, rss_kib, anon_kib, fds, wal_bytes)
        self.peak = {"rss_kib": 0, "anon_kib": 0, "fds": 0, "wal": 0}
        self.delivered_count = 0
        self.sse_reconnects = 0
        self.netns = None
        self.started = time.monotonic()
        self.hist_prev = None
        self.reported_faults = (0, 0)

    @staticmethod
    def new_stats():
        return {"events": 0, "states": {}, "streams": 0, "retried": 0, "resumed": 0,
                "running": 0, "orphans_of_killed": 0, "error_lines": 0,
                "leases_lost": {"silent": 0, "not_running": 0},
                # fault kind -> [accepted, ended cancelled, latest such end, latest other end]
                "cancels": {}}

    # ---- processes

    def zmq_host(self):
        return self.netns.host_ip if self.netns else "127.0.0.1"

    def broker_args(self, slot):
        args = ["--liveness", str(LIVENESS), "--stall-timeout", "2s", "--keepalive",
                "1s", "--ws-ping-interval", "1s", "--client-queue-bytes", "65536", "--replay-page", "500",
                # The namespace's veth address is not loopback: a
                # broker refuses it without CURVE unless told.
                *(["--insecure-no-curve"] if self.netns else [])]
        if self.cluster:
            args += ["--store", f"redis-cluster://{self.redis.seeds()}?partitions={PARTITIONS}",
                     "--retention", "1h"]
        return dict(http=f"127.0.0.1:{slot.http_port}",
                    zmq=f"tcp://{self.zmq_host()}:{slot.zmq_port}", args=args)

    def start_broker(self, slot):
        b = ChaosBroker(slot.db, **self.broker_args(slot))
        b.name = slot.name
        self.processes.append(b)
        slot.process = b
        slot.addr = BrokerAddr(b.host, b.port)
        slot.api = Client(b.host, b.port)
        slot.down = False
        return b

    def live_brokers(self):
        return [b for b in self.brokers if not b.down and b.api]

    def pick_broker(self, avoid=None):
        """A random live broker (other than `avoid` when there is one)."""
        live = self.live_brokers() or [b for b in self.brokers if b.api]
        others = [b for b in live if b is not avoid]
        return self.pick_rng.choice(others or live)

    def worker_endpoint(self, first=0):
        """Every broker's worker endpoint, the worker's own broker first."""
        order = self.brokers[first:] + self.brokers[:first]
        return ",".join(f"tcp://{self.zmq_host()}:{b.zmq_port}" for b in order)

    def start_worker(self, slot):
        n = self.worker_gen.get(slot, 0) + 1
        self.worker_gen[slot] = n
        kind, index = slot.split("-")
        types = {"llm": ["llm.generate"], "research": ["research"], "exec": ["exec"],
                 "ns": ["llm.generate", "research"],
                 "all": ["llm.generate", "research", "exec"]}[kind]
        args = ["--log-level", "warn"]
        if "exec" in types:
            args += ["--exec-allow", "sh"]
        # In cluster mode worker all-N starts on broker N-1 and fails over along the list.
        endpoint = self.worker_endpoint((int(index) - 1) % len(self.brokers))
        if kind == "ns":
            w = NsWorker(["ip", "netns", "exec", self.netns.name], endpoint, types,
                         f"{slot}.{n}", args)
        else:
            w = Worker(endpoint, types, capacity=6, name=f"{slot}.{n}", args=args)
        self.workers[slot] = w
        self.processes.append(w)
        return w

    # ---- HTTP with retries across broker restarts

    def request(self, method, path, body=None, headers=None, timeout=60, only=None, avoid=None):
        """(broker, status, payload, headers) from `only`, or from a live broker
        other than `avoid`, drawn again for each retry. As a client does, a
        lost connection is tried again, and so is a 503 that says when to
        (Retry-After: a broker still opening its store, an engine full)."""
        deadline = time.monotonic() + timeout
        while True:
            slot = only or self.pick_broker(avoid)
            try:
                answer = slot.api.request(method, path, body, headers=headers, timeout=10)
            except (OSError, http.client.HTTPException):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
                continue
            retry_after = (answer[2] or {}).get("Retry-After") if answer[0] == 503 else None
            if retry_after and time.monotonic() < deadline:
                time.sleep(min(float(retry_after), 1.0))
                continue
            return (slot, *answer)

    def call(self, method, path, body=None, headers=None, timeout=60, only=None, avoid=None):
        return self.request(method, path, body, headers, timeout, only, avoid)[1:]

    def submit(self, spec, only=None, avoid=None):
        slot, status, job, _ = self.request("POST", "/v1/jobs", spec.body(),
                                            headers={"Idempotency-Key": spec.key},
                                            only=only, avoid=avoid)
        if status not in (200, 201):
            self.violations.add(f"submit {spec.key} on {slot.name}: HTTP {status} {job}")
            return None
        if spec.home is None:
            spec.home = slot
        return job

    # ---- monitors

    def sample(self):
        """RSS, fds (of the largest broker) and WAL size."""
        rss = anon = fds = 0
        for slot in self.brokers:
            b = slot.process
            if not b or not b.alive():
                continue
            try:
                with open(f"/proc/{b.proc.pid}/status") as f:
                    status = dict(line.split(":", 1) for line in f)
                # RssAnon is the heap (SQLite's page caches included); the rest of
                # VmRSS is the database mapped by the readers (mmap_size).
                r, a = (int(status[k].split()[0]) for k in ("VmRSS", "RssAnon"))
                n = len(os.listdir(f"/proc/{b.proc.pid}/fd"))
            except (OSError, KeyError, ValueError):
                continue
            rss, anon, fds = max(rss, r), max(anon, a), max(fds, n)
        if not rss:
            return
        try:
            wal = os.path.getsize(self.db + "-wal")
        except OSError:
            wal = 0
        t = time.monotonic() - self.started
        self.samples.append((t, rss, anon, fds, wal))
        self.peak["rss_kib"] = max(self.peak["rss_kib"], rss)
        self.peak["anon_kib"] = max(self.peak["anon_kib"], anon)
        self.peak["fds"] = max(self.peak["fds"], fds)
        self.peak["wal"] = max(self.peak["wal"], wal)

    def delivered(self, event):
        self.delivered_count += 1

    def latency_p99(self):
        """p99 of jobcast_event_delivery_latency_seconds since the last call,
        from the histogram's bucket deltas, over every broker (a broker restart
        resets them)."""
        buckets = {}
        for line in self.metrics_lines():
            if line.startswith("jobcast_event_delivery_latency_seconds_bucket"):
                le = line.split('le="')[1].split('"')[0]
                le = float("inf") if le == "+Inf" else float(le)
                buckets[le] = buckets.get(le, 0.0) + float(line.split()[-1])
        prev, self.hist_prev = self.hist_prev, buckets
        if prev and all(buckets.get(k, 0) >= v for k, v in prev.items()):
            delta = {k: v - prev.get(k, 0) for k, v in buckets.items()}
        else:
            delta = buckets
        total = delta.get(float("inf"), 0)
        if total <= 0:
            return None
        # Linear inside the bucket, as Prometheus's histogram_quantile.
        lower, below = 0.0, 0.0
        for le in sorted(delta):
            if delta[le] >= 0.99 * total:
                if le == float("inf"):
                    return lower
                inside = delta[le] - below
                return lower + (le - lower) * ((0.99 * total - below) / inside if inside else 1)
            lower, below = le, delta[le]
        return None

    # ---- faults

    def schedule(self, duration):
        rng = random.Random(self.seed)
        events = []
        for kind in FAULT_KINDS:
            if kind not in self.args.faults or (kind == "link_cut" and not self.netns):
                continue
            t = 0.0
            gap = FAULT_MEAN_GAP[kind] * self.args.fault_scale
            while True:
                t += rng.expovariate(1.0 / gap)
                if t > duration - 3:
                    break
                events.append((t, kind, rng.random(), rng.random()))
        # Faults start after a short warm-up so that jobs are streaming.
        return sorted((t + 2.0, k, a, b) for t, k, a, b in events if t + 2.0 < duration)

    def pick_worker(self, a):
        """The slot of a worker that is running (not stopped), chosen by `a`."""
        slots = sorted(s for s in self.workers if s not in self.stopped)
        return slots[int(a * len(slots))] if slots else None

    def pick_job(self, a, window, keep):
        """One of the last `window` submitted jobs for which keep() holds, chosen by `a`."""
        with self.jobs_lock:
            found = [j for j in self.jobs[-window:] if j.id and keep(j)] if window else []
        return found[int(a * len(found))] if found else None

    def inject(self, kind, a, b):
        if kind == "broker_kill":
            live = self.live_brokers()
            if not live:
                return False
            slot = live[int(a * len(live))]
            with self.broker_lock:
                slot.down = True
                self.expected_exits.add(slot.process.proc.pid)
                slot.process.kill(signal.SIGKILL)
            if self.cluster:
                # The others serve meanwhile; its workers fail over to them.
                self.later(kind, self.restart_broker, slot, 1 + b * 7)
            else:
                # Away for longer than a lease: workers retry with backoff
                # and must still re-send everything unacknowledged.
                self.restart_broker(slot, (b - 0.7) * 10 if b > 0.7 else 0)
        elif kind == "broker_stop":
            live = self.live_brokers()
            if not live:
                return False
            slot = live[int(a * len(live))]
            with self.broker_lock:
                slot.down = True
                pid = slot.process.proc.pid
                os.kill(pid, signal.SIGSTOP)
                try:
                    time.sleep(LEASE_S * 2 + b * 2.0)  # the fault itself: away past a lease
                finally:
                    os.kill(pid, signal.SIGCONT)
                    slot.down = False
        elif kind in REDIS_FAULTS:
            if not self.redis_busy.acquire(blocking=False):
                self.skipped[kind] += 1
                return False
            self.later(kind, self.redis_fault, kind, a, b)
        elif kind == "worker_kill":
            slot = self.pick_worker(a)
            if not slot:
                return False
            w = self.workers[slot]
            self.killed_workers.add(w.name)
            self.expected_exits.add(w.proc.pid)
            w.kill(signal.SIGKILL)
            self.start_worker(slot)
        elif kind == "worker_stop":
            slot = self.pick_worker(a)
            if not slot:
                return False
            w = self.workers[slot]
            self.stopped.add(slot)
            os.kill(w.proc.pid, signal.SIGSTOP)
            pause = LEASE_S * 2 + b * 3.0  # well past the lease

            def wake():
                time.sleep(pause)
                if w.alive():
                    os.kill(w.proc.pid, signal.SIGCONT)
                self.stopped.discard(slot)
            threading.Thread(target=wake, daemon=True).start()
        elif kind in ("sub_drop", "sub_stall"):
            subs = self.ws_subs + [s for s in self.sse_subs if s.is_alive()]
            if not subs:
                return False
            sub = subs[int(a * len(subs))]
            if kind == "sub_drop":
                sub.drop()
            else:
                sub.stall(0.5 + b * 3.5)  # past --stall-timeout sometimes
        elif kind == "late_subscribe":
            spec = self.pick_job(a, 40, lambda j: j.finished_at is None)
            if not spec:
                return False
            status, job, _ = self.call("GET", f"/v1/jobs/{spec.id}")
            if status != 200:
                return False
            after = int(b * job["last_seq"])
            if b < 0.3:
                self.start_sse(spec, after)
            else:
                sub = self.ws_subs[int(b * 1000) % len(self.ws_subs)]
                stream = sub.add(spec.id, after)
                if stream is None:
                    return False
                spec.streams.append((f"ws{sub.index}", stream))
        elif kind == "cross_cancel" and b < 0.3:
            # A job too long to finish within the cancel grace, cancelled on
            # another broker once it runs: a cancel that never reaches its
            # worker shows (a short job may finish before any cancel could).
            self.faults[kind] += 1
            self.later(kind, self.cancel_long_job, a, self.faults[kind])
            return True
        elif kind in ("cancel", "cross_cancel"):
            spec = self.pick_job(a, 30, lambda j: j.cancelled_at is None)
            if not spec:
                return False
            self.cancel(spec, kind)
        elif kind in ("dup_submit", "cross_dup_submit") and b < 0.5:
            # A key used before: the same job comes back, no second one is made.
            spec = self.pick_job(a, len(self.jobs), lambda j: True)
            if not spec:
                return False
            where = {"only": spec.home} if kind == "dup_submit" else {"avoid": spec.home}
            job = self.submit(spec, **where)
            if job and job["id"] != spec.id:
                self.violations.add(f"Idempotency-Key {spec.key} made a second job "
                                    f"{job['id']} (first {spec.id})")
            if b < 0.1:  # the same key for another request is refused
                other = dict(spec.body(), priority=1)
                slot, status, body, _ = self.request("POST", "/v1/jobs", other,
                                                     headers={"Idempotency-Key": spec.key},
                                                     **where)
                if status != 422:
                    self.violations.add(f"Idempotency-Key {spec.key} reused for another "
                                        f"request on {slot.name}: HTTP {status} {body}")
        elif kind in ("dup_submit", "cross_dup_submit"):
            # A new key sent by three clients at once: one job for all of them
            # (dup_submit: on one broker; cross_dup_submit: on different ones).
            self.faults[kind] += 1
            prefix = "dup" if kind == "dup_submit" else "xdup"
            spec = make_job(random.Random(a), self.run_id, f"{prefix}{self.faults[kind]}")
            with self.jobs_lock:
                self.jobs.append(spec)
            brokers = self.live_brokers() or self.brokers
            if kind == "dup_submit":
                brokers = [self.pick_broker()] * 3
            ids, threads = [], []
            for i in range(3):
                only = brokers[i % len(brokers)]
                threads.append(threading.Thread(
                    target=lambda only=only: ids.append(
                        (self.submit(spec, only=only) or {}).get("id"))))
                threads[-1].start()
            for t in threads:
                t.join()
            if len(set(ids)) != 1 or None in ids:
                self.violations.add(f"Idempotency-Key {spec.key} sent at once gave {ids}")
            spec.id = ids[0]
            return True
        elif kind == "link_cut":
            self.netns.cut(True)

            def restore():
                time.sleep(0.3 + b * 2.5)
                self.netns.cut(False)
            threading.Thread(target=restore, daemon=True).start()
        self.faults[kind] += 1
        return True

    def cancel(self, spec, kind):
        """cancel: on the broker the job was submitted to; cross_cancel: on another."""
        where = {"only": spec.home} if kind == "cancel" else {"avoid": spec.home}
        asked = time.time() * 1000
        slot, status, _, _ = self.request("POST", f"/v1/jobs/{spec.id}/cancel", **where)
        if status == 202:
            spec.cancelled_at, spec.cancel_kind = asked, kind
        elif status != 409:  # 409: it had already finished
            self.violations.add(f"cancel {spec.id} on {slot.name}: HTTP {status}")

    def cancel_long_job(self, a, n):
        """A 20 s generation, cancelled on another broker once it runs."""
        params = {"prompt": f"long {self.run_id} {n}", "max_tokens": 3000,
                  "tokens_per_second": 150, "seed": int(a * 10**6)}
        spec = JobSpec("llm.generate", params, f"{self.run_id}-long{n}")
        with self.jobs_lock:
            self.jobs.append(spec)
        job = self.submit(spec)
        if not job:
            return
        spec.id = job["id"]
        deadline = time.monotonic() + 20
        while job["state"] == "queued" and time.monotonic() < deadline:
            time.sleep(0.2)
            _, status, found, _ = self.request("GET", f"/v1/jobs/{spec.id}")
            job = found if status == 200 else job
        self.cancel(spec, "cross_cancel")

    def later(self, kind, fn, *args):
        """Runs the rest of a fault on its own thread: faults go on meanwhile."""
        def run():
            try:
                fn(*args)
            except Exception as e:  # a fault that cannot be applied is a harness bug
                self.violations.add(f"injecting {kind}: {e!r}")
        t = threading.Thread(target=run, daemon=True, name=kind)
        self.fault_threads.append(t)
        t.start()

    def restart_broker(self, slot, away):
        time.sleep(away)
        started = time.monotonic()
        with self.broker_lock:
            self.start_broker(slot)
        self.broker_restarts.append(time.monotonic() - started)

    # ---- Redis faults (--cluster)

    def shards_by_load(self):
        """The shards with a primary and a replica (CLUSTER SHARDS), each with
        the unfinished jobs whose slot it serves; the busiest first."""
        with self.jobs_lock:
            unfinished = [j for j in self.jobs[-200:] if j.id and j.finished_at is None]
        out = []
        for shard in self.redis.shards():
            if shard["primary"] is None or not shard["replicas"]:
                continue
            jobs = [j for j in unfinished if any(lo <= self.partitions.slot_of(j.id) <= hi
                                                  for lo, hi in shard["slots"])]
            out.append((shard, jobs))
        return sorted(out, key=lambda sj: -len(sj[1]))

    def promoted(self, shard, old):
        """The shard's new primary, once another node serves its first slot."""
        primary = self.redis.primary_of(shard["slots"][0][0])
        return primary if primary is not None and primary is not old else None

    def wait_promoted(self, kind, shard, node, since):
        try:
            poll_until(lambda: self.promoted(shard, node), 30)
            self.failovers.append(time.monotonic() - since)
        except TimeoutError:
            self.violations.add(f"{kind}: no replica of {node.address} was promoted in 30 s")

    def redis_fault(self, kind, a, b):
        try:
            shards = self.shards_by_load()
            if not shards:
                return
            # A primary "holding running jobs": the busiest shard, or by `a` among the busy ones.
            busy = [sj for sj in shards if sj[1]] or shards
            shard, jobs = busy[int(a * len(busy))]
            if kind == "primary_kill":
                node = shard["primary"]
                node.kill()
                log(f"primary_kill: SIGKILL {node.address} ({len(jobs)} unfinished jobs)")
                self.wait_promoted(kind, shard, node, time.monotonic())
                # The promoted primary has no replica now: its writes pause
                # until the old node is back as its replica.
                time.sleep(0.5 + b * 3)
                node.restart()
            elif kind == "primary_stop":
                node = shard["primary"]
                stopped = time.monotonic()
                node.stop()
                log(f"primary_stop: SIGSTOP {node.address} ({len(jobs)} unfinished jobs)")
                self.wait_promoted(kind, shard, node, stopped)
                time.sleep(b * 2)
                node.cont()
            else:
                self.replica_kill(shard, jobs, b)
            self.wait_healed(kind)
        finally:
            self.redis_busy.release()

    def replica_kill(self, shard, jobs, b):
        """With its only replica gone, a shard must not make anything new
        visible: no unfinished job of it may get past the seq it had once the
        rounds in flight at the kill (acknowledged by the replica before it
        died) are confirmed."""
        node = shard["replicas"][0]
        node.kill()
        log(f"replica_kill: SIGKILL {node.address}, replica of {shard['primary'].address} "
            f"({len(jobs)} unfinished jobs)")
        time.sleep(2.0)  # > the broker's WAIT timeout: those rounds are settled
        before = self.last_seqs(jobs)
        held = 1 + b * 3
        time.sleep(held)
        after = self.last_seqs(jobs)
        for job_id, (seq, by) in after.items():
            if job_id in before and seq > before[job_id][0]:
                self.violations.add(
                    f"replica_kill: job {job_id} went from seq {before[job_id][0]} (shown by "
                    f"{before[job_id][1]}) to {seq} (shown by {by}) while {node.address}, the "
                    f"only replica of its shard, was down (acknowledged without a replica)")
        node.restart()
        log(f"replica_kill: {len(before)} jobs of the shard watched for {held:.1f}s, "
            f"{sum(1 for j in jobs if j.finished_at is None)} of them unfinished when it came back")

    def last_seqs(self, jobs):
        """job id -> (last_seq, the broker that showed it): the highest any live
        broker shows (a broker that does not write the job may show less, not
        yet able to confirm what its writer confirmed; jobs no broker can read
        now are left out)."""
        out = {}
        for slot in self.live_brokers():
            for spec in jobs:
                try:
                    _, status, job, _ = self.request("GET", f"/v1/jobs/{spec.id}", timeout=5,
                                                     only=slot)
                except (OSError, http.client.HTTPException):
                    continue
                if status == 200 and job["last_seq"] > out.get(spec.id, (-1, None))[0]:
                    out[spec.id] = (job["last_seq"], slot.name)
        return out

    def wait_healed(self, kind):
        """Every node up, every shard with a primary and a synced replica."""
        try:
            poll_until(lambda: self.redis.complete() and self.redis.healthy(), HEAL_TIMEOUT_S)
        except TimeoutError:
            self.violations.add(f"{kind}: the Redis cluster did not heal in {HEAL_TIMEOUT_S} s")

    # ---- submission

    def submitter(self, rng):
        n = 0
        interval = 1.0 / self.args.rate
        next_at = time.monotonic()
        while not self.stop_submitting.is_set():
            now = time.monotonic()
            if now < next_at:
                time.sleep(min(0.05, next_at - now))
                continue
            next_at += interval
            with self.jobs_lock:
                active = sum(1 for j in self.jobs[-200:] if j.id and j.id not in self.finished)
            if active >= self.args.max_active:
                continue
            n += 1
            spec = make_job(rng, self.run_id, n)
            with self.jobs_lock:
                self.jobs.append(spec)
            try:
                job = self.submit(spec)
            except (OSError, http.client.HTTPException) as e:
                self.violations.add(f"submit {spec.key}: {e!r}")
                continue
            if not job:
                continue
            spec.id = job["id"]
            # Each job gets one or two WebSocket subscribers, some an SSE one too.
            for sub in rng.sample(self.ws_subs, rng.choice([1, 1, 2])):
                spec.streams.append((f"ws{sub.index}", sub.add(spec.id)))
            if rng.random() < self.args.sse_share:
                self.start_sse(spec)

    def start_sse(self, spec, after=0):
        sse = SseSubscriber(self, spec.id, after)
        spec.streams.append(("sse", sse.stream))
        with self.jobs_lock:
            self.sse_subs = [s for s in self.sse_subs if s.is_alive()] + [sse]
        sse.start()

    # ---- main

    def run(self):
        a = self.args
        log(f"seed={self.seed} duration={a.duration}s{' --cluster' if a.cluster else ''} "
            f"faults={','.join(a.faults)} (rerun with --seed {self.seed})")
        if a.netns:
            self.netns = NetNs(os.getpid())
            try:
                NetNs.remove_stale()
                err = self.netns.create()
            except OSError as e:  # no `ip` (iproute2) here
                err = repr(e)
            if err:
                log(f"network namespace not available, link_cut skipped: {err}")
                self.netns = None
        self.finished = set()
        if self.cluster:
            started = time.monotonic()
            self.redis = RedisCluster(os.path.join(self.tmp.name, "redis"), primaries=3,
                                      replicas=1, node_timeout_ms=REDIS_NODE_TIMEOUT_MS)
            self.redis.start()
            log(f"Redis cluster up in {time.monotonic() - started:.1f}s: {self.redis.seeds()}")
            self.started = time.monotonic()  # --duration is of faults, not of Redis's start
        for slot in self.brokers:
            self.start_broker(slot)
        if self.cluster:
            # One worker of every type per broker: each starts on its own broker.
            slots = [f"all-{i + 1}" for i in range(len(self.brokers))]
        else:
            slots = ["llm-1", "llm-2", "research-1", "exec-1"]
        if self.netns:
            slots.append("ns-1")
        for slot in slots:
            self.start_worker(slot)
        for i in range(a.ws_subscribers):
            s = WsSubscriber(self, i)
            self.ws_subs.append(s)
            s.start()

        plan = self.schedule(a.duration)
        log(f"{len(plan)} faults planned: " + ", ".join(
            f"{k}={sum(1 for p in plan if p[1] == k)}" for k in FAULT_KINDS
            if any(p[1] == k for p in plan)))
        sub_thread = threading.Thread(target=self.submitter, args=(random.Random(self.seed + 1),),
                                      daemon=True)
        sub_thread.start()
        self.verifier_thread = threading.Thread(target=self.verifier, daemon=True)
        self.verifier_thread.start()

        report_every = a.report_every
        next_report = report_every
        next_sample = 0.0
        if a.soak:
            log("    t(s)   jobs  finished ingested* delivered rss(MiB) anon(MiB)  fds  wal(MiB)  p99(ms)"
                "  faults (broker kills)")
        i = 0
        while True:
            t = time.monotonic() - self.started
            if t >= a.duration:
                break
            if i < len(plan) and plan[i][0] <= t:
                _, kind, x, y = plan[i]
                i += 1
                try:
                    self.inject(kind, x, y)
                except Exception as e:  # a fault that cannot be applied is a harness bug
                    self.violations.add(f"injecting {kind}: {e!r}")
                continue
            if t >= next_sample:
                self.sample()
                self.check_alive()
                next_sample = t + 0.5
            if a.soak and t >= next_report:
                next_report += report_every
                self.report_row(t)
            time.sleep(0.02)

        self.stop_submitting.set()
        sub_thread.join(timeout=30)
        self.heal()
        log("fault window over; letting jobs finish")
        left = self.drain(a.drain)
        self.sample()
        self.check_quiet_state()
        self.stop_subscribers.set()
        for sub in self.ws_subs:
            sub.drop()
        for sub in self.sse_subs:
            sub.drop()
        for spec in left:
            self.verify(spec, final=True)
        self.check_final_logs()
        self.check_ids()
        self.check_bounds()
        self.shutdown()
        return self.summary()

    def report_row(self, t):
        if not self.samples:
            return
        _, rss, anon, fds, wal = self.samples[-1]
        p99 = self.latency_p99()
        faults, kills = sum(self.faults.values()), self.faults["broker_kill"]
        events = self.events_total()
        log(f"{t:8.0f} {len(self.jobs):6d} {len(self.finished):9d} {events:8d} "
            f"{self.delivered_count:10d} {rss / 1024:8.1f} {anon / 1024:9.1f} {fds:4d} "
            f"{wal / 2**20:9.1f}  "
            + (f"{p99 * 1000:7.1f}" if p99 is not None else "      -")
            + f"  {faults - self.reported_faults[0]:6d} ({kills - self.reported_faults[1]})")
        self.reported_faults = (faults, kills)

    def metrics_lines(self):
        """The lines of every live broker's /metrics."""
        lines = []
        for slot in self.live_brokers():
            try:
                status, text, _ = slot.api.request("GET", "/metrics", timeout=5)
            except (OSError, http.client.HTTPException):
                continue
            if status == 200:
                lines += text.splitlines()
        return lines

    def events_total(self):
        total = 0
        for line in self.metrics_lines():
            if line.startswith("jobcast_events_ingested_total"):
                total += float(line.split()[-1])
        return int(total)

    def verifier(self):
        """Notices finished jobs and checks each one as soon as its subscribers
        are done with it, then lets go of its events (soak runs stay small)."""
        while not self.stop_verifier.is_set():
            with self.jobs_lock:
                pending = [j for j in self.jobs if j.id and not j.verified]
            for spec in pending:
                if self.stop_verifier.is_set():
                    break
                if spec.finished_at is None:
                    try:
                        status, job, _ = self.pick_broker().api.request(
                            "GET", f"/v1/jobs/{spec.id}", timeout=5)
                    except (OSError, http.client.HTTPException):
                        break
                    if status == 200 and job["state"] in TERMINAL:
                        spec.finished_at = time.monotonic()
                        self.finished.add(spec.id)
                if spec.finished_at is not None and self.ready(spec):
                    try:
                        self.verify(spec)
                    except (OSError, http.client.HTTPException, AssertionError):
                        break  # the broker is restarting: next round
            time.sleep(0.3)

    def ready(self, spec, grace=15.0):
        """Its subscribers have the whole stream (or had `grace` seconds to get
        it) and its processes had time to go."""
        waited = time.monotonic() - spec.finished_at
        if spec.kind == "exec" and waited < 3:
            return False
        return waited > grace or all(st.done for _, st in spec.streams)

    def check_alive(self):
        """A broker or worker that exits without being killed is a crash."""
        with self.broker_lock:
            current = [(b, b.process) for b in self.brokers] + list(self.workers.items())
            for slot, p in current:
                if p.alive() or p.proc.pid in self.expected_exits:
                    continue
                self.expected_exits.add(p.proc.pid)
                self.violations.add(f"{p.name} exited by itself (rc {p.proc.returncode}):\n"
                                    + "\n".join(p.lines[-30:]))
                if isinstance(slot, BrokerSlot):
                    self.start_broker(slot)
                else:
                    self.start_worker(slot)

    def shutdown(self):
        """Stops everything with SIGTERM: each must exit 0, and no process may
        have logged a sanitizer report or crashed at any time."""
        for p in [b.process for b in self.brokers] + list(self.workers.values()):
            self.expected_exits.add(p.proc.pid)
            p.kill(signal.SIGTERM)
            if p.proc.returncode != 0:
                self.violations.add(f"{p.name} exited {p.proc.returncode} on SIGTERM:\n"
                                    + "\n".join(p.lines[-30:]))
        errors = 0
        for p in self.processes:
            for i, line in enumerate(p.lines):
                if any(m in line for m in ("AddressSanitizer", "LeakSanitizer", "runtime error:",
                                           "Segmentation fault")):
                    self.violations.add(f"{p.name}: sanitizer report:\n"
                                        + "\n".join(p.lines[i:i + 40]))
                    break
                if re.match(r"^\S+ (error|critical) ", line):
                    errors += 1
                    if errors <= 5:
                        log(f"{p.name} logged: {line}")
                if "event=lease_lost" in line:
                    lost = "not_running" if "reason=not_running" in line else "silent"
                    self.stats["leases_lost"][lost] += 1
        self.stats["error_lines"] = errors

    def heal(self):
        """Ends every fault: the link is up, no worker is stopped, all are running."""
        if self.netns:
            self.netns.cut(False)
        wait_deadline = time.monotonic() + 10
        while self.stopped and time.monotonic() < wait_deadline:
            time.sleep(0.05)
        for t in self.fault_threads:  # brokers restarted, Redis healed
            t.join(timeout=HEAL_TIMEOUT_S + 30)
        self.check_alive()

    def drain(self, timeout):
        """Waits for every job to finish and be verified; returns the others."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.jobs_lock:
                if all(j.verified for j in self.jobs if j.id):
                    break
            time.sleep(0.2)
        self.stop_verifier.set()
        self.verifier_thread.join(timeout=60)
        with self.jobs_lock:
            return [j for j in self.jobs if j.id and not j.verified]

    # ---- checks

    def verify(self, spec, final=False):
        """All the per-job checks, on its stored log and what its subscribers got."""
        api = self.pick_broker().api
        try:
            events = api.events(spec.id)
            spec.final = job = api.job(spec.id)
        except AssertionError as e:  # a 404: the job the broker answered 201 for is gone
            if not final:
                raise
            self.violations.add(f"job {spec.id} ({spec.kind}) cannot be read back: {e}")
            return
        if final and job["state"] not in TERMINAL:
            # Legitimately running only if it is still making progress.
            time.sleep(2)
            if job["state"] == "running" and api.job(spec.id)["last_seq"] > job["last_seq"]:
                log(f"job {spec.id} is still running and making progress")
                self.stats["running"] += 1
            else:
                self.violations.add(f"job {spec.id} ({spec.kind}) not terminal after the drain: "
                                    f"{job['state']} attempt {job['attempt']}")
        self.check_log(spec, events)
        self.check_streams(spec, events)
        self.check_rendered_text(spec, events)
        self.check_processes(spec, events)
        self.stats["events"] += len(events)
        self.stats["states"][job["state"]] = self.stats["states"].get(job["state"], 0) + 1
        spec.checked = (len(events), digest(events))
        spec.verified = True
        for _, st in spec.streams:
            st.events = []  # checked: memory back

    def check_ids(self):
        """One job per Idempotency-Key: the broker holds exactly the submitted jobs."""
        seen, cursor = [], None
        while True:
            path = "/v1/jobs?limit=500" + (f"&cursor={cursor}" if cursor else "")
            status, page, _ = self.call("GET", path)
            if status != 200:
                self.violations.add(f"GET /v1/jobs: HTTP {status}")
                return
            seen += [j["id"] for j in page["jobs"]]
            cursor = page.get("next")
            if not cursor:
                break
        submitted = {s.id for s in self.jobs if s.id}
        if sorted(seen) != sorted(submitted):
            extra = set(seen) - submitted
            self.violations.add(f"broker holds {len(seen)} jobs for {len(submitted)} keys "
                                f"(extra: {sorted(extra)[:5]})")

    def check_final_logs(self):
        """Every job's log read back once more at the end (from any broker),
        after every fault healed: each subscriber's stream and the log as it
        was checked are byte-equal to it (canonical JSON) from where they
        started. An event shown and later lost or rewritten by a failover
        differs here even if it was fine when its job finished."""
        with self.jobs_lock:
            specs = [j for j in self.jobs if j.id and j.checked]
        for spec in specs:
            try:
                final = self.pick_broker().api.events(spec.id)
            except (OSError, http.client.HTTPException, AssertionError) as e:
                self.violations.add(f"job {spec.id}: its log cannot be read back at the end: {e}")
                continue
            n, checked = spec.checked
            if len(final) < n or digest(final[:n]) != checked:
                self.violations.add(f"job {spec.id}: the stored log read back at the end differs "
                                    f"from the {n} events it had when it was checked "
                                    f"(now {len(final)})")
            for who, st in spec.streams:
                if st.after + st.count > len(final):
                    self.violations.add(
                        f"{who} job {spec.id}: received {st.count} events after {st.after} but "
                        f"the stored log read back at the end has {len(final)}")
                elif digest(final[st.after:st.after + st.count]) != st.hash.hexdigest():
                    self.violations.add(
                        f"{who} job {spec.id}: the {st.count} events received after {st.after} "
                        f"are not byte-equal to the stored log read back at the end")

    def check_log(self, spec, events):
        v = self.violations
        jid = f"job {spec.id} ({spec.kind})"
        seqs = [e["seq"] for e in events]
        if seqs != list(range(1, len(seqs) + 1)):
            v.add(f"{jid}: seqs are not 1..N: {seqs[:20]}…")
            return
        if not events or events[0]["kind"] != "state" or events[0]["data"]["state"] != "queued":
            v.add(f"{jid}: log does not start with state queued")
            return
        # Segment the log by lease: non-state events belong to the attempt whose
        # `running` state event precedes them, and only until the next state event.
        segments, current, last_attempt, terminal = [], None, 0, None
        for e in events[1:]:
            if terminal:
                v.add(f"{jid}: event seq {e['seq']} after the terminal state")
                return
            if e["kind"] == "state":
                st, attempt = e["data"]["state"], e["data"].get("attempt")
                if st == "running":
                    if attempt is None or attempt <= last_attempt:
                        v.add(f"{jid}: running attempt {attempt} after attempt {last_attempt}")
                    last_attempt = attempt or last_attempt
                    current = {"attempt": attempt, "worker": e["data"].get("worker"),
                               "events": []}
                    segments.append(current)
                else:
                    current = None
                    if st in TERMINAL:
                        terminal = st
                continue
            if current is None:
                v.add(f"{jid}: {e['kind']} event seq {e['seq']} outside any lease "
                      f"(a zombie's write?)")
                continue
            current["events"].append(e)
        final = spec.final
        if final["state"] in TERMINAL and terminal != final["state"]:
            v.add(f"{jid}: job is {final['state']} but its log ends with {terminal}")
        if spec.cancelled_at is not None and final["state"] != "cancelled" and (
                final["finished_at"] is None
                or final["finished_at"] - spec.cancelled_at > CANCEL_GRACE_MS + 3000):
            v.add(f"{jid}: cancel accepted but the job went on to {final['state']} "
                  f"{(final['finished_at'] or time.time() * 1000) - spec.cancelled_at:.0f} ms later")
        if spec.cancelled_at is not None and final["state"] in TERMINAL:
            counts = self.stats["cancels"].setdefault(spec.cancel_kind, [0, 0, 0.0, 0.0])
            took = (final["finished_at"] - spec.cancelled_at) / 1000
            cancelled = final["state"] == "cancelled"
            counts[0] += 1
            counts[1] += cancelled
            counts[3 - cancelled] = max(counts[3 - cancelled], took)
        # Each attempt's output is exactly its type's deterministic output from
        # where it resumed: nothing acknowledged was lost, nothing stored twice.
        if len(segments) > 1:
            self.stats["retried"] += 1
        reached = 0
        for k, seg in enumerate(segments):
            evs = seg["events"]
            while evs and evs[-1]["kind"] in ("error", "result"):
                evs = evs[:-1]
            start = spec.resume_point(evs)
            if start > 0:
                self.stats["resumed"] += 1
            if start > reached:
                v.add(f"{jid}: attempt {seg['attempt']} resumed at {start} but only {reached} "
                      f"were done before")
            expected = spec.expected(start)
            got = [spec.comparable(e) for e in evs]
            if got != expected[:len(got)]:
                first = next(i for i, (g, x) in enumerate(zip(got + [None] * len(expected),
                                                               expected + [None] * len(got)))
                             if g != x)
                v.add(f"{jid}: attempt {seg['attempt']} (from {start}) differs from the expected "
                      f"output at event {first}: got {got[first:first + 3]} expected "
                      f"{expected[first:first + 3]}")
                continue
            if k == len(segments) - 1 and terminal == "succeeded" and got != expected:
                v.add(f"{jid}: succeeded with {len(got)} of {len(expected)} expected events "
                      f"in its last attempt")
            reached = max(reached, spec.completed_units(evs, start))
        if terminal == "succeeded" and spec.kind == "llm.generate":
            want = "".join(sim_tokens(spec.params["prompt"], spec.params["seed"],
                                      spec.params["max_tokens"]))
            if (final.get("result") or {}).get("text") != want:
                v.add(f"{jid}: result text differs from the generated text")

    def check_streams(self, spec, log_):
        """Every subscriber's reassembled stream equals the stored log."""
        for who, st in spec.streams:
            self.stats["streams"] += 1
            got, want = list(st.events), log_[st.after:]
            if got != want[:len(got)]:
                first = next((i for i, (g, e) in enumerate(zip(got, want)) if g != e), len(want))
                self.violations.add(f"{who} job {st.job}: received stream (after {st.after}) "
                                    f"differs from the stored log at index {first} "
                                    f"(got {len(got)} events)")
            elif is_terminal(log_[-1]) and len(got) != len(want):
                self.violations.add(f"{who} job {st.job}: got {len(got)} of {len(want)} events "
                                    f"after {st.after} of a finished job (last subscribed on "
                                    f"{st.via} after {st.last}"
                                    + (f"; {', '.join(st.history[-4:])}" if st.history else "")
                                    + ")")

    def check_rendered_text(self, spec, log_):
        """A succeeded llm.generate job, retried or not: the text every
        subscriber renders (the stored log up to where it joined, then what it
        received) equals the stored result's text, and so does the snapshot's."""
        if spec.kind != "llm.generate" or spec.final["state"] != "succeeded":
            return
        want = spec.final["result"]["text"]
        for who, st in spec.streams:
            if st.done and rendered_text(log_[:st.after] + st.events) != want:
                self.violations.add(f"{who} job {st.job}: the rendered text (after {st.after}) "
                                    f"is not the result's text")
        status, snapshot, _ = self.call("GET", f"/v1/jobs/{spec.id}/snapshot")
        if status == 200 and snapshot["text"] != want:
            self.violations.add(f"job {spec.id}: the snapshot's text is not the result's text")

    def check_processes(self, spec, log_):
        """A finished exec job (cancelled, or retried after its worker stalled)
        leaves no process behind."""
        if spec.kind != "exec" or spec.final["state"] not in TERMINAL:
            return
        workers = {e["data"].get("worker") for e in log_
                   if e["kind"] == "state" and e["data"]["state"] == "running"}
        deadline = time.monotonic() + 5
        while True:
            out = subprocess.run(["pgrep", "-f", spec.marker + "$"], capture_output=True,
                                 text=True)
            pids = out.stdout.split()
            if not pids or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        if pids and workers & self.killed_workers:
            # The worker running it was SIGKILLed: nobody was left to stop its script.
            self.stats["orphans_of_killed"] += 1
        elif pids:
            self.violations.add(f"{spec.final['state']} exec job {spec.id} left processes "
                                f"{pids} (its workers: {sorted(workers)})")

    def log_workers(self):
        """Each worker's process state and last log lines: which one is not
        connected, and why."""
        for slot, w in sorted(self.workers.items()):
            state = "running" if w.proc.poll() is None else f"exited {w.proc.returncode}"
            log(f"worker {w.name} ({slot}) {state}; its last log lines:")
            for line in w.lines[-12:]:
                log(f"  {line}")
            for slot_b in self.brokers:
                b = slot_b.process
                mentions = [line for line in (b.lines if b else []) if f'"{w.name}"' in line]
                if mentions:
                    log(f"  what {slot_b.name} logged of it, last lines:")
                    for line in mentions[-8:]:
                        log(f"    {line}")

    def check_quiet_state(self):
        """Every job is finished and every subscriber has its terminal event:
        each broker's gauges say so (no subscription is held, nothing queued),
        and together they count every worker."""
        zero = [("jobcast_subscriptions", None), ("jobcast_subscriptions_catching_up", None),
                ("jobcast_client_queued_bytes", None), ("jobcast_queue_depth", None),
                ("jobcast_jobs", {"state": "queued"}), ("jobcast_jobs", {"state": "running"})]
        deadline = time.monotonic() + 10
        while True:
            try:
                wrong = []
                for slot in self.brokers:
                    for name, labels in zero:
                        value = metric(slot.api, name, labels)
                        if value not in (0, None):
                            wrong.append((slot.name, name, labels, value, 0))
                workers = sum(metric(slot.api, "jobcast_workers") or 0 for slot in self.brokers)
                if workers != len(self.workers):
                    wrong.append(("all brokers", "jobcast_workers", None, workers,
                                  len(self.workers)))
            except (OSError, http.client.HTTPException, AssertionError) as e:
                wrong = [repr(e)]
            if not wrong:
                return
            if time.monotonic() > deadline:
                for w in wrong:
                    self.violations.add(f"with every job finished: {w}")
                if any(isinstance(w, tuple) and w[1] == "jobcast_workers" for w in wrong):
                    self.log_workers()
                return
            time.sleep(0.2)

    def check_bounds(self):
        a = self.args
        if self.peak["rss_kib"] > a.max_rss_mib * 1024:
            self.violations.add(f"broker RSS peaked at {self.peak['rss_kib'] / 1024:.0f} MiB "
                                f"(bound {a.max_rss_mib})")
        if self.peak["wal"] > a.max_wal_mib * 2**20:
            self.violations.add(f"WAL peaked at {self.peak['wal'] / 2**20:.0f} MiB "
                                f"(bound {a.max_wal_mib})")
        if self.redis:
            for node in self.redis.nodes:
                if "cluster_state:ok" not in node.cli("CLUSTER", "INFO"):
                    self.violations.add(f"Redis node {node.address}: cluster state not ok at the "
                                        f"end")
                memory = node.info("memory")
                used, cap = int(memory.get("used_memory", 0)), int(memory.get("maxmemory", 0))
                if cap and used >= cap:
                    self.violations.add(f"Redis node {node.address} at maxmemory: {used} B")

    def summary(self):
        st = self.stats
        restarts = self.broker_restarts
        log(f"jobs={sum(st['states'].values())} "
            + " ".join(f"{k}={n}" for k, n in sorted(st["states"].items()))
            + f" still_running={st['running']}")
        log(f"jobs with more than one attempt={st['retried']}, attempts resumed from a "
            f"checkpoint={st['resumed']}")
        log(f"events={st['events']} subscriber_streams={st['streams']} "
            f"delivered={self.delivered_count} "
            f"ws_reconnects={sum(s.reconnects for s in self.ws_subs)} "
            f"sse_reconnects={self.sse_reconnects}")
        log("faults " + " ".join(f"{k}={n}" for k, n in self.faults.items()
                                 if k in self.args.faults and (n or k != "link_cut" or self.netns)))
        if not self.netns:
            log("link_cut: not injected (needs --netns and CAP_NET_ADMIN)")
        if restarts:
            log(f"broker serving again after SIGKILL: max {max(restarts):.3f}s "
                f"mean {sum(restarts) / len(restarts):.3f}s")
        if self.redis:
            if self.failovers:
                log(f"replica promoted after a primary kill or stop: max "
                    f"{max(self.failovers):.1f}s mean "
                    f"{sum(self.failovers) / len(self.failovers):.1f}s")
            if set(REDIS_FAULTS) & set(self.args.faults):
                log("Redis faults skipped (another one was healing): "
                    + " ".join(f"{k}={n}" for k, n in self.skipped.items()
                               if k in self.args.faults))
        wal = "" if self.cluster else f" wal={self.peak['wal'] / 2**20:.1f}MiB"
        log(f"broker peak rss={self.peak['rss_kib'] / 1024:.1f}MiB "
            f"(anon {self.peak['anon_kib'] / 1024:.1f}MiB) fds={self.peak['fds']}{wal}; exec "
            f"scripts orphaned by a worker SIGKILL: {st['orphans_of_killed']}; error log lines: "
            f"{st['error_lines']}")
        for kind, (accepted, cancelled, took, other) in sorted(st["cancels"].items()):
            log(f"{kind}: {accepted} accepted (202); {cancelled} of those jobs ended cancelled "
                f"(the latest {took:.1f}s after), {accepted - cancelled} otherwise (finished on "
                f"their own, the latest {other:.1f}s after)")
        log("leases taken back: from silent workers={silent}, from workers not running "
            "the job={not_running}".format(**st["leases_lost"]))
        n = len(self.violations.items)
        log(f"violations={n} seed={self.seed}")
        return 0 if n == 0 else 1

    def cleanup(self):
        self.stop_subscribers.set()
        for w in self.workers.values():
            try:
                os.kill(w.proc.pid, signal.SIGCONT)
            except OSError:
                pass
            w.kill()
        for b in self.brokers:
            if b.process:
                b.process.kill()
        if self.redis:
            self.redis.close()
        if self.netns:
            self.netns.destroy()
        self.tmp.cleanup()


class ChaosBroker(Broker):
    """A Broker that does not outlive a failed start."""

    def __init__(self, *args, **kw):
        try:
            super().__init__(*args, **kw)
        except BaseException:
            if hasattr(self, "proc"):
                self.kill()
            raise


class NsWorker(Worker):
    """A jobcast-worker started inside a network namespace."""

    def __init__(self, prefix, endpoint, types, name, args):
        from harness import BIN, Process
        argv = prefix + [os.path.join(BIN, "jobcast-worker"), "--broker", endpoint, "--types",
                         ",".join(types), "--capacity", "6", "--name", name, *args]
        Process.__init__(self, argv, name=name)


def fault_list(text):
    """"broker-kill,primary_kill" -> ["broker_kill", "primary_kill"]."""
    kinds = [k.strip().replace("-", "_") for k in text.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in FAULT_KINDS]
    if unknown or not kinds:
        raise argparse.ArgumentTypeError(f"unknown fault kind {','.join(unknown) or text!r} "
                                         f"(known: {', '.join(FAULT_KINDS)})")
    return kinds


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seed", type=int, help="replay the fault schedule of this seed")
    p.add_argument("--duration", type=float, default=90, help="seconds of faults (default 90)")
    p.add_argument("--drain", type=float, default=45,
                   help="seconds for jobs to finish after the faults stop")
    p.add_argument("--rate", type=float, default=4, help="jobs submitted per second")
    p.add_argument("--max-active", type=int, default=40, help="unfinished jobs at most")
    p.add_argument("--ws-subscribers", type=int, default=6)
    p.add_argument("--sse-share", type=float, default=0.3, help="share of jobs with an SSE reader")
    p.add_argument("--fault-scale", type=float, default=1.0,
                   help="multiplies the mean time between faults")
    p.add_argument("--netns", action="store_true",
                   help="run one worker in a network namespace and cut its link (root)")
    p.add_argument("--soak", action="store_true", help="print RSS/fds/WAL/p99 every interval")
    p.add_argument("--report-every", type=float, default=60)
    p.add_argument("--max-rss-mib", type=float, default=1536,
                   help="bound on broker RSS (ASan builds need far more than Release)")
    p.add_argument("--max-wal-mib", type=float, default=256)
    p.add_argument("--cluster", action="store_true",
                   help="brokers on a Redis Cluster of 3 primaries and 3 replicas, with its faults")
    p.add_argument("--brokers", type=int, default=3, help="brokers with --cluster (default 3)")
    p.add_argument("--faults", type=fault_list,
                   help="comma-separated fault kinds to inject (default: all of the mode): "
                        + ", ".join(FAULT_KINDS))
    args = p.parse_args(argv)
    if args.faults is None:
        args.faults = [k for k in FAULT_KINDS if args.cluster or k not in CLUSTER_FAULTS]
    elif not args.cluster and set(args.faults) & set(CLUSTER_FAULTS):
        p.error("--faults " + ",".join(sorted(set(args.faults) & set(CLUSTER_FAULTS)))
                + " needs --cluster")
    if args.brokers < 1:
        p.error("--brokers must be at least 1")
    chaos = Chaos(args)

    def terminated(signum, frame):
        raise SystemExit(f"signal {signum}")
    signal.signal(signal.SIGTERM, terminated)
    try:
        return chaos.run()
    except BaseException:
        log(f"harness error; seed={chaos.seed}")
        raise
    finally:
        chaos.cleanup()


if __name__ == "__main__":
    sys.exit(main())
