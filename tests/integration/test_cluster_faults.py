"""Cluster mode under engine faults, from the outside (a real Redis Cluster
from Debian's redis-tools: 3 primaries, each with one replica):

- the engine unreachable at start: the broker waits with a clear log line,
  serves /healthz and /metrics, and /readyz says 503 and why, until the
  cluster answers; then it serves. Unreachable later: /readyz is 503 again
  until the engine is back. Never a crash.
- a shard without its replica: its writes pause (nothing shown, the worker's
  messages stay unacknowledged), the degraded-shard gauge and one log line
  name the shard; once the replica is back the job goes on and nothing is
  lost.
- the engine's memory full (maxmemory reached, noeviction): a submit gets 503
  with Retry-After, a running job's stream pauses (the worker's messages stay
  unacknowledged), and once memory frees the job finishes with nothing lost.
- a Function library of another version on the nodes: the broker refuses to
  start and says what to do.
"""
import os
import re
import subprocess
import threading
import time
import unittest

from harness import (BIN, Client, ClusterTestCase, Process, check_contiguous, metric, sim_text,
                     wait_until)
import test_cluster
import test_streaming


class WaitingBroker(Process):
    """A cluster-mode broker that may not serve yet: its HTTP address comes
    from the line it logs while it waits for the engine (or, when the engine
    answers at once, from its `listening` line)."""

    def __init__(self, seeds, db):
        argv = [os.path.join(BIN, "jobcast-broker"), "--http", "127.0.0.1:0",
                "--zmq", "tcp://127.0.0.1:0", "--db", db, "--heartbeat", "200ms",
                "--store", f"redis-cluster://{seeds}?partitions=16", "--retention", "1h"]
        super().__init__(argv, name="broker")
        m = self.wait_for_line(r"event=waiting_for_engine http=(\S+)")
        self.http = m.group(1)
        self.host, port = self.http.rsplit(":", 1)
        self.port = int(port)
        self.tls = None

    def client(self):
        return Client(self.host, self.port)

    def serving(self, timeout=30):
        """Waits until it serves; its ZeroMQ endpoint is known from then on."""
        self.zmq = self.wait_for_line(r"listening http=\S+ zmq=(\S+)", timeout=timeout).group(1)
        return self


def readyz(client):
    status, body, _ = client.request("GET", "/readyz")
    return status, body


def start_readers(follows):
    """Runs each reader (name -> a call that follows a stream to its end) on a
    thread of its own; answers ({name: what it returned or raised}, the
    started threads)."""
    got = {}

    def read(name, follow):
        try:
            got[name] = follow()
        except Exception as e:  # an error frame or status is what a test looks for
            got[name] = e

    threads = [threading.Thread(target=read, args=item) for item in follows.items()]
    for thread in threads:
        thread.start()
    return got, threads


class ClusterFaultsTest(ClusterTestCase):
    def setUp(self):
        super().setUp()
        # Every test leaves the cluster whole for the next one.
        self.addCleanup(self.restore_cluster)

    def restore_cluster(self):
        for node in self.cluster.nodes:
            if not node.alive():
                node.restart()
        self.cluster.wait_healthy(timeout=60)
        wait_until(self.cluster.complete, timeout=60, what="every node to see every replica")

    def start_waiting_broker(self):
        broker = WaitingBroker(self.cluster.seeds(), self.db)
        self.processes.append(broker)
        self.addCleanup(broker.kill)
        return broker

    def kill_every_node(self):
        for node in self.cluster.nodes:
            node.kill()

    def restart_every_node(self):
        for node in self.cluster.nodes:
            node.restart()
        self.cluster.wait_healthy(timeout=60)

    def test_engine_unreachable_at_start_then_reachable(self):
        self.kill_every_node()
        broker = self.start_waiting_broker()
        api = broker.client()
        # It says why it waits, which seeds, and when it tries again.
        line = broker.wait_for_line(
            r"event=engine_unreachable seeds=(\S+) attempt=(\d+) error=\"([^\"]+)\" "
            r"next_attempt_ms=(\d+)").group(0)
        self.assertIn(self.cluster.nodes[0].address, line)
        # Alive, not ready, and saying why; the engine's gauge says it too.
        self.assertEqual(api.request("GET", "/healthz")[0], 200)
        status, body = readyz(api)
        self.assertEqual(status, 503)
        self.assertEqual(body["status"], "not_ready")
        self.assertIn("unreachable", body["reason"])
        self.assertEqual(metric(api, "jobcast_cluster_engine_up"), 0)
        status, body, headers = api.request("GET", "/v1/jobs")
        self.assertEqual(status, 503)
        self.assertEqual(body["error"]["code"], "not_ready")
        # It keeps trying with backoff, never exits.
        broker.wait_for_line(r"event=engine_unreachable .*attempt=3")
        self.assertTrue(broker.alive())

        self.restart_every_node()
        broker.serving(timeout=60)
        wait_until(lambda: readyz(api)[0] == 200, timeout=30, what="/readyz to answer 200")
        self.assertEqual(metric(api, "jobcast_cluster_engine_up"), 1)
        self.start_worker(broker, ["llm.generate"])
        job = api.submit("llm.generate", {"prompt": "late engine", "max_tokens": 20, "seed": 1})
        done = api.wait_state(job["id"], "succeeded", timeout=60)
        self.assertEqual(done["result"]["text"], sim_text("late engine", 1, 20))

    def test_engine_unreachable_later_fails_readyz_until_it_is_back(self):
        broker = self.start_waiting_broker().serving()
        api = broker.client()
        wait_until(lambda: readyz(api)[0] == 200, timeout=30, what="/readyz to answer 200")

        self.kill_every_node()
        wait_until(lambda: readyz(api)[0] == 503, timeout=30, what="/readyz to answer 503")
        self.assertIn("unreachable", readyz(api)[1]["reason"])
        broker.wait_for_line(r"event=engine_unreachable error=")
        wait_until(lambda: metric(api, "jobcast_cluster_engine_up") == 0, timeout=10,
                   what="the engine gauge to say 0")
        self.assertEqual(api.request("GET", "/healthz")[0], 200)

        self.restart_every_node()
        wait_until(lambda: readyz(api)[0] == 200, timeout=60, what="/readyz to answer 200 again")
        broker.wait_for_line(r"event=engine_reachable")
        self.assertTrue(broker.alive())

    def stream_a_job(self, n, seed, prompt):
        """A broker, a worker with metrics, an llm.generate job of n tokens at 40/s
        and an SSE reader of it on its own thread (its events in seen["events"]
        once the stream ends); returns once 20 events are stored."""
        broker = self.start_waiting_broker().serving()
        api = broker.client()
        worker = self.start_worker(broker, ["llm.generate"],
                                   args=["--metrics-port", "0"])
        worker_metrics = Client("127.0.0.1", int(
            worker.wait_for_line(r"metrics listening port=(\d+)").group(1)))
        job = api.submit("llm.generate", {"prompt": prompt, "max_tokens": n,
                                          "tokens_per_second": 40, "seed": seed})
        seen = {}
        reader = threading.Thread(
            target=lambda: seen.setdefault("events", test_cluster.sse_events(
                broker, job["id"], timeout=120)))
        reader.start()
        wait_until(lambda: len(api.events(job["id"])) > 20, timeout=30, what="20 events stored")
        return broker, api, worker_metrics, job, seen, reader

    def test_a_shard_without_its_replica_pauses_its_writes_until_it_is_back(self):
        n, seed, prompt = 400, 5, "a shard pauses"
        broker, api, worker_metrics, job, seen, reader = self.stream_a_job(n, seed, prompt)

        # The job's shard: the primary holding its key, and that primary's replica.
        shard = next(s for s in self.cluster.shards()
                     if s["primary"].cli("--scan", "--pattern", f"jc:*:job:{job['id']}"))
        primary = shard["primary"]
        replica = shard["replicas"][0]
        slots = ",".join(f"{lo}-{hi}" for lo, hi in shard["slots"])

        replica.kill()
        # The gauge and one log line name the shard.
        wait_until(lambda: metric(api, "jobcast_cluster_shard_degraded",
                                  {"primary": primary.address}) == 1,
                   timeout=15, what="the shard's degraded gauge")
        self.assertEqual(metric(api, "jobcast_cluster_shard_degraded", {"shard": slots}), 1)
        line = broker.wait_for_line(r"event=shard_degraded shard=(\S+) primary=(\S+)")
        self.assertEqual((line.group(1), line.group(2)), (slots, primary.address))
        self.assertEqual(
            len([l for l in broker.lines if "event=shard_degraded" in l]), 1)
        # Writes pause: nothing more is shown, and the worker holds what it
        # sent unacknowledged.
        time.sleep(1.0)  # what was in flight when the replica went
        paused_at = len(api.events(job["id"]))
        wait_until(lambda: (metric(worker_metrics, "jobcast_worker_unacked_messages") or 0) > 5,
                   timeout=15, what="the worker's messages to wait unacknowledged")
        time.sleep(2.0)
        self.assertEqual(len(api.events(job["id"])), paused_at)
        self.assertEqual(api.job(job["id"])["state"], "running")

        replica.restart()
        broker.wait_for_line(r"event=shard_healthy shard=" + re.escape(slots), timeout=30)
        # The gauge also holds while a WAIT sent before the replica came back
        # has not been answered by one yet; it clears on the next WAIT.
        wait_until(lambda: metric(api, "jobcast_cluster_shard_degraded",
                                  {"primary": primary.address}) == 0,
                   timeout=15, what="the shard's degraded gauge to clear")
        done = api.wait_state(job["id"], "succeeded", timeout=90)
        self.assertEqual(done["result"]["text"], sim_text(prompt, seed, n))
        stored = api.events(job["id"])
        check_contiguous(self, stored)
        reader.join(60)
        self.assertFalse(reader.is_alive(), "the SSE reader did not finish")
        # The subscriber saw every event once, in order, as stored.
        self.assertEqual([event for _, event in seen["events"]], stored)

    def test_engine_memory_full_answers_503_and_pauses_streams_without_loss(self):
        n, seed, prompt = 300, 9, "memory full"
        broker, api, worker_metrics, job, seen, reader = self.stream_a_job(n, seed, prompt)

        # Every primary holds far more than 1 byte: with noeviction, each
        # refuses writes (OOM) from now on.
        primaries = [s["primary"] for s in self.cluster.shards()]

        def set_maxmemory(value):
            for node in primaries:
                self.assertEqual(node.cli("CONFIG", "SET", "maxmemory", value), "OK")

        self.addCleanup(lambda: [node.cli("CONFIG", "SET", "maxmemory", self.cluster.maxmemory)
                                 for node in primaries])
        set_maxmemory("1")
        # A submit is answered at once: try again later.
        params = {"prompt": "later", "max_tokens": 5, "seed": 2}
        status, body, headers = api.request("POST", "/v1/jobs",
                                            {"type": "llm.generate", "params": params})
        self.assertEqual(status, 503, body)
        self.assertEqual(body["error"]["code"], "unavailable")
        self.assertEqual(headers.get("Retry-After"), "1")
        broker.wait_for_line(r"event=engine_memory_full requests_refused=\d+")
        # The stream pauses: nothing more is stored or shown, and the worker
        # holds what it sent unacknowledged.
        time.sleep(1.0)  # what was in flight when memory ran out
        paused_at = len(api.events(job["id"]))
        wait_until(lambda: (metric(worker_metrics, "jobcast_worker_unacked_messages") or 0) > 5,
                   timeout=15, what="the worker's messages to wait unacknowledged")
        time.sleep(2.0)
        self.assertEqual(len(api.events(job["id"])), paused_at)
        self.assertEqual(api.job(job["id"])["state"], "running")

        # Memory frees: everything resumes, nothing lost, the same attempt.
        set_maxmemory(self.cluster.maxmemory)
        done = api.wait_state(job["id"], "succeeded", timeout=90)
        self.assertEqual(done["attempt"], 1)
        self.assertEqual(done["result"]["text"], sim_text(prompt, seed, n))
        stored = api.events(job["id"])
        check_contiguous(self, stored)
        reader.join(60)
        self.assertFalse(reader.is_alive(), "the SSE reader did not finish")
        self.assertEqual([event for _, event in seen["events"]], stored)
        later = api.submit("llm.generate", params)
        self.assertEqual(api.wait_state(later["id"], "succeeded", timeout=60)["result"]["text"],
                         sim_text("later", 2, 5))

    def unconfirmed_tail(self, prompt, seed, b_args=()):
        """Brokers A (with a worker) and B on the cluster; a job run to its end
        on A, then its confirmed seq set 5 events short (the writer's confirm
        lost, as a failover can lose it) and its shard's replica killed, so B
        can neither show nor confirm its last 5 events. Answers B, a client
        of B, the job, its stored log (as A shows it) and its shard."""
        a = self.start_cluster_broker()
        b = self.start_cluster_broker(*b_args)
        self.start_worker(a, ["llm.generate"])
        api_a, api_b = self.client(a), self.client(b)
        job = api_a.submit("llm.generate", {"prompt": prompt, "max_tokens": 30, "seed": seed})
        api_a.wait_state(job["id"], "succeeded", timeout=60)
        stored = api_a.events(job["id"])
        n = len(stored)
        shard = next(s for s in self.cluster.shards()
                     if s["primary"].cli("--scan", "--pattern", f"jc:*:job:{job['id']}"))
        key = shard["primary"].cli("--scan", "--pattern", f"jc:*:job:{job['id']}")
        shard["primary"].cli("HSET", key, "cseq", str(n - 5))
        shard["replicas"][0].kill()
        self.assertEqual(api_b.job(job["id"])["last_seq"], n - 5)
        return b, api_b, job, stored, shard

    def test_a_reader_waits_for_events_its_broker_cannot_confirm_yet(self):
        """What a job's writer showed, another broker may not be able to
        confirm yet: the job's confirmed seq lags (the writer's confirm was
        lost, as a failover can lose it) and its shard has no replica. A
        client resuming there past what it shows, or following the finished
        job from before its last events, waits until the replica is back,
        then gets every event; one that already has the terminal event ends
        at once."""
        b, api_b, job, stored, shard = self.unconfirmed_tail("an unconfirmed tail", 3)
        n = len(stored)

        # It has the terminal event: 204 at once, nothing waited for.
        started = time.monotonic()
        self.assertEqual(test_cluster.sse_events(b, job["id"], last_event_id=n), [])
        self.assertLess(time.monotonic() - started, 2.0)

        got, readers = start_readers({
            "sse": lambda: test_cluster.sse_events(b, job["id"], last_event_id=n - 2),
            "ws": lambda: test_streaming.follow_ws(b, job["id"], after=n - 8),
        })
        time.sleep(2.0)
        self.assertEqual(got, {}, "a reader was answered while nothing could be confirmed")

        shard["replicas"][0].restart()
        for reader in readers:
            reader.join(60)
            self.assertFalse(reader.is_alive(), "a reader on B did not finish")
        self.assertEqual([event for _, event in got["sse"]], stored[n - 2:])
        self.assertEqual(got["ws"], stored[n - 8:])
        self.assertEqual(api_b.job(job["id"])["last_seq"], n)

    def test_a_finished_job_is_read_whole_on_another_broker_once_its_shard_has_a_replica(self):
        """A finished job whose writer showed its last events, with the
        confirm lost (as a failover loses it), read on another broker while
        its shard has no replica, for longer than any reader there used to
        wait: a WebSocket subscriber, an SSE reader and a long-poller resuming before those
        events (not past what that broker shows) are neither refused nor
        ended, nor left streaming without them: once the replica is back they
        get every event and their streams end."""
        b, api_b, job, stored, shard = self.unconfirmed_tail(
            "a finished job, read elsewhere", 4, ["--keepalive", "1s", "--ws-ping-interval", "1s"])
        n = len(stored)

        def long_poll():
            after, events = n - 8, []
            while True:
                status, page, _ = api_b.request(
                    "GET", f"/v1/jobs/{job['id']}/events?after={after}&wait=60", timeout=90)
                if status != 200:
                    raise AssertionError(f"long-poll answered {status} {page}")
                events += page["events"]
                if page["events"]:
                    after = page["events"][-1]["seq"]
                if page["done"]:
                    return events

        got, readers = start_readers({
            "sse": lambda: test_cluster.sse_events(b, job["id"], last_event_id=n - 8, timeout=90),
            "ws": lambda: test_streaming.follow_ws(b, job["id"], after=n - 8, timeout=90),
            "long_poll": long_poll,
        })
        time.sleep(35)  # past the 30 s a reader here used to wait before it went ahead
        self.assertEqual(got, {}, "a reader was answered or ended while nothing could be "
                                  "confirmed")

        shard["replicas"][0].restart()
        for reader in readers:
            reader.join(60)
            self.assertFalse(reader.is_alive(), "a reader on B did not finish")
        self.assertEqual([event for _, event in got["sse"]], stored[n - 8:])
        self.assertEqual(got["ws"], stored[n - 8:])
        self.assertEqual(got["long_poll"], stored[n - 8:])

    def test_a_library_of_another_version_is_refused_with_what_to_do(self):
        primaries = [s["primary"] for s in self.cluster.shards()]
        other = ("#!lua name=jobcast_v0\n"
                 "redis.register_function('jc_v0_probe', function() return 0 end)")
        for node in primaries:
            self.assertEqual(node.cli("FUNCTION", "LOAD", other), "jobcast_v0")
        self.addCleanup(lambda: [node.cli("FUNCTION", "DELETE", "jobcast_v0")
                                 for node in primaries])
        result = subprocess.run(
            [os.path.join(BIN, "jobcast-broker"), "--http", "127.0.0.1:0",
             "--zmq", "tcp://127.0.0.1:0", "--db", self.db,
             "--store", f"redis-cluster://{self.cluster.seeds()}", "--retention", "1h"],
            capture_output=True, text=True, timeout=60)
        self.assertEqual(result.returncode, 1, result.stderr[-2000:])
        self.assertIn("event=start_failed", result.stderr)
        self.assertIn("holds the Function library jobcast_v0", result.stderr)
        self.assertIn("FUNCTION DELETE jobcast_v0 on every primary", result.stderr)
        self.assertNotIn("listening", result.stderr)


if __name__ == "__main__":
    unittest.main()
