"""Guarantees 2, 5 and 6 under real faults: SIGKILL of workers and of the
broker, cancellation reaching the worker's processes, and a rogue peer."""

import os
import signal
import subprocess
import time
import unittest

import msgpack
import zmq

from harness import JobcastTest, ZmqPeers, check_contiguous, free_port, metric, sim_text, wait_until


def pids_matching(pattern):
    out = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


class WorkerFailoverTest(JobcastTest):
    def test_killed_worker_job_resumes_elsewhere_from_its_checkpoint(self):
        broker = self.start_broker(args=["--liveness", "3"])
        api = self.client(broker)
        first = self.start_worker(broker, ["research"], name="first")
        job = api.submit("research", {"topic": "failover", "stage_ms": 400}, max_attempts=3)

        # After the first stage's checkpoint is committed (the progress event
        # that follows it is visible), the worker dies without a word.
        wait_until(lambda: any(e["kind"] == "progress" and e["data"]["fraction"] >= 0.25
                               for e in api.events(job["id"])),
                   timeout=30, what="first stage done")
        first.kill(signal.SIGKILL)
        self.start_worker(broker, ["research"], name="second")

        done = api.wait_state(job["id"], ["succeeded", "failed"], timeout=60)
        self.assertEqual(done["state"], "succeeded", done)
        self.assertEqual(done["attempt"], 2)
        events = api.events(job["id"])
        check_contiguous(self, events)
        states = [e["data"] for e in events if e["kind"] == "state"]
        self.assertEqual([s["state"] for s in states],
                         ["queued", "running", "queued", "running", "succeeded"])
        self.assertEqual(states[1]["worker"], "first")
        self.assertIn("first", states[2]["reason"])
        self.assertEqual(states[3]["worker"], "second")
        self.assertEqual(states[3]["attempt"], 2)
        # The first stage was not run again: its start was reported once.
        plan_starts = [e for e in events if e["kind"] == "progress"
                       and e["data"].get("stage") == "plan" and e["data"]["fraction"] == 0]
        self.assertEqual(len(plan_starts), 1)

    def test_worker_paused_past_its_lease_comes_back_and_the_job_finishes_whole(self):
        # SIGSTOP is a GC pause, swap or a frozen VM: the broker gives the
        # worker up (heartbeat 200 ms x liveness 3), requeues the job, and the
        # worker comes back with frames of the attempt it no longer holds. The
        # job must be taken up again and finish: never stay leased to a worker
        # that does not run it.
        broker = self.start_broker(args=["--liveness", "3"])
        api = self.client(broker)
        worker = self.start_worker(broker, ["llm.generate"], name="pausing")
        params = {"prompt": "pause", "max_tokens": 30000, "tokens_per_second": 6000, "seed": 4}
        job = api.submit("llm.generate", params, max_attempts=10)
        api.wait_state(job["id"], "running")
        for pause in (1.0, 0.8, 1.2):
            wait_until(lambda: api.job(job["id"])["state"] in ("running", "succeeded"),
                       timeout=30, what="the job to run again")
            os.kill(worker.proc.pid, signal.SIGSTOP)
            time.sleep(pause)  # the fault itself: a pause longer than the lease
            os.kill(worker.proc.pid, signal.SIGCONT)
            time.sleep(0.4)    # let it stream a while before the next pause
        done = api.wait_state(job["id"], ["succeeded", "failed"], timeout=90)
        self.assertEqual(done["state"], "succeeded", done)
        self.assertEqual(done["result"]["text"], sim_text("pause", 4, 30000))
        self.assertGreater(done["attempt"], 1, "the pauses outlasted the lease")
        check_contiguous(self, api.events(job["id"]))
        self.assertGreater(metric(api, "jobcast_leases_lost_total"), 0)
        # The same worker is still registered and takes the next job.
        after = api.submit("llm.generate", {"prompt": "after", "max_tokens": 20,
                                            "tokens_per_second": 0, "seed": 1})
        self.assertEqual(api.wait_state(after["id"], ["succeeded", "failed"])["state"],
                         "succeeded")
        self.assertEqual(metric(api, "jobcast_workers"), 1)

    def test_broker_paused_past_the_lease_does_not_take_jobs_from_live_workers(self):
        # The broker itself stops (SIGSTOP here; a frozen VM, CPU starvation or
        # a stalled disk in production). Its workers went on heart-beating the
        # whole time: when it wakes up it must not count its own absence as
        # their silence and requeue what they are running.
        broker = self.start_broker(args=["--liveness", "3"])
        api = self.client(broker)
        self.start_worker(broker, ["llm.generate"], name="steady")
        params = {"prompt": "steady", "max_tokens": 12000, "tokens_per_second": 3000, "seed": 2}
        job = api.submit("llm.generate", params)
        api.wait_state(job["id"], "running")
        for pause in (1.5, 1.0):
            os.kill(broker.proc.pid, signal.SIGSTOP)
            time.sleep(pause)  # the fault itself: the broker is away past the lease
            os.kill(broker.proc.pid, signal.SIGCONT)
            wait_until(lambda: api.job(job["id"]), what="the broker to answer again")
        done = api.wait_state(job["id"], ["succeeded", "failed"], timeout=60)
        self.assertEqual(done["state"], "succeeded", done)
        self.assertEqual(done["attempt"], 1, "a live worker's lease was taken")
        self.assertEqual(metric(api, "jobcast_leases_lost_total"), 0)
        self.assertGreaterEqual(metric(api, "jobcast_gateway_stalls_total"), 1)  # and says so
        self.assertEqual(done["result"]["text"], sim_text("steady", 2, 12000))

    def test_job_fails_after_max_attempts(self):
        broker = self.start_broker(args=["--liveness", "2"])
        api = self.client(broker)
        job = api.submit("research", {"topic": "doomed", "stage_ms": 5000}, max_attempts=2)
        for attempt in (1, 2):
            w = self.start_worker(broker, ["research"], name=f"doomed{attempt}")
            wait_until(lambda: api.job(job["id"])["attempt"] == attempt
                       and api.job(job["id"])["state"] == "running", what=f"attempt {attempt}")
            w.kill(signal.SIGKILL)
        done = api.wait_state(job["id"], ["failed"], timeout=30)
        self.assertIn("2 attempts", done["error"])
        self.assertEqual(api.events(job["id"])[-1]["data"]["state"], "failed")


class BrokerRestartTest(JobcastTest):
    def test_sigkill_broker_mid_stream_loses_and_duplicates_nothing(self):
        http, zport = free_port(), free_port()
        args = dict(http=f"127.0.0.1:{http}", zmq=f"tcp://127.0.0.1:{zport}")
        broker = self.start_broker(**args)
        api = self.client(broker)
        for i in range(2):
            self.start_worker(broker, ["llm.generate"], name=f"llm{i}", capacity=8)
        n_tokens = 300
        jobs = [api.submit("llm.generate", {"prompt": f"restart {i}", "max_tokens": n_tokens,
                                            "tokens_per_second": 150, "seed": i})
                for i in range(12)]
        wait_until(lambda: sum(api.job(j["id"])["last_seq"] for j in jobs) > 600,
                   what="jobs streaming")

        broker.kill(signal.SIGKILL)
        started = time.monotonic()
        broker = self.start_broker(**args)
        print(f"broker serving again {time.monotonic() - started:.3f}s after SIGKILL")
        api = self.client(broker)

        for i, job in enumerate(jobs):
            done = api.wait_state(job["id"], ["succeeded", "failed"], timeout=120)
            self.assertEqual(done["state"], "succeeded", done)
            events = api.events(job["id"])
            check_contiguous(self, events)
            tokens = [e["data"]["text"] for e in events if e["kind"] == "token"]
            # Every chunk a worker emitted is in the log exactly once, in order.
            self.assertEqual(len(tokens), n_tokens)
            self.assertEqual("".join(tokens), sim_text(f"restart {i}", i, n_tokens))
            # The worker kept its lease across the restart: no retry was needed.
            self.assertEqual(done["attempt"], 1)


class CancelTest(JobcastTest):
    def test_cancel_running_exec_kills_its_process_group(self):
        broker = self.start_broker()
        api = self.client(broker)
        self.start_worker(broker, ["exec"], name="exec", args=["--exec-allow", "sh"])
        marker = f"{os.getpid()}{int(time.time() * 1000) % 100000}"  # digits: sleep must parse it
        script = f"sleep 901.{marker} & sleep 902.{marker} & echo started; wait"
        job = api.submit("exec", {"command": "sh", "args": ["-c", script]})
        wait_until(lambda: any(e["kind"] == "log" and e["data"]["message"] == "started"
                               for e in api.events(job["id"])), what="script started")
        # both sleeps (and the shell, whose command line names them too)
        self.assertGreaterEqual(len(pids_matching(f"sleep 90[12].{marker}")), 2)

        status, _, _ = api.request("POST", f"/v1/jobs/{job['id']}/cancel")
        self.assertEqual(status, 202)
        done = api.wait_state(job["id"], ["cancelled", "failed", "succeeded"], timeout=30)
        self.assertEqual(done["state"], "cancelled")
        wait_until(lambda: not pids_matching(f"sleep 90[12].{marker}"), timeout=10,
                   what="the job's processes to be gone")


class AckTest(ZmqPeers, JobcastTest):
    def test_chunks_are_acknowledged_at_once_by_a_broker_with_a_long_heartbeat(self):
        # Acks of chunks alone do not wake the broker's worker loop (they go
        # out with its next round); a loop asleep for its heartbeat (10 s
        # here) must still be woken for them, or a worker would wait that
        # long to free its buffer.
        broker = self.start_broker(heartbeat="10000ms")
        api = self.client(broker)
        w = self.dealer(broker)
        self.say_hello(w, "w-ack", ["acked"])
        job = api.submit("acked", {})
        assign = self.recv_type(w, "assign")
        for wseq in range(1, 6):
            w.send(msgpack.packb({"v": 1, "t": "chunk", "job": job["id"],
                                  "attempt": assign["attempt"], "wseq": wseq, "kind": "token",
                                  "data": {"text": f"t{wseq}"}, "ts": 1}))
            ack = self.recv_type(w, "ack", timeout=3)
            self.assertEqual((ack["job"], ack["wseq"]), (job["id"], wseq))
            time.sleep(0.2)  # the loop goes back to its long sleep
        self.assertEqual([e["data"]["text"] for e in api.events(job["id"]) if e["kind"] == "token"],
                         [f"t{i}" for i in range(1, 6)])


class BurstTest(ZmqPeers, JobcastTest):
    def test_a_backlog_of_chunks_is_committed_in_bounded_transactions(self):
        # A worker's backlog read in one round of the broker's worker loop
        # (up to 8,192 messages, a `chunks` being up to 64 events) goes to
        # the store in bounded groups: as one group it was one transaction of
        # all of it, held in memory at once past the writer's queue bound.
        # The backlog here: 2,000 `chunks` of 64 events (128,000), sent while
        # the broker was stopped.
        broker = self.start_broker()
        api = self.client(broker)
        w = self.dealer(broker)
        w.setsockopt(zmq.SNDHWM, 0)  # queue them all while the broker is away
        welcome = self.say_hello(w, "w-burst", ["burst"])
        self.assertIn("chunks", welcome.get("features", []))
        job = api.submit("burst", {})
        assign = self.recv_type(w, "assign")
        messages, per_message = 2000, 64
        os.kill(broker.proc.pid, signal.SIGSTOP)
        try:
            for m in range(messages):
                w.send(msgpack.packb({
                    "v": 1, "t": "chunks", "job": job["id"], "attempt": assign["attempt"],
                    "wseq": 1 + m * per_message,
                    "events": [{"kind": "token", "data": {"text": "x"}}] * per_message}))
        finally:
            os.kill(broker.proc.pid, signal.SIGCONT)
        last = messages * per_message
        self.recv_type(w, "ack", timeout=60, want=lambda a: a["wseq"] == last)
        # Every event stored once, in order (two state events come first).
        self.assertEqual(api.job(job["id"])["last_seq"], last + 2)
        commits = metric(api, "jobcast_store_batch_events_count")
        bounded = metric(api, "jobcast_store_batch_events_bucket", {"le": "65536"})
        self.assertGreater(commits, 1)
        self.assertEqual(commits, bounded, "a transaction of more than 65,536 events")


class RogueWorkerTest(ZmqPeers, JobcastTest):
    def test_garbage_and_foreign_job_ids_are_rejected_and_counted(self):
        broker = self.start_broker()
        api = self.client(broker)
        self.start_worker(broker, ["llm.generate"], name="honest")
        params = {"prompt": "rogue", "max_tokens": 200, "tokens_per_second": 100, "seed": 3}
        job = api.submit("llm.generate", params)
        wait_until(lambda: api.job(job["id"])["state"] == "running", what="running")

        rogue = self.dealer(broker)
        pack = msgpack.packb
        rogue.send(b"\xc1\xff garbage")
        rogue.send(pack({"v": 2, "t": "heartbeat"}))
        rogue.send(pack({"v": 1, "t": "no-such-type"}))
        rogue.send(pack([1, 2, 3]))
        rogue.send(pack({"v": 1, "t": "chunk", "job": job["id"]}))  # missing fields
        rogue.send(b"\x80" * 10)  # a map followed by trailing garbage
        self.say_hello(rogue, "rogue", ["none"])
        # Someone else's job, right attempt: not this peer's lease.
        rogue.send(pack({"v": 1, "t": "chunk", "job": job["id"], "attempt": 1, "wseq": 1,
                         "kind": "token", "data": {"text": "INJECTED"}, "ts": 1}))
        rogue.send(pack({"v": 1, "t": "done", "job": job["id"], "attempt": 1, "wseq": 2,
                         "result": {}}))
        replies = []
        while len([r for r in replies if r["t"] == "reject"]) < 2:
            self.assertTrue(rogue.poll(5000), "no reject from the broker")
            replies.append(msgpack.unpackb(rogue.recv()))
        rejects = [r for r in replies if r["t"] == "reject"]
        self.assertEqual({r["job"] for r in rejects}, {job["id"]})
        self.assertEqual({r["reason"] for r in rejects}, {"lease"})

        wait_until(lambda: (metric(api, "jobcast_rejected_messages_total",
                                   {"reason": "malformed"}) or 0) >= 6, what="malformed counted")
        self.assertGreaterEqual(
            metric(api, "jobcast_rejected_messages_total", {"reason": "lease"}), 2)

        done = api.wait_state(job["id"], ["succeeded", "failed"], timeout=60)
        self.assertEqual(done["state"], "succeeded")
        text = "".join(e["data"]["text"] for e in api.events(job["id"]) if e["kind"] == "token")
        self.assertEqual(text, sim_text("rogue", 3, 200))
        self.assertNotIn("INJECTED", text)

    def test_job_held_by_a_worker_that_forgot_it_is_requeued(self):
        # A worker (anyone's own, speaking protocol v1) takes a job, loses it
        # (a handler thread died, a bug) and goes on heart-beating: its
        # heartbeats list what it holds, so the broker takes the lease back
        # instead of leaving the job running forever.
        broker = self.start_broker(args=["--liveness", "3"])
        api = self.client(broker)
        forgetful = self.dealer(broker)
        pack = msgpack.packb
        self.say_hello(forgetful, "forgetful", ["llm.generate"])
        params = {"prompt": "forgotten", "max_tokens": 100, "tokens_per_second": 0, "seed": 6}
        job = api.submit("llm.generate", params, max_attempts=5)
        assign = None
        while assign is None:
            self.assertTrue(forgetful.poll(5000), "no assign")
            m = msgpack.unpackb(forgetful.recv())
            assign = m if m["t"] == "assign" else None
        self.assertEqual((assign["job"], assign["attempt"]), (job["id"], 1))
        # It heart-beats for longer than a lease, listing nothing though it got one assign.
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline and len(self.states(api, job)) < 3:
            forgetful.send(pack({"v": 1, "t": "heartbeat", "inflight": [], "assigned": 1}))
            time.sleep(0.1)  # the heartbeat period of this hand-written worker
        states = self.states(api, job)
        self.assertEqual([s["state"] for s in states[:3]], ["queued", "running", "queued"],
                         "the lease was taken back")
        self.assertIn("forgetful is not running it", states[2]["reason"])
        forgetful.close()  # (it may have been given attempt 2: that one expires with it)

        self.start_worker(broker, ["llm.generate"], name="honest")
        done = api.wait_state(job["id"], ["succeeded", "failed"], timeout=60)
        self.assertEqual(done["state"], "succeeded", done)
        self.assertEqual(done["result"]["text"], sim_text("forgotten", 6, 100))
        self.assertEqual(self.states(api, job)[-2]["worker"], "honest")
        self.assertGreaterEqual(metric(api, "jobcast_leases_lost_total"), 1)

    def test_a_worker_clock_in_year_9999_is_stored_and_timed_without_harm(self):
        # A worker's ts is its own: the latest one the broker keeps (the last
        # microsecond of year 9999) must neither stop the broker (the
        # sanitizer build aborts on an overflow) nor count in the transport
        # stage as a time from the future.
        broker = self.start_broker()
        api = self.client(broker)
        worker = self.dealer(broker)
        pack = msgpack.packb
        self.say_hello(worker, "far-future", ["llm.generate"])
        job = api.submit("llm.generate", {"prompt": "p", "max_tokens": 1, "seed": 1})
        assign = None
        while assign is None:
            self.assertTrue(worker.poll(5000), "no assign")
            m = msgpack.unpackb(worker.recv())
            assign = m if m["t"] == "assign" else None
        last_microsecond = 253402300799999999
        transport = {"stage": "transport"}
        before = metric(api, "jobcast_event_stage_seconds_count", transport) or 0
        for wseq, ts in enumerate([last_microsecond, last_microsecond - 1], start=1):
            worker.send(pack({"v": 1, "t": "chunk", "job": job["id"], "attempt": 1,
                              "wseq": wseq, "kind": "token", "data": {"text": f"t{wseq}"},
                              "ts": ts}))
        worker.send(pack({"v": 1, "t": "done", "job": job["id"], "attempt": 1, "wseq": 3,
                          "result": {"text": "t1t2"}}))
        done = api.wait_state(job["id"], ["succeeded", "failed"], timeout=30)
        self.assertEqual(done["state"], "succeeded")
        tokens = [e for e in api.events(job["id"]) if e["kind"] == "token"]
        self.assertEqual([e["data"]["text"] for e in tokens], ["t1", "t2"])
        self.assertEqual([e["ts"] for e in tokens], [last_microsecond, last_microsecond - 1])
        self.assertEqual(metric(api, "jobcast_event_stage_seconds_count", transport) or 0,
                         before)
        self.assertEqual(api.request("GET", "/healthz")[0], 200)

    @staticmethod
    def states(api, job):
        return [e["data"] for e in api.events(job["id"]) if e["kind"] == "state"]

    def test_heartbeats_of_a_worker_whose_assign_is_on_its_way_keep_the_lease(self):
        # The converse: a heartbeat sent before the assign arrived (its
        # `assigned` count is lower) does not list the job and must not cost it.
        broker = self.start_broker(args=["--liveness", "3"])
        api = self.client(broker)
        slow = self.dealer(broker)
        pack = msgpack.packb
        self.say_hello(slow, "slow", ["llm.generate"])
        job = api.submit("llm.generate", {"prompt": "p", "max_tokens": 3,
                                          "tokens_per_second": 0, "seed": 1})
        api.wait_state(job["id"], "running")
        for _ in range(15):  # 1.5 s: over two leases of reports that predate the assign
            slow.send(pack({"v": 1, "t": "heartbeat", "inflight": [], "assigned": 0}))
            time.sleep(0.1)
        self.assertEqual(api.job(job["id"])["state"], "running")
        self.assertEqual(metric(api, "jobcast_leases_lost_total"), 0)


if __name__ == "__main__":
    unittest.main()
