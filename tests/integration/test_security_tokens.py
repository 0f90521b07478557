"""Times and identities from outside, against the real broker: token claims
far in the future or beyond any integer (audit C1, C2), worker timestamps at
the ends of int64 (C3), the maximum token lifetime (L3), owners that no two
(tenant, sub) pairs share (H2) and the reserved open-mode owner (L2).

The broker under test is the ASan/UBSan build: an overflow aborts it, so each
test also checks that the broker is still alive and logged no sanitizer report."""

import base64
import json
import os
import subprocess
import time
import unittest

import msgpack
import websocket

from harness import BIN, JobcastTest, ZmqPeers, metric, wait_until
from test_security import SECRET, make_token, sse_open, ws_connect, ws_request
from test_streaming import recv_frame as ws_recv

NEVER = 9999999999          # the usual "never expires" sentinel, year 2286
UINT64_MAX = 2**64 - 1
INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)
DAY = 86400


def ws_outcome(broker, token):
    """101 and the open socket, or the refused upgrade's HTTP status and None."""
    try:
        return 101, ws_connect(broker, query_token=token)
    except websocket.WebSocketBadStatusException as e:
        return e.status_code, None


def read_sse_event(resp):
    """The next event (a dict) of an open SSE response; None when the stream ends."""
    fields = {}
    while True:
        line = resp.fp.readline()
        if not line:
            return None
        line = line.decode().rstrip("\n")
        if line == "":
            if "data" in fields:
                return json.loads(fields["data"])
            fields = {}
        elif not line.startswith(":"):
            key, _, value = line.partition(": ")
            fields[key] = value


class TokenTest(JobcastTest):
    def assert_broker_healthy(self, broker):
        self.assertTrue(broker.alive(), "the broker died")
        self.assertEqual(self.client(broker).request("GET", "/healthz")[0], 200)
        reports = [line for line in broker.output().splitlines()
                   if "runtime error" in line or "Sanitizer" in line]
        self.assertEqual(reports, [])

    def refused_everywhere(self, broker, token, message):
        """REST, SSE, the WebSocket upgrade and the WebSocket auth op all refuse
        `token` with a clear answer; returns nothing."""
        api = self.client(broker, token)
        status, body, _ = api.request("GET", "/v1/jobs")
        self.assertEqual(status, 401, body)
        self.assertEqual(body["error"]["code"], "unauthorized")
        self.assertIn(message, body["error"]["message"])

        conn, resp = sse_open(broker, f"/v1/jobs/{self.job_id}/events", token)
        try:
            self.assertEqual(resp.status, 401)
            self.assertIn(message, json.loads(resp.read())["error"]["message"])
        finally:
            conn.close()

        status, ws = ws_outcome(broker, token)
        self.assertEqual(status, 401)

        ws = ws_connect(broker, query_token=make_token({"sub": "alice",
                                                        "exp": int(time.time()) + 600}))
        self.addCleanup(ws.close)
        frame = ws_request(ws, {"op": "auth", "token": token})
        self.assertEqual(frame["type"], "error")
        self.assertEqual(frame["code"], "unauthorized")
        self.assertIn(message, frame["message"])
        # The connection lives on with its first token.
        self.assertEqual(ws_request(ws, {"op": "ping"}), {"type": "pong"})
        ws.close()

    def alice_job(self, broker):
        """A job of Alice's that stays queued (no worker takes its type)."""
        alice = self.client(broker, make_token({"sub": "alice", "exp": int(time.time()) + 600}))
        self.job_id = alice.submit("nobody.runs.this")["id"]
        return alice


class FarExpiryTest(TokenTest):
    """C1 and C2: exp after 2262 aborted the broker on WebSocket, SSE and the
    auth op; exp near INT64_MAX on every request."""

    def test_exp_beyond_year_9999_or_int64_is_refused_as_malformed_on_every_transport(self):
        for lifetime in ((), ("--max-token-lifetime", "0")):
            with self.subTest(max_token_lifetime=lifetime):
                broker = self.start_broker(
                    db=os.path.join(self.tmp.name, f"far-{len(lifetime)}.db"),
                    args=("--jwt-secret", SECRET, *lifetime))
                self.alice_job(broker)
                for exp in (UINT64_MAX, INT64_MAX, INT64_MAX - 10, 253402300800, -1, 1e300):
                    with self.subTest(exp=exp):
                        self.refused_everywhere(broker, make_token({"sub": "alice", "exp": exp}),
                                                "exp must be a number of seconds between 0 and "
                                                "253402300799 (year 9999)")
                # Four refusals per token: REST, SSE, the upgrade and the auth op.
                self.assertEqual(metric(self.client(broker), "jobcast_auth_failures_total",
                                        {"reason": "malformed"}), 6 * 4.0)
                self.assert_broker_healthy(broker)

    def test_the_never_sentinel_is_refused_by_default_for_its_lifetime(self):
        broker = self.start_broker(args=("--jwt-secret", SECRET))
        self.alice_job(broker)
        self.refused_everywhere(broker, make_token({"sub": "alice", "exp": NEVER}),
                                "token lifetime exceeds the broker's --max-token-lifetime (30d)")
        self.assertEqual(metric(self.client(broker), "jobcast_auth_failures_total",
                                {"reason": "lifetime"}), 4.0)
        self.assert_broker_healthy(broker)

    def test_far_tokens_without_a_maximum_give_working_sessions_that_expire_when_they_should(self):
        broker = self.start_broker(args=("--jwt-secret", SECRET, "--jwt-leeway", "0",
                                         "--max-token-lifetime", "0"))
        alice = self.alice_job(broker)
        # 2^64 / 10^9 (year 2554) once wrapped to a timer of 0 s; 9999999999 to 260 years.
        for exp in (NEVER, 18446744074, 253402300799):
            with self.subTest(exp=exp):
                token = make_token({"sub": "alice", "exp": exp})
                status, body, _ = self.client(broker, token).request("GET", "/v1/jobs")
                self.assertEqual(status, 200, body)
                self.assertEqual([j["id"] for j in body["jobs"]], [self.job_id])

                status, ws = ws_outcome(broker, token)
                self.assertEqual(status, 101)
                self.addCleanup(ws.close)
                self.assertEqual(ws_request(ws, {"op": "ping"}), {"type": "pong"})
                frame = ws_request(ws, {"op": "auth", "token": token})
                self.assertEqual(frame, {"type": "authenticated", "expires_at": exp})
                self.assertEqual(ws_request(ws, {"op": "ping"}), {"type": "pong"})
                ws.close()

        # An SSE stream opened with a far token stays open: it delivers the
        # queued state, then the cancellation made over REST afterwards.
        conn, resp = sse_open(broker, f"/v1/jobs/{self.job_id}/events",
                              make_token({"sub": "alice", "exp": 18446744074}))
        self.addCleanup(conn.close)
        self.assertEqual(resp.status, 200)
        self.assertEqual(read_sse_event(resp)["data"]["state"], "queued")
        self.assertEqual(alice.request("POST", f"/v1/jobs/{self.job_id}/cancel")[0], 202)
        self.assertEqual(read_sse_event(resp)["data"]["state"], "cancelled")
        conn.close()

        # A far token refreshed with a short one: the connection closes when the short one ends.
        ws = ws_connect(broker, query_token=make_token({"sub": "alice", "exp": NEVER}))
        self.addCleanup(ws.close)
        frame = ws_request(ws, {"op": "auth", "token": make_token(
            {"sub": "alice", "exp": int(time.time()) + 2})})
        self.assertEqual(frame["type"], "authenticated")
        started = time.monotonic()
        self.assertEqual(ws_recv(ws), {"type": "close", "code": 4003})
        self.assertLess(time.monotonic() - started, 10)
        self.assert_broker_healthy(broker)

    def test_jobcast_token_refuses_a_ttl_past_ten_years(self):
        cli = os.path.join(BIN, "jobcast")
        refused = subprocess.run([cli, "token", "--sub", "alice", "--secret", SECRET, "--ttl",
                                  "200000d"], capture_output=True, text=True, timeout=30)
        self.assertEqual(refused.returncode, 2)
        self.assertEqual(refused.stdout, "")
        self.assertIn("--ttl '200000d' is longer than the maximum of 3650d", refused.stderr)

        minted = subprocess.run([cli, "token", "--sub", "alice", "--secret", SECRET, "--ttl",
                                 "3650d"], capture_output=True, text=True, timeout=30, check=True)
        token = minted.stdout.strip()
        strict = self.start_broker(db=os.path.join(self.tmp.name, "strict.db"),
                                   args=("--jwt-secret", SECRET))
        status, body, _ = self.client(strict, token).request("GET", "/v1/jobs")
        self.assertEqual(status, 401)
        self.assertIn("--max-token-lifetime (30d)", body["error"]["message"])
        lenient = self.start_broker(db=os.path.join(self.tmp.name, "lenient.db"),
                                    args=("--jwt-secret", SECRET, "--max-token-lifetime", "0"))
        status, ws = ws_outcome(lenient, token)
        self.assertEqual(status, 101)
        self.addCleanup(ws.close)
        self.assertEqual(ws_request(ws, {"op": "ping"}), {"type": "pong"})
        self.assert_broker_healthy(strict)
        self.assert_broker_healthy(lenient)


class MaxTokenLifetimeTest(TokenTest):
    """L3: tokens without exp lived forever, and no lifetime was too long."""

    def test_tokens_without_exp_are_refused_by_default(self):
        broker = self.start_broker(args=("--jwt-secret", SECRET))
        self.alice_job(broker)
        self.refused_everywhere(broker, make_token({"sub": "alice"}),
                                "token has no exp; this broker requires one "
                                "(--max-token-lifetime 30d)")
        now = int(time.time())
        for claims in ({"sub": "alice", "exp": now + 31 * DAY},
                       {"sub": "alice", "iat": now - 40 * DAY, "exp": now + 60}):
            with self.subTest(claims=claims):
                status, body, _ = self.client(broker, make_token(claims)).request("GET", "/v1/jobs")
                self.assertEqual(status, 401)
                self.assertEqual(body["error"]["message"],
                                 "token lifetime exceeds the broker's --max-token-lifetime (30d)")
        good = make_token({"sub": "alice", "iat": now, "exp": now + 30 * DAY})
        self.assertEqual(self.client(broker, good).request("GET", "/v1/jobs")[0], 200)
        self.assertEqual(metric(self.client(broker), "jobcast_auth_failures_total",
                                {"reason": "lifetime"}), 6.0)
        broker.wait_for_line(r"audit event=auth_failure transport=http ip=127\.0\.0\.1 "
                             r"reason=lifetime")

    def test_the_maximum_is_a_flag_and_an_environment_variable(self):
        now = int(time.time())
        short = self.start_broker(db=os.path.join(self.tmp.name, "short.db"),
                                  args=("--jwt-secret", SECRET, "--max-token-lifetime", "1h"))
        status, body, _ = self.client(short, make_token(
            {"sub": "a", "exp": now + 7200})).request("GET", "/v1/jobs")
        self.assertEqual(status, 401)
        self.assertIn("--max-token-lifetime (1h)", body["error"]["message"])
        self.assertEqual(self.client(short, make_token({"sub": "a", "exp": now + 1800})).request(
            "GET", "/v1/jobs")[0], 200)

        unlimited = self.start_broker(db=os.path.join(self.tmp.name, "env.db"),
                                      args=("--jwt-secret", SECRET),
                                      env={"JOBCAST_MAX_TOKEN_LIFETIME": "0"})
        self.assertEqual(self.client(unlimited, make_token({"sub": "a"})).request(
            "GET", "/v1/jobs")[0], 200)

    def test_a_bad_maximum_is_refused_at_start(self):
        for value, message in (("500ms", "--max-token-lifetime must be 0 (no maximum) or at "
                                         "least 1s"),
                               ("-1d", "--max-token-lifetime: must not be negative"),
                               ("nan", "--max-token-lifetime: too long"),
                               ("1e300d", "--max-token-lifetime: too long"),
                               ("soon", "--max-token-lifetime: not a duration")):
            with self.subTest(value=value):
                result = subprocess.run(
                    [os.path.join(BIN, "jobcast-broker"), "--db", self.db, "--http",
                     "127.0.0.1:0", "--zmq", "tcp://127.0.0.1:0", "--jwt-secret", SECRET,
                     "--max-token-lifetime", value],
                    capture_output=True, text=True, timeout=30)
                self.assertEqual(result.returncode, 2, result.stderr)
                self.assertIn(message, result.stderr)
                self.assertNotIn("runtime error", result.stderr)

    def test_jobcast_token_ttl_0_warns(self):
        minted = subprocess.run([os.path.join(BIN, "jobcast"), "token", "--sub", "alice",
                                 "--secret", SECRET, "--ttl", "0"],
                                capture_output=True, text=True, timeout=30, check=True)
        self.assertIn("brokers refuse it unless run with --max-token-lifetime 0", minted.stderr)
        payload = json.loads(base64.urlsafe_b64decode(minted.stdout.split(".")[1] + "=="))
        self.assertNotIn("exp", payload)


class OwnerIdentityTest(TokenTest):
    """H2 (audit repro 05) and L2."""

    def test_a_tenantless_sub_with_a_slash_is_not_that_tenants_user(self):
        broker = self.start_broker(args=("--jwt-secret", SECRET))
        exp = int(time.time()) + 600
        acme_alice = self.client(broker, make_token({"sub": "alice", "tenant": "acme", "exp": exp}))
        mallory_token = make_token({"sub": "acme/alice", "exp": exp})
        mallory = self.client(broker, mallory_token)
        job = acme_alice.submit("research", {"topic": "acme secret"})
        self.assertEqual(job["owner"], "acme/alice")

        for method, suffix in (("GET", ""), ("GET", "/events"), ("GET", "/events?wait=1"),
                               ("POST", "/cancel")):
            with self.subTest(method=method, suffix=suffix):
                status, body, _ = mallory.request(method, f"/v1/jobs/{job['id']}{suffix}")
                self.assertEqual(status, 404, body)
                self.assertEqual(body["error"]["code"], "not_found")
        status, page, _ = mallory.request("GET", "/v1/jobs")
        self.assertEqual((status, page["jobs"]), (200, []))
        conn, resp = sse_open(broker, f"/v1/jobs/{job['id']}/events", mallory_token)
        self.assertEqual(resp.status, 404)
        conn.close()
        ws = ws_connect(broker, query_token=mallory_token)
        self.addCleanup(ws.close)
        for op in ("subscribe", "cancel"):
            frame = ws_request(ws, {"op": op, "job": job["id"]})
            self.assertEqual((frame["type"], frame["code"]), ("error", "not_found"))
        # Nothing happened to the job; the other identity has an owner of its own.
        self.assertEqual(acme_alice.job(job["id"])["state"], "queued")
        own = mallory.submit("research", {"topic": "mine"})
        self.assertEqual(own["owner"], "acme%2Falice")
        self.assertEqual(acme_alice.request("GET", f"/v1/jobs/{own['id']}")[0], 404)

    def test_sub_anonymous_does_not_inherit_open_mode_jobs(self):
        open_broker = self.start_broker()
        job = self.client(open_broker).submit("research", {"topic": "made without auth"})
        self.assertEqual(job["owner"], "anonymous")
        open_broker.kill()

        broker = self.start_broker(args=("--jwt-secret", SECRET))
        exp = int(time.time()) + 600
        anonymous = make_token({"sub": "anonymous", "exp": exp})
        status, body, _ = self.client(broker, anonymous).request("GET", f"/v1/jobs/{job['id']}")
        self.assertEqual(status, 401)
        self.assertEqual(body["error"]["message"], "sub 'anonymous' is reserved")
        self.assertEqual(ws_outcome(broker, anonymous)[0], 401)
        self.assertEqual(metric(self.client(broker), "jobcast_auth_failures_total",
                                {"reason": "subject"}), 2.0)
        # In a tenant the name is an ordinary one, with no access to those jobs.
        scoped = self.client(broker, make_token({"sub": "anonymous", "tenant": "acme",
                                                 "exp": exp}))
        self.assertEqual(scoped.request("GET", f"/v1/jobs/{job['id']}")[0], 404)


class WorkerTimestampTest(ZmqPeers, TokenTest):
    """C3 (audit repro 03): a chunk with ts = INT64_MIN, delivered live, aborted
    the broker in the stream latency computation."""

    def test_extreme_worker_timestamps_are_replaced_by_the_brokers_clock(self):
        broker = self.start_broker()
        api = self.client(broker)
        rogue = self.dealer(broker)
        self.say_hello(rogue, "rogue", ["evil.type"])
        job = api.submit("evil.type")["id"]
        assign = self.recv_type(rogue, "assign", timeout=5)

        # Live subscribers on both streaming transports, caught up to "running".
        ws = ws_connect(broker)
        self.addCleanup(ws.close)
        ws.send(json.dumps({"op": "subscribe", "job": job, "after": 0}))
        conn, sse = sse_open(broker, f"/v1/jobs/{job}/events")
        self.addCleanup(conn.close)
        self.assertEqual(sse.status, 200)

        def ws_events():
            while True:
                frame = ws_recv(ws)
                if frame["type"] == "event":
                    yield frame
                elif frame["type"] == "events":
                    yield from frame["events"]

        ws_stream = ws_events()
        for stream in (lambda: next(ws_stream), lambda: read_sse_event(sse)):
            wait_until(lambda: (stream().get("data") or {}).get("state") == "running",
                       what="the running state on a live stream")
        # Both subscriptions replayed what was stored and now take live events,
        # whose delivery latency the broker measures from their ts.
        wait_until(lambda: metric(api, "jobcast_subscriptions_catching_up") == 0,
                   what="the subscriptions to go live")
        latency = "jobcast_event_delivery_latency_seconds_count"
        observed = metric(api, latency) or 0

        sent = (INT64_MIN, INT64_MAX, -1, 0)
        before = time.time() * 1e6
        for wseq, ts in enumerate(sent, start=1):
            rogue.send(msgpack.packb({"v": 1, "t": "chunk", "job": job,
                                      "attempt": assign["attempt"], "wseq": wseq, "kind": "log",
                                      "data": {"message": f"ts {ts}"}, "ts": ts}))
        live_ws = [next(ws_stream) for _ in sent]
        live_sse = [read_sse_event(sse) for _ in sent]
        after = time.time() * 1e6
        # Delivered live on both transports (and measured, from the broker's clock).
        wait_until(lambda: metric(api, latency) >= observed + 2 * len(sent),
                   what="the live deliveries to be measured")
        stored = [e for e in api.events(job) if e["kind"] == "log"]
        for name, events in (("websocket", live_ws), ("sse", live_sse), ("rest", stored)):
            with self.subTest(transport=name):
                self.assertEqual([e["data"]["message"] for e in events],
                                 [f"ts {ts}" for ts in sent])
                for e in events:
                    self.assertGreaterEqual(e["ts"], before - 1e6)  # the broker's clock
                    self.assertLessEqual(e["ts"], after + 1e6)
        # A plausible ts is kept as the worker sent it.
        rogue.send(msgpack.packb({"v": 1, "t": "chunk", "job": job, "attempt": assign["attempt"],
                                  "wseq": len(sent) + 1, "kind": "log",
                                  "data": {"message": "sane"}, "ts": 1700000000123456}))
        self.assertEqual(next(ws_stream)["ts"], 1700000000123456)
        self.assert_broker_healthy(broker)


if __name__ == "__main__":
    unittest.main()
