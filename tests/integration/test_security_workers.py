"""The worker side of the security audit, against the real broker and worker:
log injection from the ZeroMQ port (M2), poison params that no worker can
decode (H1), worker impersonation by name (M1)."""

import json
import os
import signal
import time
import unittest

import msgpack
import zmq

from harness import BIN, JobcastTest, ZmqPeers, free_port, metric, sim_text, wait_until

# repro/07_zmq_log_injection.py: a forged audit line in 't', and in a worker name.
FORGED_T = ("x\n2030-01-01T00:00:00.000 info audit event=cancel transport=http "
            "owner=\"bob\" ip=10.0.0.1 job=FORGED")
FORGED_NAME = "w\n2030-01-01T00:00:00.000 info audit event=FORGED2"
pack = msgpack.packb


def unpack(frame):
    return msgpack.unpackb(frame, raw=False, strict_map_key=False)


def states(api, job_id):
    return [e["data"] for e in api.events(job_id) if e["kind"] == "state"]


class LogInjectionTest(ZmqPeers, JobcastTest):
    """M2: nothing a ZeroMQ peer sends can put a line of its own into the log."""

    def check_no_forged_lines(self, broker, log_format):
        lines = broker.output().splitlines()
        self.assertTrue(lines)
        for line in lines:
            self.assertFalse(line.startswith("2030-"), f"forged line: {line!r}")
            if log_format == "json" and line.startswith("{"):
                record = json.loads(line)  # every record is one valid JSON line
                self.assertFalse(record["ts"].startswith("2030"), line)
                if record["logger"] == "audit":
                    self.assertNotIn("FORGED", record["msg"])
            elif log_format == "text":
                fields = line.split(" ", 3)
                self.assertNotIn("2030-01-01T00:00:00.000", fields[0])
                if len(fields) > 2 and fields[2] == "audit":
                    self.assertNotIn("FORGED", line, f"forged audit line: {line!r}")

    def run_injection(self, log_format):
        broker = self.start_broker(args=["--log-format", log_format])
        api = self.client(broker)
        peer = self.dealer(broker.zmq)
        peer.send(pack({"v": 1, "t": FORGED_T}))
        self.hello(peer, FORGED_NAME, ["none"])
        # The hello is refused, with a reason, and counted with the bad frame.
        reject = self.recv_type(peer, "reject")
        self.assertEqual(reject["reason"], "invalid_hello")
        self.assertIn("field 'worker'", reject["detail"])
        wait_until(lambda: (metric(api, "jobcast_rejected_messages_total",
                                   {"reason": "malformed"}) or 0) >= 2,
                   what="both frames counted")
        self.assertEqual(metric(api, "jobcast_workers"), 0)
        # A name with quotes is fine, and cannot break out of its value.
        self.hello(peer, 'w" audit event=FORGED3 x="', ["none"])
        self.assertEqual(self.recv_type(peer, ["welcome", "reject"])["t"], "welcome")
        broker.wait_for_line(r"event=hello worker=")
        broker.wait_for_line(r"event=rejected .*unknown worker message type")
        broker.kill(signal.SIGTERM)  # everything it logged is read
        self.check_no_forged_lines(broker, log_format)
        out = broker.output()
        if log_format == "text":
            self.assertIn(r'worker="w\" audit event=FORGED3 x=\""', out)
            self.assertIn(r"x\n2030-01-01", out)  # escaped in place, on its own line

    def test_text_log(self):
        self.run_injection("text")

    def test_json_log(self):
        self.run_injection("json")


class PoisonParamsTest(ZmqPeers, JobcastTest):
    """H1: the broker accepts only params every worker can decode, and a worker
    that gets an assign it cannot decode fails it instead of wedging a slot."""

    VARIANTS = {
        "dup": '{"type":"llm.generate","params":{"prompt":"a","max_tokens":3,"prompt":"b"}}',
        "deep": '{"type":"llm.generate","params":{"prompt":"hi","max_tokens":3,"x":'
                + "[" * 40 + "]" * 40 + "}}",
        # floats: 4 bytes of JSON each, 9 bytes of msgpack float64
        "big": '{"type":"llm.generate","params":{"prompt":"hi","max_tokens":3,"x":['
               + ",".join(["1.5"] * ((1 << 20) // 4 - 1000)) + "]}}",
    }
    MESSAGES = {"dup": "duplicate map key", "deep": "nests deeper than 32 levels",
                "big": "too large for a worker"}

    def test_poison_params_are_refused_at_submit_and_do_not_wedge_a_worker(self):
        broker = self.start_broker(args=["--liveness", "3"])
        api = self.client(broker)
        worker = self.start_worker(broker, ["llm.generate"], capacity=1, name="w-poison")
        worker.wait_for_line(r"connected broker")
        for variant, raw in self.VARIANTS.items():
            with self.subTest(variant=variant):
                status, body, _ = api.request("POST", "/v1/jobs", raw=raw)
                self.assertEqual(status, 400, str(body)[:300])
                self.assertIn("field 'params'", body["error"]["message"])
                self.assertIn(self.MESSAGES[variant], body["error"]["message"])
        status, page, _ = api.request("GET", "/v1/jobs")
        self.assertEqual([j["id"] for j in page["jobs"]], [], "no poison job was created")
        job = api.submit("llm.generate", {"prompt": "ok", "max_tokens": 3,
                                          "tokens_per_second": 0, "seed": 1})
        done = api.wait_state(job["id"], ["succeeded", "failed"], timeout=30)
        self.assertEqual(done["state"], "succeeded", done)
        self.assertEqual(done["result"]["text"], sim_text("ok", 1, 3))

    def test_a_worker_fails_an_assign_it_cannot_decode_and_takes_the_next_job(self):
        # A job that got past submit anyway (here: a broker of our own sending
        # a raw assign) must not hold the slot of a --capacity 1 worker.
        router = self.zmq_socket(zmq.ROUTER)
        port = free_port()
        router.bind(f"tcp://127.0.0.1:{port}")
        self.start_worker(f"tcp://127.0.0.1:{port}", ["llm.generate"], capacity=1,
                          name="w-raw")

        peer = None

        def send(m):
            router.send_multipart([peer, pack(m)])

        def recv(types, want=None):
            # Heart-beats meanwhile, as a broker does, so the worker stays.
            nonlocal peer
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                if peer is not None:
                    send({"v": 1, "t": "heartbeat"})
                if router.poll(100):
                    from_peer, frame = router.recv_multipart()
                    m = unpack(frame)
                    if m["t"] == "hello":
                        peer = from_peer
                    if m["t"] in types and (want is None or want(m)):
                        return m
            self.fail(f"no {types} from the worker")

        recv(["hello"])
        send({"v": 1, "t": "welcome", "heartbeat_ms": 200})
        # params with a duplicate key: msgpack-python packs a list of pairs as given.
        poison = (b"\x86" + pack("v") + pack(1) + pack("t") + pack("assign") + pack("job")
                  + pack("POISON") + pack("attempt") + pack(1) + pack("type")
                  + pack("llm.generate") + pack("params") + b"\x82" + pack("prompt")
                  + pack("a") + pack("prompt") + pack("b"))
        router.send_multipart([peer, poison])
        fail = recv(["fail"], lambda m: m["job"] == "POISON")
        self.assertEqual(fail["attempt"], 1)
        self.assertFalse(fail["retryable"])
        self.assertIn("cannot decode the assign", fail["error"])
        # It counted the assign in its report, and holds the attempt until the ack.
        beat = recv(["heartbeat"], lambda m: m.get("inflight"))
        self.assertEqual(beat["assigned"], 1)
        send({"v": 1, "t": "ack", "job": "POISON", "attempt": 1, "wseq": fail["wseq"]})

        send({"v": 1, "t": "assign", "job": "NEXT", "attempt": 1, "type": "llm.generate",
              "params": {"prompt": "ok", "max_tokens": 3, "tokens_per_second": 0, "seed": 1}})
        done = recv(["done"], lambda m: m["job"] == "NEXT")
        self.assertEqual(done["result"]["text"], sim_text("ok", 1, 3))

    def test_an_assign_its_worker_never_counts_is_taken_back(self):
        # A worker (of any SDK) that drops an assign without a word and goes on
        # heart-beating: the lease comes back after a bounded number of reports.
        broker = self.start_broker(args=["--liveness", "3"])
        api = self.client(broker)
        mute = self.dealer(broker.zmq)
        self.say_hello(mute, "mute", ["llm.generate"])
        job = api.submit("llm.generate", {"prompt": "p", "max_tokens": 3,
                                          "tokens_per_second": 0, "seed": 1}, max_attempts=5)
        assign = self.recv_type(mute, "assign")
        self.assertEqual(assign["job"], job["id"])

        def requeued():
            mute.send(pack({"v": 1, "t": "heartbeat", "inflight": [], "assigned": 0}))
            return len(states(api, job["id"])) >= 3

        wait_until(requeued, timeout=20, interval=0.1, what="the lease to be taken back")
        s = states(api, job["id"])
        self.assertEqual([x["state"] for x in s[:3]], ["queued", "running", "queued"])
        self.assertIn("mute never acknowledged the assign", s[2]["reason"])
        mute.close()
        self.start_worker(broker, ["llm.generate"], name="honest")
        done = api.wait_state(job["id"], ["succeeded", "failed"], timeout=60)
        self.assertEqual(done["state"], "succeeded", done)

    def test_an_assign_over_the_frame_limit_fails_the_job_instead_of_being_sent(self):
        # Submit measured the params; a checkpoint can still push the next
        # attempt's assign over the 1 MiB a worker decodes. (A long lease:
        # this hand-written worker does not heart-beat.)
        broker = self.start_broker(args=["--liveness", "50"])
        api = self.client(broker)
        w = self.dealer(broker.zmq)
        self.say_hello(w, "w-big", ["big"])
        job = api.submit("big", {"s": "x" * 300}, max_attempts=3)
        assign = self.recv_type(w, "assign")
        w.send(pack({"v": 1, "t": "checkpoint", "job": job["id"], "attempt": 1, "wseq": 1,
                     "bytes": b"c" * ((1 << 20) - 200)}))
        self.recv_type(w, "ack", want=lambda m: m["wseq"] == 1)
        w.send(pack({"v": 1, "t": "fail", "job": job["id"], "attempt": 1, "wseq": 2,
                     "error": "try again", "retryable": True}))
        done = api.wait_state(job["id"], ["failed", "succeeded"], timeout=30)
        self.assertEqual(done["state"], "failed")
        self.assertEqual(done["attempt"], 2)
        self.assertIn("cannot be sent to a worker", done["error"])
        self.assertIn("over the limit of 1048576", done["error"])
        # The worker never got it, and its slot is free for the next job.
        next_job = api.submit("big", {"s": "small"})
        nxt = self.recv_type(w, "assign", timeout=20)
        self.assertEqual(nxt["job"], next_job["id"])
        self.assertNotEqual(assign["job"], nxt["job"])


class ImpersonationTest(ZmqPeers, JobcastTest):
    """M1: a worker's name is bound to its CURVE key, or to the session its
    welcome gave it; nobody else can take its leases by saying its name."""

    def run_research(self, api, stage_ms=400):
        job = api.submit("research", {"topic": "t", "stage_ms": stage_ms})
        return api.wait_state(job["id"], "running", timeout=30)

    def assert_impostor_refused(self, broker, api, job, curve=None, session=None):
        imp = self.dealer(broker.zmq, curve)
        self.hello(imp, "w-real", ["research"], session=session,
                   inflight=[{"job": job["id"], "attempt": job["attempt"], "next_wseq": 1}])
        reply = self.recv_type(imp, ["welcome", "reject"])
        self.assertEqual(reply["t"], "reject", "the impostor was welcomed")
        self.assertEqual(reply["reason"], "identity")
        # Its forged result is refused too: it never became a worker.
        for wseq in (1, 2, 3):
            imp.send(pack({"v": 1, "t": "done", "job": job["id"], "attempt": job["attempt"],
                           "wseq": wseq, "result": {"summary": "FORGED BY IMPOSTOR"}}))
            self.assertEqual(self.recv_type(imp, ["ack", "reject"])["t"], "reject")
        wait_until(lambda: (metric(api, "jobcast_rejected_messages_total",
                                   {"reason": "identity"}) or 0) >= 1, what="counted")
        broker.wait_for_line(r"audit event=worker_refused reason=identity worker=\"w-real\"")

    def assert_real_result(self, api, job):
        done = api.wait_state(job["id"], ["succeeded", "failed"], timeout=60)
        self.assertEqual(done["state"], "succeeded", done)
        self.assertNotIn("FORGED", json.dumps(done["result"]))
        self.assertEqual(done["worker"], "w-real")
        self.assertEqual(done["attempt"], 1)

    def test_without_curve_the_name_needs_the_session(self):
        broker = self.start_broker(args=["--liveness", "5"])
        api = self.client(broker)
        self.start_worker(broker, ["research"], name="w-real", capacity=1)
        job = self.run_research(api, stage_ms=600)
        self.assert_impostor_refused(broker, api, job)
        self.assert_impostor_refused(broker, api, job, session="0" * 64)  # a guess
        self.assert_real_result(api, job)

    def test_a_session_from_an_earlier_holder_of_the_name_is_refused(self):
        broker = self.start_broker(args=["--liveness", "5"])
        api = self.client(broker)
        # A squatter says hello under the name while it is free and keeps the
        # session its welcome gave it, then goes away.
        squatter = self.dealer(broker.zmq)
        self.hello(squatter, "w-real", ["nothing.here"])
        old_session = self.recv_type(squatter, "welcome")["session"]
        squatter.close(linger=0)
        wait_until(lambda: metric(api, "jobcast_workers") == 0, what="the squatter dropped")
        # The real worker takes the name (a new session) and runs a job; the
        # squatter's old session no longer opens the name or its lease.
        self.start_worker(broker, ["research"], name="w-real", capacity=1)
        job = self.run_research(api, stage_ms=600)
        self.assert_impostor_refused(broker, api, job, session=old_session)
        self.assert_real_result(api, job)

    def test_with_curve_the_name_is_bound_to_the_key(self):
        keys = {}
        allow = os.path.join(self.tmp.name, "allowed")
        os.mkdir(allow)
        for name in ("broker", "real", "imp"):
            public, secret = zmq.curve_keypair()
            keys[name] = (public, secret)
            with open(os.path.join(self.tmp.name, name + ".key"), "w") as f:
                f.write(secret.decode() + "\n")
            with open(os.path.join(self.tmp.name, name + ".pub"), "w") as f:
                f.write(public.decode() + "\n")
            if name != "broker":  # both workers are allowed: the name decides nothing
                with open(os.path.join(allow, name + ".pub"), "w") as f:
                    f.write(public.decode() + "\n")
        broker = self.start_broker(args=[
            "--liveness", "5", "--curve-secret-key-file", os.path.join(self.tmp.name, "broker.key"),
            "--curve-allow", allow])
        api = self.client(broker)
        self.start_worker(broker, ["research"], name="w-real", capacity=1, args=[
            "--curve-server-key", os.path.join(self.tmp.name, "broker.pub"),
            "--curve-secret-key-file", os.path.join(self.tmp.name, "real.key")])
        job = self.run_research(api, stage_ms=600)
        imp_curve = (keys["broker"][0], keys["imp"][0], keys["imp"][1])
        self.assert_impostor_refused(broker, api, job, curve=imp_curve)
        self.assert_real_result(api, job)

    def test_the_real_worker_keeps_its_leases_across_reconnects_and_a_broker_restart(self):
        http, zport = free_port(), free_port()
        addr = dict(http=f"127.0.0.1:{http}", zmq=f"tcp://127.0.0.1:{zport}")
        # A long lease (200 ms x 25): the worker is stopped for longer than its
        # own patience (it reconnects) but not the broker's.
        broker = self.start_broker(args=["--liveness", "25"], **addr)
        api = self.client(broker)
        worker = self.start_worker(broker, ["research"], name="w-real", capacity=1)
        job = self.run_research(api, stage_ms=700)

        # 1. The broker pauses; the worker gives up on it and comes back on a
        #    new connection while its old one is still live at the broker:
        #    its session lets it in.
        os.kill(broker.proc.pid, signal.SIGSTOP)
        time.sleep(1.0)  # the fault itself: longer than the worker's 600 ms of patience
        os.kill(broker.proc.pid, signal.SIGCONT)
        worker.wait_for_line(r"reconnected broker")

        # 2. kill -9 of the broker while the worker is stopped; an impostor
        #    comes first for the orphaned lease, then the real worker.
        os.kill(worker.proc.pid, signal.SIGSTOP)
        broker.kill(signal.SIGKILL)
        broker = self.start_broker(args=["--liveness", "25"], **addr)
        api = self.client(broker)
        self.assert_impostor_refused(broker, api, job)
        os.kill(worker.proc.pid, signal.SIGCONT)

        self.assert_real_result(api, job)
        self.assertEqual(metric(api, "jobcast_leases_lost_total"), 0)


if __name__ == "__main__":
    unittest.main()
