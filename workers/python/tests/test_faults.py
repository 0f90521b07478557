"""The Python SDK's guarantees under faults: a broker killed and restarted
mid-stream, a broker that is down while the handler emits, and a worker
stopped past its lease whose later writes must be refused."""
import asyncio
import signal
import threading
import time
import unittest

from support import SdkTest, counted, harness, jobcast


class FaultTest(SdkTest):
    def fixed_broker(self):
        """A broker on fixed ports, so that a restart is found at the same address."""
        addr = dict(http=f"127.0.0.1:{harness.free_port()}",
                    zmq=f"tcp://127.0.0.1:{harness.free_port()}")
        return self.start_broker(**addr), addr

    def test_broker_sigkill_and_restart_mid_stream_keeps_tokens_exactly_once_in_order(self):
        self.broker_restart(signal.SIGKILL)

    def test_broker_graceful_restart_mid_stream_keeps_tokens_exactly_once_in_order(self):
        self.broker_restart(signal.SIGTERM)  # the broker says "shutdown" to its workers

    def broker_restart(self, sig):
        broker, addr = self.fixed_broker()
        w = self.conformance_worker(broker, "py-restart")
        api = self.client(broker)
        job = api.submit("conformance.count", {"count": 1500, "every_ms": 1})
        harness.wait_until(lambda: len(self.tokens(api, job["id"])) >= 200, what="tokens")
        broker.kill(sig)
        broker = self.start_broker(**addr)
        api = self.client(broker)
        final = api.wait_state(job["id"], ("succeeded", "failed"), timeout=60)
        self.assertEqual((final["state"], final["attempt"]), ("succeeded", 1))
        harness.check_contiguous(self, api.events(job["id"]))
        self.assertEqual(self.tokens(api, job["id"]), counted(0, 1500))
        self.assertTrue(w.alive())

    def test_emit_blocks_while_the_broker_is_down_and_everything_arrives_after(self):
        broker, addr = self.fixed_broker()
        emitted = [0]
        release = threading.Event()
        w = jobcast.Worker(brokers=[broker.zmq], types=["count"], name="py-down",
                           max_unacked_bytes=4096, reconnect_max=0.3)

        @w.handler("count")
        async def count(job):
            for i in range(3000):
                while i == 500 and not release.is_set():  # the broker goes down here
                    await asyncio.sleep(0.01)
                await job.token(f"{i} ")
                emitted[0] += 1
            return {}

        running = self.in_process(w)
        api = self.client(broker)
        job = api.submit("count", {})
        harness.wait_until(lambda: emitted[0] >= 500, what="500 tokens")
        broker.kill(signal.SIGKILL)
        waits = w.stats().emit_waits
        release.set()
        # Without acks the handler stops at the bound: 4096 bytes of ~110-byte frames.
        harness.wait_until(lambda: w.stats().emit_waits > waits, what="emit to wait")
        stuck = emitted[0]
        time.sleep(1.0)
        self.assertEqual(emitted[0], stuck)
        self.assertLess(stuck, 600)
        self.assertLessEqual(w.stats().unacked_bytes, 4096)
        broker = self.start_broker(**addr)
        api = self.client(broker)
        self.assertEqual(api.wait_state(job["id"], ("succeeded", "failed"))["state"], "succeeded")
        self.assertEqual(self.tokens(api, job["id"]), counted(0, 3000))
        running.stop()
        self.assertGreater(w.stats().reconnects, 0)

    def test_a_worker_stopped_past_its_lease_has_its_later_writes_rejected(self):
        broker = self.start_broker()  # lease: 3 heartbeats of 200 ms
        api = self.client(broker)
        zombie = self.conformance_worker(broker, "py-zombie")
        zombie.wait_for_line("connected broker=")
        job = api.submit("conformance.count",
                         {"count": 400, "every_ms": 5, "checkpoint_every": 20}, max_attempts=3)
        harness.wait_until(lambda: len(self.tokens(api, job["id"])) >= 50, what="tokens")
        zombie.kill(signal.SIGSTOP)
        rejected_before = harness.metric(api, "jobcast_rejected_messages_total",
                                         {"reason": "lease"}) or 0
        # The lease lapses and the job resumes from its checkpoint on another worker.
        self.conformance_worker(broker, "py-heir")
        harness.wait_until(lambda: api.job(job["id"])["attempt"] == 2, what="attempt 2")
        zombie.kill(signal.SIGCONT)
        zombie.wait_for_line("job is no longer ours")
        final = api.wait_state(job["id"], ("succeeded", "failed"), timeout=60)
        self.assertEqual((final["state"], final["attempt"]), ("succeeded", 2))
        self.assertGreater(harness.metric(api, "jobcast_rejected_messages_total",
                                          {"reason": "lease"}), rejected_before)
        # After attempt 2 starts, only its tokens: from its checkpoint to the end.
        events = api.events(job["id"])
        harness.check_contiguous(self, events)
        running2 = next(i for i, e in enumerate(events) if e["kind"] == "state"
                        and e["data"]["state"] == "running" and e["data"]["attempt"] == 2)
        after = [e["data"]["text"] for e in events[running2:] if e["kind"] == "token"]
        resumed_at = 400 - len(after)
        self.assertEqual(resumed_at % 20, 0)
        self.assertEqual(after, counted(resumed_at, 400))
        self.assertTrue(zombie.alive())


if __name__ == "__main__":
    unittest.main()
