"""The Python SDK against the real broker: streaming, failures, bad params,
cancel, CURVE, sync handlers, and garbage from a broker that misbehaves."""
import asyncio
import errno
import os
import threading
import time
import unittest

import msgpack
import zmq

from support import SdkTest, counted, harness, jobcast


class WorkerTest(SdkTest):
    def test_the_ten_line_worker_streams_tokens_a_client_sees_in_order(self):
        broker = self.start_broker()
        w = self.start_py_worker("hello.py", env={"JOBCAST_BROKER": broker.zmq})
        api = self.client(broker)
        job = api.submit("hello", {"name": "py"})
        self.assertEqual(api.wait_state(job["id"], ("succeeded", "failed"))["state"], "succeeded")
        events = api.events(job["id"])
        harness.check_contiguous(self, events)
        self.assertEqual(self.tokens(api, job["id"]), ["hello", ", ", "py", "!"])
        self.assertEqual(api.job(job["id"])["result"], {"greeted": "py"})
        w.kill(harness.signal.SIGTERM)
        self.assertEqual(w.proc.returncode, 0)

    def test_failures_keep_their_message_and_retryable_flag_and_bad_params_fail_cleanly(self):
        broker = self.start_broker()
        self.conformance_worker(broker, "py-fail", capacity=2).wait_for_line("connected broker=")
        api = self.client(broker)
        final = api.submit("conformance.count", {"count": 10, "fail_at": 4, "message": "no"})
        retry = api.submit("conformance.count", {"count": 10, "fail_at": 4, "retryable": True},
                           max_attempts=2)
        bad = api.submit("conformance.count", {"count": "ten"})
        final, retry, bad = (api.wait_state(j["id"], ("succeeded", "failed"))
                             for j in (final, retry, bad))
        self.assertEqual((final["state"], final["attempt"], final["error"]), ("failed", 1, "no"))
        self.assertEqual((retry["state"], retry["attempt"], retry["error"]),
                         ("failed", 2, "failed at 4"))
        self.assertEqual((bad["state"], bad["attempt"]), ("failed", 1))
        self.assertIn('"count"', bad["error"])
        # The worker keeps serving.
        ok = api.submit("conformance.count", {"count": 50, "progress_every": 10})
        self.assertEqual(api.wait_state(ok["id"], ("succeeded", "failed"))["state"], "succeeded")
        self.assertEqual(self.tokens(api, ok["id"]), counted(0, 50))
        progress = [e["data"]["fraction"] for e in api.events(ok["id"]) if e["kind"] == "progress"]
        self.assertEqual(progress, [0.2, 0.4, 0.6, 0.8, 1.0])

    def test_cancel_reaches_the_handler_within_one_heartbeat(self):
        broker = self.start_broker()  # heartbeat 200 ms
        started, noticed = threading.Event(), []
        w = jobcast.Worker(brokers=[broker.zmq], types=["wait"], name="py-cancel")

        @w.handler("wait")
        async def wait(job):
            await job.token("started")
            started.set()
            await job.wait_cancelled(30)
            noticed.append(time.monotonic())
            return {}

        self.in_process(w)
        api = self.client(broker)
        job = api.submit("wait", {})
        self.assertTrue(started.wait(20))
        asked = time.monotonic()
        status, _, _ = api.request("POST", f"/v1/jobs/{job['id']}/cancel")
        self.assertEqual(status, 202)
        self.assertEqual(api.wait_state(job["id"], ("cancelled", "failed"))["state"], "cancelled")
        self.assertLess(noticed[0] - asked, 0.2)

    def test_sync_handlers_block_on_the_same_calls(self):
        broker = self.start_broker()
        w = jobcast.Worker(brokers=[broker.zmq], types=["sync"], name="py-sync", capacity=2)

        @w.handler("sync")
        def sync(job):
            start = int(job.checkpoint or b"0")
            for i in range(start, 300):
                job.token(f"{i} ")
                if i % 100 == 99:
                    job.save_checkpoint(str(i + 1))
            job.log("info", "done")
            return {"n": 300}

        running = self.in_process(w)
        api = self.client(broker)
        jobs = [api.submit("sync", {}) for _ in range(3)]
        for job in jobs:
            self.assertEqual(api.wait_state(job["id"], ("succeeded", "failed"))["state"],
                             "succeeded")
            self.assertEqual(self.tokens(api, job["id"]), counted(0, 300))
        running.stop()
        self.assertEqual(w.stats().jobs_succeeded, 3)

    def test_a_handler_schema_makes_the_broker_refuse_bad_params_with_422(self):
        broker = self.start_broker()
        w = jobcast.Worker(brokers=[broker.zmq], types=["greet"], name="py-schema")

        @w.handler("greet", schema={"type": "object", "required": ["name"],
                                    "properties": {"name": {"type": "string"}}})
        async def greet(job):
            return {"greeted": job.params["name"]}

        running = self.in_process(w)
        api = self.client(broker)

        def announced():
            status, body, _ = api.request("GET", "/v1/types")
            return status == 200 and any(t["type"] == "greet" and t["schema"]
                                         for t in body["types"])
        harness.wait_until(announced, timeout=20, what="the broker to know greet's schema")
        status, body, _ = api.request("POST", "/v1/jobs", {"type": "greet", "params": {}})
        self.assertEqual(status, 422)
        self.assertEqual((body["error"]["code"], body["error"]["rule"]),
                         ("invalid_params", "required"))
        job = api.submit("greet", {"name": "Ada"})
        self.assertEqual(api.wait_state(job["id"], ("succeeded", "failed"))["result"],
                         {"greeted": "Ada"})
        running.stop()

    def test_stop_finishes_running_jobs_or_hands_them_back(self):
        broker = self.start_broker()
        api = self.client(broker)
        w = jobcast.Worker(brokers=[broker.zmq], types=["slow"], name="py-finish",
                           on_stop="finish")
        started = threading.Event()

        @w.handler("slow")
        async def slow(job):
            started.set()
            for i in range(10):
                await job.token(f"{i} ")
                await asyncio.sleep(0.05)
            return {"finished": True}

        running = self.in_process(w)
        finished = api.submit("slow", {})
        self.assertTrue(started.wait(20))
        running.stop()  # returns once the job is done and acknowledged
        job = api.job(finished["id"])
        self.assertEqual((job["state"], job["result"]), ("succeeded", {"finished": True}))
        # The conformance worker hands its job back on SIGTERM: another worker
        # resumes it from the checkpoint once the lease lapses.
        quitter = self.conformance_worker(broker, "py-quitter")
        job = api.submit("conformance.count", {"count": 300, "every_ms": 5,
                                               "checkpoint_every": 10})
        harness.wait_until(lambda: len(self.tokens(api, job["id"])) >= 30, what="tokens")
        quitter.kill(harness.signal.SIGTERM)
        self.assertEqual(quitter.proc.returncode, 0)
        self.conformance_worker(broker, "py-heir")
        final = api.wait_state(job["id"], ("succeeded", "failed"))
        self.assertEqual((final["state"], final["attempt"]), ("succeeded", 2))
        self.assertGreater(final["result"]["start"], 0)

    def test_a_silent_broker_is_left_for_the_next_one_in_the_list(self):
        broker = self.start_broker()
        dead = f"tcp://127.0.0.1:{harness.free_port()}"
        w = jobcast.Worker(brokers=[dead, broker.zmq], types=["hello"], name="py-list",
                           liveness=1, reconnect_max=0.2)

        @w.handler("hello")
        async def hello(job):
            await job.token("found")
            return {}

        self.in_process(w)
        api = self.client(broker)
        job = api.submit("hello", {})
        self.assertEqual(api.wait_state(job["id"], ("succeeded", "failed"))["state"], "succeeded")
        self.assertGreaterEqual(w.stats().reconnects, 1)

    def test_curve(self):
        keys = {}
        allow = os.path.join(self.tmp.name, "allowed")
        os.mkdir(allow)
        for name in ("broker", "worker"):
            public, secret = zmq.curve_keypair()
            keys[name] = os.path.join(self.tmp.name, name)
            with open(keys[name] + ".key", "w") as f:
                f.write(secret.decode() + "\n")
            with open(keys[name] + ".pub", "w") as f:
                f.write(public.decode() + "\n")
        os.link(keys["worker"] + ".pub", os.path.join(allow, "worker.pub"))
        broker = self.start_broker(args=["--curve-secret-key-file", keys["broker"] + ".key",
                                         "--curve-allow", allow])
        w = jobcast.Worker(brokers=[broker.zmq], types=["hello"], name="py-curve",
                           curve_server_key=keys["broker"] + ".pub",
                           curve_secret_key_file=keys["worker"] + ".key")

        @w.handler("hello")
        async def hello(job):
            await job.token("secret")
            return {}

        self.in_process(w)
        api = self.client(broker)
        job = api.submit("hello", {})
        self.assertEqual(api.wait_state(job["id"], ("succeeded", "failed"))["state"], "succeeded")
        self.assertEqual(self.tokens(api, job["id"]), ["secret"])


class FakeBrokerTest(SdkTest):
    """A ROUTER posing as the broker, so the test says exactly what the worker gets."""

    def test_garbage_on_the_worker_socket_is_counted_and_ignored(self):
        router = self.zmq_socket(zmq.ROUTER)
        port = router.bind_to_random_port("tcp://127.0.0.1")
        w = self.conformance_worker(f"tcp://127.0.0.1:{port}", "py-garbage")
        peer, hello = self.recv_from(router, "hello")
        self.assertEqual((hello["worker"], hello["types"], hello["inflight"]),
                         ("py-garbage", ["conformance.count"], []))
        send = lambda m: router.send_multipart([peer, m if isinstance(m, bytes)
                                                else msgpack.packb(m)])
        send({"v": 1, "t": "welcome", "heartbeat_ms": 1000, "session": "s1"})
        for frame in [b"", b"\xc1\xc1", b"\x00" * 100, msgpack.packb([1, 2, 3]),
                      {"v": 1, "t": "bogus"}, {"v": 1, "t": "ack", "job": 5},
                      {"v": 1, "t": "welcome", "heartbeat_ms": "x"}, os.urandom(4096)]:
            send(frame)
        # An assign it cannot read is answered with a fail, not left leased.
        send({"v": 1, "t": "assign", "job": "bad", "attempt": 2, "type": "conformance.count",
              "params": "not a map", "checkpoint": b""})
        _, fail = self.recv_from(router, "fail")
        self.assertEqual((fail["job"], fail["attempt"], fail["wseq"], fail["retryable"]),
                         ("bad", 2, 1, False))
        self.assertIn("cannot decode", fail["error"])
        # Then a good job runs as usual.
        send({"v": 1, "t": "assign", "job": "good", "attempt": 1, "type": "conformance.count",
              "params": {"count": 3}, "checkpoint": b""})
        got = [self.recv_from(router, ("chunk", "done"))[1] for _ in range(4)]
        self.assertEqual([(m["t"], m["wseq"]) for m in got],
                         [("chunk", 1), ("chunk", 2), ("chunk", 3), ("done", 4)])
        self.assertEqual([m["data"]["text"] for m in got[:3]], ["0 ", "1 ", "2 "])
        send({"v": 1, "t": "ack", "job": "good", "attempt": 1, "wseq": 4})
        # Heartbeats list what it holds (the unacked "bad" attempt) and the
        # assigns it received (both, the unreadable one too).
        _, hb = self.recv_from(router, "heartbeat", want=lambda m: "inflight" in m)
        self.assertEqual((hb["inflight"], hb["assigned"]),
                         ([{"job": "bad", "attempt": 2, "next_wseq": 2}], 2))
        self.assertTrue(w.alive())
        w.wait_for_line("undecodable broker message")

    def test_a_reject_counts_only_for_the_attempt_it_names(self):
        router = self.zmq_socket(zmq.ROUTER)
        port = router.bind_to_random_port("tcp://127.0.0.1")
        w = self.conformance_worker(f"tcp://127.0.0.1:{port}", "py-reject")
        peer, _ = self.recv_from(router, "hello")
        send = lambda m: router.send_multipart([peer, msgpack.packb(m)])
        send({"v": 1, "t": "welcome", "heartbeat_ms": 100})
        send({"v": 1, "t": "assign", "job": "long", "attempt": 3, "type": "conformance.count",
              "params": {"count": 1000, "every_ms": 10}, "checkpoint": b""})
        self.recv_from(router, "chunk")
        # About an attempt given up earlier: ignored, the stream goes on.
        send({"v": 1, "t": "reject", "job": "long", "reason": "lease", "attempt": 2})
        _, later = self.recv_from(router, "chunk", want=lambda m: m["wseq"] >= 10)
        self.assertEqual(later["attempt"], 3)
        # About the attempt it runs: dropped, and no longer listed as held.
        send({"v": 1, "t": "reject", "job": "long", "reason": "lease", "attempt": 3})
        w.wait_for_line("job is no longer ours job=long attempt=3")
        self.recv_from(router, "heartbeat", want=lambda m: m.get("inflight") == [])
        self.assertTrue(w.alive())

    def test_a_killed_brokers_closed_connection_is_left_at_once_for_the_next(self):
        broker = self.start_broker(heartbeat="1000ms")  # 3 s of silence before leaving it
        router = self.zmq_socket(zmq.ROUTER)  # the next broker of the list, posed
        port = router.bind_to_random_port("tcp://127.0.0.1")
        self.conformance_worker(f"{broker.zmq},tcp://127.0.0.1:{port}", "py-closed")
        api = self.client(broker)
        job = api.submit("conformance.count", {"count": 1000, "every_ms": 10})
        harness.wait_until(lambda: len(self.tokens(api, job["id"])) >= 5, what="5 tokens")

        broker.kill()  # SIGKILL: its kernel closes the worker's connection
        killed = time.monotonic()
        # (A hello from a failover before the job, on a slow start, lists nothing.)
        peer, hello = self.recv_from(router, "hello", timeout=1.5, want=lambda m: m["inflight"])
        self.assertEqual([(j["job"], j["attempt"]) for j in hello["inflight"]], [(job["id"], 1)])
        router.send_multipart([peer, msgpack.packb({"v": 1, "t": "welcome",
                                                    "heartbeat_ms": 1000})])
        _, chunk = self.recv_from(router, ("chunk", "chunks"),
                                  timeout=killed + 1.5 - time.monotonic())
        self.assertEqual((chunk["job"], chunk["attempt"]), (job["id"], 1))

    def test_a_broker_that_says_shutdown_and_hangs_up_again_and_again_is_rejoined_each_time(self):
        # A broker's graceful stop: "shutdown", then its socket closes. The
        # worker closes its connection on the reject while the hang-up reaches
        # its ZeroMQ I/O thread; a "disconnected" event for a monitor already
        # closed would stall that thread and no later connection would be made.
        # The hang-up's delay after the reject varies to cross that moment.
        router = self.zmq_socket(zmq.ROUTER)
        port = router.bind_to_random_port("tcp://127.0.0.1")
        w = jobcast.Worker(brokers=[f"tcp://127.0.0.1:{port}"], types=["t"], name="py-rejoin",
                           reconnect_min=0.005, reconnect_max=0.02)
        stop = threading.Event()

        @w.handler("t")
        async def stream(job):  # a handler streaming throughout, as in a real stop
            while not stop.is_set():
                await job.token("x")
                await asyncio.sleep(0.0005)
            return {}

        running = self.in_process(w)
        rounds = 300
        for n in range(rounds):
            try:
                peer, _ = self.recv_from(router, "hello", timeout=5)
            except AssertionError as e:
                self.fail(f"round {n}: {e}")
            send = lambda m: router.send_multipart([peer, msgpack.packb(m)])
            send({"v": 1, "t": "welcome", "heartbeat_ms": 1000})
            if n == 0:
                send({"v": 1, "t": "assign", "job": "j", "attempt": 1, "type": "t",
                      "params": {}, "checkpoint": b""})
            self.recv_from(router, ("chunk", "chunks"), timeout=5)
            send({"v": 1, "t": "reject", "job": "", "reason": "shutdown", "attempt": 0})
            time.sleep((n % 25) * 200e-6)
            router.close(0)
            router = self.zmq_socket(zmq.ROUTER)
            harness.wait_until(lambda: self.try_bind(router, port), what="the port again")
        self.recv_from(router, "hello", timeout=5)
        stop.set()
        running.stop()
        self.assertGreaterEqual(w.stats().reconnects, rounds)

    @staticmethod
    def try_bind(sock, port):
        try:
            sock.bind(f"tcp://127.0.0.1:{port}")
            return True
        except zmq.ZMQError as e:  # the previous socket's teardown may still hold it
            if e.errno != errno.EADDRINUSE:
                raise
            return False

    def recv_from(self, router, types, timeout=10.0, want=None):
        types = {types} if isinstance(types, str) else set(types)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            self.assertGreater(left, 0, f"no {types} within {timeout}s")
            if router.poll(int(left * 1000) + 1):
                peer, frame = router.recv_multipart()
                m = msgpack.unpackb(frame, raw=False)
                if m.get("t") in types and (want is None or want(m)):
                    return peer, m


if __name__ == "__main__":
    unittest.main()
