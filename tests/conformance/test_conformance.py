"""The SDK conformance suite: the worker SDKs' guarantees, checked against the
real broker through each SDK's conformance worker (README.md here).

The SDK under test is the argv prefix in JOBCAST_CONFORMANCE_WORKER (a JSON
list); the one that takes a job over in the cross-SDK case is in
JOBCAST_CONFORMANCE_OTHER (default: the same). Both default to the C++
jobcast-conformance-worker in JOBCAST_BIN. Every wait is a condition polled
against a deadline.
"""

import json
import os
import signal
import subprocess
import sys
import threading
import time
import unittest

import msgpack
import zmq

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

from harness import (BIN, JobcastTest, Process, ZmqPeers, check_contiguous,  # noqa: E402
                     free_port, metric, wait_until)

sys.path.insert(0, os.path.join(HERE, "..", "..", "scripts"))
import redis_cluster  # noqa: E402

TYPE = "conformance.count"
HEARTBEAT_S = 0.2  # the harness's brokers run --heartbeat 200ms, --liveness 3
LIVENESS_S = 3 * HEARTBEAT_S


def sdk_command(variable):
    """The argv prefix of an SDK's conformance worker, from the environment."""
    value = os.environ.get(variable) or os.environ.get("JOBCAST_CONFORMANCE_WORKER")
    if not value:
        return [os.path.join(BIN, "jobcast-conformance-worker")]
    argv = json.loads(value)
    assert isinstance(argv, list) and argv and all(isinstance(a, str) for a in argv), value
    return argv


def numbers(first, end):
    """The tokens the conformance worker emits for i in [first, end)."""
    return [f"{i} " for i in range(first, end)]


def tokens(events):
    return [e["data"]["text"] for e in events if e["kind"] == "token"]


def tokens_by_attempt(events):
    """{attempt: its tokens}, split at the `running` state events."""
    out, attempt = {}, None
    for e in events:
        if e["kind"] == "state" and e["data"]["state"] == "running":
            attempt = e["data"]["attempt"]
            out.setdefault(attempt, [])
        elif e["kind"] == "token":
            out[attempt].append(e["data"]["text"])
    return out


def runs(events):
    """The `running` state events: who ran which attempt."""
    return [e["data"] for e in events if e["kind"] == "state" and e["data"]["state"] == "running"]


class SdkWorker(Process):
    """An SDK's conformance worker: stderr collected like any Process, and
    its stdout watched for the line "ready"."""

    def __init__(self, command, brokers, name, capacity=1, args=()):
        self.argv = [*command, "--broker", ",".join(brokers), "--name", name,
                     "--capacity", str(capacity), *args]
        self.name = name
        self.lines = []
        self._cond = threading.Condition()
        self.ready = threading.Event()
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     start_new_session=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        threading.Thread(target=self._read_stdout, daemon=True).start()

    def _read_stdout(self):
        for raw in self.proc.stdout:
            if raw.strip() == b"ready":
                self.ready.set()
        self.proc.stdout.close()

    def wait_ready(self, timeout=30.0):
        deadline = time.monotonic() + timeout
        while not self.ready.wait(0.05):
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited ({self.proc.returncode}) before "
                                     "printing ready:\n" + self.output())
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name} printed no ready in {timeout}s")

    def pause(self):
        os.killpg(self.proc.pid, signal.SIGSTOP)

    def resume(self):
        os.killpg(self.proc.pid, signal.SIGCONT)


class ConformanceTest(ZmqPeers, JobcastTest):
    def start_sdk(self, brokers, name, other=False, capacity=1, args=()):
        """The SDK under test's worker (or the other SDK's), connected to
        `brokers` (Broker objects or endpoints), once it says it is ready."""
        endpoints = [getattr(b, "zmq", b) for b in brokers]
        command = sdk_command("JOBCAST_CONFORMANCE_OTHER" if other
                              else "JOBCAST_CONFORMANCE_WORKER")
        w = SdkWorker(command, endpoints, name, capacity, args)
        self.processes.append(w)
        self.addCleanup(w.kill)
        w.wait_ready()
        return w

    def fixed_broker(self, db=None, liveness=3):
        """A broker on fixed ports, and the arguments that start it again there.
        After a restart it keeps a running job's lease for `liveness`
        heartbeats, for its worker to come back and claim it."""
        args = dict(http=f"127.0.0.1:{free_port()}", zmq=f"tcp://127.0.0.1:{free_port()}",
                     args=["--liveness", str(liveness)])
        if db:
            args["db"] = db
        return self.start_broker(**args), args

    def wait_tokens(self, api, job_id, n, timeout=30):
        wait_until(lambda: len(tokens(api.events(job_id))) >= n, timeout=timeout,
                   what=f"{n} tokens of {job_id}")

    def finished(self, api, job_id, timeout=60):
        return api.wait_state(job_id, ["succeeded", "failed", "cancelled"], timeout=timeout)


class StreamTest(ConformanceTest):
    def test_tokens_exactly_once_and_in_order_across_a_broker_sigkill_and_restart(self):
        broker, args = self.fixed_broker()
        api = self.client(broker)
        self.start_sdk([broker], "streamer")
        count = 400
        job = api.submit(TYPE, {"count": count, "every_ms": 5})
        self.wait_tokens(api, job["id"], 60)

        broker.kill(signal.SIGKILL)
        broker = self.start_broker(**args)
        api = self.client(broker)

        done = self.finished(api, job["id"])
        self.assertEqual(done["state"], "succeeded", done)
        self.assertEqual(done["attempt"], 1, "the worker kept its lease across the restart")
        self.assertEqual(done["result"], {"count": count, "start": 0})
        events = api.events(job["id"])
        check_contiguous(self, events)
        self.assertEqual(tokens(events), numbers(0, count))

    def test_broker_down_emits_block_nothing_is_lost_and_all_arrives_after_restart(self):
        # Down for seconds: the worker's reconnect delays have grown by then.
        broker, args = self.fixed_broker(liveness=20)
        api = self.client(broker)
        max_unacked = 4096
        self.start_sdk([broker], "blocked", args=["--max-unacked", str(max_unacked)])
        count = 3000
        job = api.submit(TYPE, {"count": count, "every_ms": 1})
        self.wait_tokens(api, job["id"], 100)

        # The broker dies; what the worker sends meanwhile reaches a ROUTER of
        # ours on its port, which acknowledges nothing.
        broker.kill(signal.SIGKILL)
        context = zmq.Context()
        router = context.socket(zmq.ROUTER)
        router.setsockopt(zmq.LINGER, 0)
        wait_until(lambda: self.try_bind(router, args["zmq"]), what="the broker's port")
        frames = {}  # (attempt, wseq) -> size: what the worker holds unacknowledged
        hellos = 0
        quiet_until = time.monotonic() + 10
        deadline = time.monotonic() + 20
        while time.monotonic() < min(quiet_until, deadline):
            if not router.poll(50):
                continue
            parts = router.recv_multipart()
            m = msgpack.unpackb(parts[-1], raw=False, strict_map_key=False)
            if m.get("t") == "hello":
                hellos += 1
                quiet_until = max(quiet_until, time.monotonic() + 1.5)
            elif m.get("job") == job["id"] and (m["attempt"], m["wseq"]) not in frames:
                self.assertNotEqual(m["t"], "done", "the job cannot end without acks")
                frames[(m["attempt"], m["wseq"])] = len(parts[-1])
                if hellos:
                    quiet_until = time.monotonic() + 1.5  # until nothing new comes
        router.close()
        context.term()  # the port is free again
        self.assertGreater(hellos, 0, "the worker never reconnected")
        self.assertTrue(frames, "the worker re-sent nothing")
        # Its emits blocked at the bound: far fewer than the job's tokens went out.
        self.assertLessEqual(sum(frames.values()), 2 * max_unacked + max(frames.values()),
                             f"{len(frames)} frames unacknowledged")

        broker = self.start_broker(**args)
        api = self.client(broker)
        done = self.finished(api, job["id"])
        self.assertEqual(done["state"], "succeeded", done)
        self.assertEqual(done["attempt"], 1)
        events = api.events(job["id"])
        check_contiguous(self, events)
        self.assertEqual(tokens(events), numbers(0, count))

    @staticmethod
    def try_bind(sock, endpoint):
        try:
            sock.bind(endpoint)
            return True
        except zmq.ZMQError:
            return False


class LeaseTest(ConformanceTest):
    def test_killed_worker_job_resumes_from_its_checkpoint_on_the_other_sdk(self):
        broker = self.start_broker()
        api = self.client(broker)
        first = self.start_sdk([broker], "first")
        count, every = 300, 20
        job = api.submit(TYPE, {"count": count, "every_ms": 5, "checkpoint_every": every},
                         max_attempts=3)
        # Token 50 is stored, so the checkpoint "40" before it is too.
        self.wait_tokens(api, job["id"], 51)
        first.kill(signal.SIGKILL)
        self.start_sdk([broker], "second", other=True)

        done = self.finished(api, job["id"])
        self.assertEqual(done["state"], "succeeded", done)
        self.assertEqual(done["attempt"], 2)
        events = api.events(job["id"])
        check_contiguous(self, events)
        self.assertEqual([(r["attempt"], r["worker"]) for r in runs(events)],
                         [(1, "first"), (2, "second")])
        by_attempt = tokens_by_attempt(events)
        stored = len(by_attempt[1])
        self.assertEqual(by_attempt[1], numbers(0, stored))
        # The second attempt starts at the last checkpoint stored before the kill
        # and emits every token after it exactly once.
        start = done["result"]["start"]
        self.assertEqual(done["result"], {"count": count, "start": start})
        self.assertEqual(start % every, 0)
        self.assertTrue(stored - every <= start <= stored, (start, stored))
        self.assertEqual(by_attempt[2], numbers(start, count))

    def test_worker_paused_past_its_lease_has_its_later_writes_rejected_never_stored(self):
        broker = self.start_broker()
        api = self.client(broker)
        zombie = self.start_sdk([broker], "zombie")
        count = 300
        job = api.submit(TYPE, {"count": count, "every_ms": 10}, max_attempts=5)
        self.wait_tokens(api, job["id"], 20)
        zombie.pause()
        self.addCleanup(zombie.resume)
        self.start_sdk([broker], "rescuer")
        wait_until(lambda: len(tokens_by_attempt(api.events(job["id"])).get(2, [])) >= 20,
                   timeout=30, what="attempt 2 streaming on the rescuer")
        rejected = metric(api, "jobcast_rejected_messages_total") or 0
        zombie.resume()
        # The zombie wakes up and writes on for attempt 1: refused.
        wait_until(lambda: (metric(api, "jobcast_rejected_messages_total") or 0) > rejected,
                   timeout=20, what="the zombie's writes to be rejected")

        done = self.finished(api, job["id"])
        self.assertEqual(done["state"], "succeeded", done)
        self.assertEqual(done["attempt"], 2)
        events = api.events(job["id"])
        check_contiguous(self, events)
        self.assertEqual([(r["attempt"], r["worker"]) for r in runs(events)],
                         [(1, "zombie"), (2, "rescuer")])
        # One clean run per attempt: nothing of the zombie's after it lost the lease.
        by_attempt = tokens_by_attempt(events)
        self.assertEqual(by_attempt[1], numbers(0, len(by_attempt[1])))
        self.assertEqual(by_attempt[2], numbers(0, count))
        self.assertTrue(zombie.alive(), "the zombie must survive its rejects")


class HandlerTest(ConformanceTest):
    def test_cancel_reaches_the_handler_within_one_heartbeat(self):
        broker = self.start_broker()
        api = self.client(broker)
        self.start_sdk([broker], "cancelled")
        job = api.submit(TYPE, {"count": 100000, "every_ms": 20})
        self.wait_tokens(api, job["id"], 5)
        asked = time.monotonic()
        status, _, _ = api.request("POST", f"/v1/jobs/{job['id']}/cancel")
        self.assertEqual(status, 202)
        done = self.finished(api, job["id"], timeout=10)
        took = time.monotonic() - asked
        self.assertEqual(done["state"], "cancelled", done)
        # One heartbeat, and room for a loaded machine's scheduling.
        self.assertLess(took, HEARTBEAT_S + 1.0)
        self.assertEqual(tokens(api.events(job["id"])),
                         numbers(0, len(tokens(api.events(job["id"])))))
        # The handler stopped: the worker's one slot takes the next job.
        after = api.submit(TYPE, {"count": 3})
        self.assertEqual(self.finished(api, after["id"], timeout=15)["state"], "succeeded")

    def test_handler_failure_fails_the_job_with_its_message_retryable_as_raised(self):
        broker = self.start_broker()
        api = self.client(broker)
        self.start_sdk([broker], "failing")

        final = api.submit(TYPE, {"count": 10, "fail_at": 3, "message": "bad input: no"},
                           max_attempts=3)
        done = self.finished(api, final["id"])
        self.assertEqual(done["state"], "failed", done)
        self.assertEqual(done["attempt"], 1, "not retryable: no second attempt")
        self.assertEqual(done["error"], "bad input: no")
        self.assertEqual(tokens(api.events(final["id"])), numbers(0, 3))

        retried = api.submit(TYPE, {"count": 10, "fail_at": 4, "retryable": True},
                             max_attempts=2)
        done = self.finished(api, retried["id"])
        self.assertEqual(done["state"], "failed", done)
        self.assertEqual(done["attempt"], 2, "retryable: tried again")
        self.assertEqual(done["error"], "failed at 4")
        events = api.events(retried["id"])
        self.assertEqual(tokens_by_attempt(events), {1: numbers(0, 4), 2: numbers(0, 4)})
        errors = [e["data"]["message"] for e in events if e["kind"] == "error"]
        self.assertEqual(errors, ["failed at 4", "failed at 4"])

    def test_malformed_params_fail_clearly_and_the_worker_serves_the_next_job(self):
        broker = self.start_broker()
        api = self.client(broker)
        self.start_sdk([broker], "strict")
        for params in ({}, {"count": "ten"}, {"count": -1}, {"count": 1000001},
                       {"every_ms": 5}):
            job = api.submit(TYPE, params, max_attempts=3)
            done = self.finished(api, job["id"])
            self.assertEqual(done["state"], "failed", (params, done))
            self.assertEqual(done["attempt"], 1, (params, "not retryable"))
            self.assertIn("count", done["error"], params)
        job = api.submit(TYPE, {"count": 4})
        done = self.finished(api, job["id"])
        self.assertEqual(done["state"], "succeeded", done)
        self.assertEqual(done["result"], {"count": 4, "start": 0})
        self.assertEqual(tokens(api.events(job["id"])), numbers(0, 4))


class BadInputTest(ConformanceTest):
    def test_garbage_frames_from_the_broker_side_are_ignored_and_the_worker_keeps_serving(self):
        # A ROUTER of ours poses as the broker.
        router = self.zmq_socket(zmq.ROUTER)
        router.bind("tcp://127.0.0.1:0")
        endpoint = router.getsockopt(zmq.LAST_ENDPOINT).decode()
        worker = self.start_sdk([endpoint], "sturdy")

        def receive(want, timeout=10.0):
            deadline = time.monotonic() + timeout
            while True:
                left = deadline - time.monotonic()
                self.assertGreater(left, 0, f"no awaited message in {timeout}s")
                if router.poll(int(left * 1000) + 1):
                    parts = router.recv_multipart()
                    m = msgpack.unpackb(parts[-1], raw=False, strict_map_key=False)
                    if want(m):
                        return parts[0], m

        peer, hello = receive(lambda m: m.get("t") == "hello")
        self.assertEqual(hello["worker"], "sturdy")
        self.assertEqual(hello["types"], [TYPE])

        def send(*parts):
            router.send_multipart([peer, *parts])

        send(msgpack.packb({"v": 1, "t": "welcome", "heartbeat_ms": 200}))
        pack = msgpack.packb
        garbage = [
            b"", b"\xc1", b"not msgpack at all", os.urandom(64), pack([1, 2, 3]), pack("welcome"),
            pack({"v": 1}), pack({"t": "ack"}), pack({"v": 2, "t": "welcome", "heartbeat_ms": 1}),
            pack({"v": 1, "t": "no-such-message"}),
            pack({"v": 1, "t": "ack", "job": "nobody", "attempt": 1, "wseq": 7}),
            pack({"v": 1, "t": "ack", "job": 5, "attempt": "x", "wseq": -1}),
            pack({"v": 1, "t": "cancel"}), pack({"v": 1, "t": "cancel", "job": "nobody"}),
            pack({"v": 1, "t": "reject", "job": "nobody", "reason": "lease", "attempt": 1}),
            pack({"v": 1, "t": "assign", "job": 123}),
            pack({"v": 1, "t": "welcome", "heartbeat_ms": "soon"}),
            pack({"v": 1, "t": "ack", "job": "x" * 100000, "attempt": 1, "wseq": 1}),
            pack({"v": 1, "t": "heartbeat"})[:-2], os.urandom(1 << 20),
        ]
        for frame in garbage:
            send(frame)
        send(b"two", b"parts")

        # Still serving: a real assign runs and streams, numbered from 1.
        assign = {"v": 1, "t": "assign", "job": "G1", "attempt": 1, "type": TYPE,
                  "params": {"count": 3}, "checkpoint": b""}
        send(pack(assign))
        out = []
        while not out or out[-1]["t"] != "done":
            _, m = receive(lambda m: m.get("job") == "G1" and m.get("t") in ("chunk", "done"))
            out.append(m)
        self.assertEqual([m["wseq"] for m in out], [1, 2, 3, 4])
        self.assertEqual([m["data"]["text"] for m in out[:3]], numbers(0, 3))
        self.assertEqual(out[-1]["result"], {"count": 3, "start": 0})
        send(pack({"v": 1, "t": "ack", "job": "G1", "attempt": 1, "wseq": 4}))
        self.assertTrue(worker.alive())


class FailoverTest(ConformanceTest):
    def test_broker_list_failover_and_back(self):
        a, a_args = self.fixed_broker(db=os.path.join(self.tmp.name, "a.db"))
        b = self.start_broker(db=os.path.join(self.tmp.name, "b.db"))
        api_a, api_b = self.client(a), self.client(b)
        self.start_sdk([a, b], "roamer")
        count, every = 200, 10
        long_job = api_a.submit(TYPE, {"count": count, "every_ms": 10,
                                       "checkpoint_every": every}, max_attempts=5)
        self.wait_tokens(api_a, long_job["id"], 21)

        # A dies: the worker says hello to B within the liveness window (and a
        # reconnect delay), and serves B's jobs.
        a.kill(signal.SIGKILL)
        killed = time.monotonic()
        wait_until(lambda: metric(api_b, "jobcast_workers") == 1, timeout=10,
                   what="the worker on B")
        took = time.monotonic() - killed
        print(f"worker connected to B {took:.2f}s after A's SIGKILL")
        self.assertLess(took, LIVENESS_S + 1.5)
        job_b = api_b.submit(TYPE, {"count": 5})
        done = self.finished(api_b, job_b["id"], timeout=20)
        self.assertEqual(done["state"], "succeeded", done)
        self.assertEqual(done["worker"], "roamer")

        # A comes back: all is still fine on B.
        a = self.start_broker(**a_args)
        api_a = self.client(a)
        again = api_b.submit(TYPE, {"count": 5})
        self.assertEqual(self.finished(api_b, again["id"], timeout=20)["state"], "succeeded")

        # B dies: round the list back to A, which gives the worker its job
        # again (a new attempt, from the checkpoint).
        b.kill(signal.SIGKILL)
        done = self.finished(api_a, long_job["id"], timeout=40)
        self.assertEqual(done["state"], "succeeded", done)
        self.assertGreaterEqual(done["attempt"], 2)
        events = api_a.events(long_job["id"])
        check_contiguous(self, events)
        start = done["result"]["start"]
        self.assertGreaterEqual(start, 20)
        self.assertEqual(start % every, 0)
        self.assertEqual(tokens_by_attempt(events)[done["attempt"]], numbers(start, count))


@unittest.skipUnless(redis_cluster.available(), "redis-tools is not installed")
class ClusterFailoverTest(ConformanceTest):
    """Two brokers of one cluster (a Redis Cluster of 3 primaries + 3 replicas)."""

    def test_a_killed_brokers_closed_connection_fails_over_at_once(self):
        cluster = redis_cluster.RedisCluster(primaries=3, replicas=1)
        self.addCleanup(cluster.close)  # after the brokers (cleanups run last first)
        cluster.start()
        # 1 s heartbeats: 3 s of silence before a worker gives a broker up.
        url = f"redis-cluster://{cluster.seeds()}?partitions=16"
        a, b = [self.start_broker(args=["--store", url, "--retention", "1h"], heartbeat="1000ms")
                for _ in range(2)]
        api_a, api_b = self.client(a), self.client(b)
        self.start_sdk([a, b], "quick-roamer")
        count = 300
        job = api_a.submit(TYPE, {"count": count, "every_ms": 10}, max_attempts=1)
        self.wait_tokens(api_b, job["id"], 20)

        # A dies: its kernel closes the worker's connection, and the worker
        # says hello to B and has its next chunks committed there well before
        # three heartbeats of silence would have made it move.
        a.kill(signal.SIGKILL)
        killed = time.monotonic()
        stored = len(tokens(api_b.events(job["id"])))
        wait_until(lambda: metric(api_b, "jobcast_workers") == 1
                   and len(tokens(api_b.events(job["id"]))) > stored,
                   timeout=killed + 2.5 - time.monotonic(), what="a chunk acknowledged by B")
        print(f"worker's next chunk stored through B {time.monotonic() - killed:.2f}s after "
              "A's SIGKILL")
        done = self.finished(api_b, job["id"], timeout=30)
        self.assertEqual(done["state"], "succeeded", done)
        self.assertEqual(done["attempt"], 1)
        events = api_b.events(job["id"])
        check_contiguous(self, events)
        self.assertEqual(tokens(events), numbers(0, count))


if __name__ == "__main__":
    unittest.main()
