"""Auth and isolation against the real broker: JWT bearer tokens (HS256 from a
shared secret, RS256/ES256 from a PEM key), two users who cannot see each
other's jobs on any transport, tokens that expire on an open WebSocket, the
origin allow-list and CORS, the limits and their counters, the audit log, and
the secure-by-default refusal to serve beyond loopback without auth."""

import base64
import hashlib
import hmac
import http.client
import json
import os
import subprocess
import time
import unittest

import websocket

from harness import BIN, JobcastTest, metric, wait_until
from test_streaming import recv_frame as ws_recv

SECRET = "integration-secret-0123456789abcdef"


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_token(claims, secret=SECRET, header=None):
    """An HS256 JWT made here (not by the broker's code), so both sides are checked."""
    header = header or {"alg": "HS256", "typ": "JWT"}
    signing = b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode())
    sig = hmac.new(secret.encode(), signing.encode(), hashlib.sha256).digest()
    return signing + "." + b64url(sig)


def token_for(sub, ttl=600, **extra):
    claims = {"sub": sub, "exp": int(time.time()) + ttl, **extra}
    return make_token(claims)


def ws_connect(broker, token=None, query_token=None, origin=None, timeout=20):
    url = f"ws://{broker.http}/v1/ws"
    if query_token:
        url += "?access_token=" + query_token
    headers = []
    if token:
        headers.append("Authorization: Bearer " + token)
    kwargs = {"header": headers, "timeout": timeout}
    if origin:
        kwargs["origin"] = origin
    else:
        kwargs["suppress_origin"] = True
    return websocket.create_connection(url, **kwargs)


def ws_status(broker, **kw):
    """The HTTP status of a refused upgrade (101 when it was accepted)."""
    try:
        ws = ws_connect(broker, **kw)
    except websocket.WebSocketBadStatusException as e:
        return e.status_code
    ws.close()
    return 101


def ws_request(ws, op):
    """Sends `op` and returns the first frame that is not an event."""
    ws.send(json.dumps(op))
    while True:
        frame = ws_recv(ws)
        if frame["type"] not in ("event", "events"):
            return frame


def sse_open(broker, path, token=None, headers=None):
    conn = http.client.HTTPConnection(broker.host, broker.port, timeout=20)
    hdrs = {"Accept": "text/event-stream"}
    if token:
        hdrs["Authorization"] = "Bearer " + token
    hdrs.update(headers or {})
    conn.request("GET", path, headers=hdrs)
    return conn, conn.getresponse()


class AuthTest(JobcastTest):
    def start_auth_broker(self, *args):
        return self.start_broker(args=("--jwt-secret", SECRET, *args))

    def test_requests_without_a_valid_token_get_401_and_are_counted(self):
        broker = self.start_auth_broker()
        anon = self.client(broker)
        status, body, headers = anon.request("GET", "/v1/jobs")
        self.assertEqual(status, 401)
        self.assertEqual(body["error"]["code"], "unauthorized")
        self.assertIn("Bearer", headers.get("WWW-Authenticate", ""))
        # Health, metrics and the UI stay open.
        self.assertEqual(anon.request("GET", "/healthz")[0], 200)

        now = int(time.time())
        cases = {
            "signature": make_token({"sub": "alice", "exp": now + 60}, secret="x" * 40),
            "expired": make_token({"sub": "alice", "exp": now - 3600}),
            "algorithm": b64url(b'{"alg":"none","typ":"JWT"}') + "." +
                         b64url(b'{"sub":"alice"}') + ".",
            "malformed": "not-a-jwt",
            "subject": make_token({"exp": now + 60}),
        }
        for reason, token in cases.items():
            with self.subTest(reason=reason):
                status, body, _ = self.client(broker, token).request("GET", "/v1/jobs")
                self.assertEqual(status, 401, body)
                self.assertEqual(body["error"]["code"], "unauthorized")
                self.assertEqual(metric(anon, "jobcast_auth_failures_total",
                                        {"reason": reason}), 1.0)
        self.assertEqual(metric(anon, "jobcast_auth_failures_total", {"reason": "missing"}), 1.0)
        # A good token works, from the header or the access_token parameter.
        good = token_for("alice")
        self.assertEqual(self.client(broker, good).request("GET", "/v1/jobs")[0], 200)
        self.assertEqual(anon.request("GET", "/v1/jobs?access_token=" + good)[0], 200)
        # The audit log has the failures, one key=value line each.
        broker.wait_for_line(r"audit event=auth_failure transport=http ip=127\.0\.0\.1 "
                             r"reason=expired")

    def test_websocket_upgrade_needs_a_token(self):
        broker = self.start_auth_broker()
        self.assertEqual(ws_status(broker), 401)
        self.assertEqual(ws_status(broker, token="garbage"), 401)
        self.assertEqual(ws_status(broker, token=token_for("alice")), 101)
        self.assertEqual(ws_status(broker, query_token=token_for("alice")), 101)

    def test_rs256_and_es256_tokens_verify_with_a_pem_public_key(self):
        keys = {}
        for name, genargs in (("rsa", ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"]),
                              ("ec", ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"])):
            key = os.path.join(self.tmp.name, name + ".key")
            subprocess.run(["openssl", "genpkey", *genargs, "-out", key], check=True,
                           capture_output=True)
            keys[name] = key
        pem = os.path.join(self.tmp.name, "public.pem")
        with open(pem, "wb") as out:
            for key in keys.values():
                out.write(subprocess.run(["openssl", "pkey", "-in", key, "-pubout"], check=True,
                                         capture_output=True).stdout)
        broker = self.start_broker(args=("--jwt-public-key", pem, "--jwt-issuer", "https://idp",
                                         "--jwt-audience", "jobcast"))

        def sign(alg, key, claims):
            signing = (b64url(json.dumps({"alg": alg}).encode()) + "." +
                       b64url(json.dumps(claims).encode()))
            der = subprocess.run(["openssl", "dgst", "-sha256", "-sign", key], input=signing.encode(),
                                 check=True, capture_output=True).stdout
            if alg == "ES256":  # DER SEQUENCE{r, s} -> r||s, 32 bytes each
                der = der_to_raw(der)
            return signing + "." + b64url(der)

        claims = {"sub": "rita", "iss": "https://idp", "aud": "jobcast",
                  "exp": int(time.time()) + 600}
        for alg, key in (("RS256", keys["rsa"]), ("ES256", keys["ec"])):
            with self.subTest(alg=alg):
                api = self.client(broker, sign(alg, key, claims))
                job = api.submit("llm.generate", {"prompt": "x", "max_tokens": 1})
                self.assertEqual(job["owner"], "rita")
        wrong_aud = sign("RS256", keys["rsa"], {**claims, "aud": "other"})
        self.assertEqual(self.client(broker, wrong_aud).request("GET", "/v1/jobs")[0], 401)
        # Algorithm confusion: HS256 "signed" with the public key text is refused.
        with open(pem) as f:
            confused = make_token(claims, secret=f.read())
        self.assertEqual(self.client(broker, confused).request("GET", "/v1/jobs")[0], 401)
        self.assertEqual(metric(self.client(broker), "jobcast_auth_failures_total",
                                {"reason": "algorithm"}), 1.0)

    def test_tenant_scopes_the_owner(self):
        broker = self.start_auth_broker()
        a = self.client(broker, token_for("sam", tenant="acme"))
        b = self.client(broker, token_for("sam", tenant="globex"))
        job = a.submit("llm.generate", {"prompt": "x", "max_tokens": 1})
        self.assertEqual(job["owner"], "acme/sam")
        self.assertEqual(b.request("GET", f"/v1/jobs/{job['id']}")[0], 404)


class IsolationTest(JobcastTest):
    """Alice's job is, to Bob, exactly an unknown job on every transport."""

    def setUp(self):
        super().setUp()
        self.broker = self.start_broker(args=("--jwt-secret", SECRET))
        self.start_worker(self.broker, ["llm.generate"])
        self.alice_token, self.bob_token = token_for("alice"), token_for("bob")
        self.alice = self.client(self.broker, self.alice_token)
        self.bob = self.client(self.broker, self.bob_token)
        self.job = self.alice.submit("llm.generate", {"prompt": "secret", "max_tokens": 5})
        self.alice.wait_state(self.job["id"], "succeeded")
        self.unknown = "01JUNKNOWNJOB0000000000000"

    def same_as_unknown(self, request):
        """request(job_id) -> comparable answer; Alice's job must answer like an unknown id."""
        theirs, unknown = request(self.job["id"]), request(self.unknown)
        self.assertEqual(theirs, unknown)
        return theirs

    def test_rest(self):
        for method, suffix in (("GET", ""), ("GET", "/events"), ("GET", "/events?wait=1"),
                               ("POST", "/cancel")):
            with self.subTest(method=method, suffix=suffix):
                status, body = self.same_as_unknown(
                    lambda job: self.bob.request(method, f"/v1/jobs/{job}{suffix}")[:2])
                self.assertEqual(status, 404)
                self.assertEqual(body["error"]["code"], "not_found")
        status, page, _ = self.bob.request("GET", "/v1/jobs")
        self.assertEqual((status, page["jobs"]), (200, []))
        status, page, _ = self.alice.request("GET", "/v1/jobs")
        self.assertEqual([j["id"] for j in page["jobs"]], [self.job["id"]])
        # Alice's job was not cancelled by Bob's attempt.
        self.assertEqual(self.alice.job(self.job["id"])["state"], "succeeded")

    def test_sse(self):
        def sse(job):
            conn, resp = sse_open(self.broker, f"/v1/jobs/{job}/events", self.bob_token)
            try:
                return resp.status, json.loads(resp.read())
            finally:
                conn.close()
        status, body = self.same_as_unknown(sse)
        self.assertEqual(status, 404)
        conn, resp = sse_open(self.broker, f"/v1/jobs/{self.job['id']}/events", self.alice_token)
        self.assertEqual(resp.status, 200)
        conn.close()

    def test_websocket_subscribe_and_cancel(self):
        ws = ws_connect(self.broker, token=self.bob_token)
        self.addCleanup(ws.close)
        def ask(op, job):
            frame = ws_request(ws, {"op": op, "job": job})
            self.assertEqual(frame.pop("job"), job)  # the error names the job it answers
            return frame
        for op in ("subscribe", "cancel"):
            with self.subTest(op=op):
                frame = self.same_as_unknown(lambda job: ask(op, job))
                self.assertEqual(frame, {"type": "error", "code": "not_found",
                                         "message": "no such job"})
        mine = ws_connect(self.broker, query_token=self.alice_token)
        self.addCleanup(mine.close)
        frame = ws_request(mine, {"op": "subscribe", "job": self.job["id"]})
        self.assertEqual(frame["type"], "subscribed")

    def test_jobs_feed_carries_only_the_callers_jobs(self):
        feeds = {}
        for name, token in (("alice", self.alice_token), ("bob", self.bob_token)):
            ws = ws_connect(self.broker, token=token)
            self.addCleanup(ws.close)
            self.assertEqual(ws_request(ws, {"op": "subscribe", "feed": "jobs"})["type"],
                             "subscribed")
            feeds[name] = ws
        alice_job = self.alice.submit("llm.generate", {"prompt": "a", "max_tokens": 2})
        bob_job = self.bob.submit("llm.generate", {"prompt": "b", "max_tokens": 2})

        def jobs_seen(ws, until):
            seen = set()
            while until not in seen:
                frame = ws_recv(ws)
                if frame["type"] in ("event", "events"):
                    seen.add(frame["job"])
            return seen
        # Each feed reaches its own job; neither ever shows the other's.
        self.assertEqual(jobs_seen(feeds["alice"], alice_job["id"]), {alice_job["id"]})
        self.assertEqual(jobs_seen(feeds["bob"], bob_job["id"]), {bob_job["id"]})
        self.bob.wait_state(bob_job["id"], "succeeded")
        self.alice.wait_state(alice_job["id"], "succeeded")
        # Bob's feed, drained up to a pong, still holds nothing of Alice's.
        feeds["bob"].send(json.dumps({"op": "ping"}))
        while True:
            frame = ws_recv(feeds["bob"])
            if frame["type"] == "pong":
                break
            self.assertEqual(frame.get("job"), bob_job["id"])


class TokenLifetimeTest(JobcastTest):
    def test_websocket_closes_with_4003_when_the_token_expires(self):
        broker = self.start_broker(args=("--jwt-secret", SECRET, "--jwt-leeway", "0"))
        ws = ws_connect(broker, token=token_for("alice", ttl=2))
        self.addCleanup(ws.close)
        started = time.monotonic()
        frame = ws_recv(ws)
        self.assertEqual(frame, {"type": "close", "code": 4003})
        self.assertLess(time.monotonic() - started, 10)
        broker.wait_for_line(r"audit event=token_expired transport=websocket owner=\"alice\"")

    def test_a_fresh_token_keeps_the_websocket_open(self):
        broker = self.start_broker(args=("--jwt-secret", SECRET, "--jwt-leeway", "0"))
        ws = ws_connect(broker, token=token_for("alice", ttl=2))
        self.addCleanup(ws.close)
        expires = time.time() + 2
        frame = ws_request(ws, {"op": "auth", "token": token_for("alice", ttl=600)})
        self.assertEqual(frame["type"], "authenticated")
        self.assertGreater(frame["expires_at"], time.time() + 500)
        # Another owner's token, a bad one: refused, the connection stays Alice's.
        self.assertEqual(ws_request(ws, {"op": "auth", "token": token_for("bob")})["code"],
                         "forbidden")
        self.assertEqual(ws_request(ws, {"op": "auth", "token": "nope"})["code"], "unauthorized")
        # Past the first token's expiry the connection still answers.
        wait_until(lambda: time.time() > expires + 1, what="the first token to expire")
        self.assertEqual(ws_request(ws, {"op": "ping"}), {"type": "pong"})


class SecureByDefaultTest(JobcastTest):
    def run_broker(self, *args):
        return subprocess.run([os.path.join(BIN, "jobcast-broker"), "--db", self.db,
                               "--zmq", "tcp://127.0.0.1:0", *args],
                              capture_output=True, text=True, timeout=30)

    def test_refuses_a_public_address_without_auth(self):
        result = self.run_broker("--http", "0.0.0.0:0")
        self.assertEqual(result.returncode, 2)
        self.assertIn("refusing to serve --http 0.0.0.0:0 without auth", result.stderr)
        self.assertIn("--insecure-no-auth", result.stderr)

    def test_serves_a_public_address_with_auth_or_when_told_to(self):
        for args in (("--jwt-secret", SECRET), ("--insecure-no-auth",)):
            with self.subTest(args=args):
                broker = self.start_broker(http="0.0.0.0:0", args=args)
                self.assertEqual(self.client(broker).request("GET", "/healthz")[0], 200)
                broker.kill()

    def test_short_secret_is_refused(self):
        result = self.run_broker("--jwt-secret", "short")
        self.assertEqual(result.returncode, 2)
        self.assertIn("at least 32 bytes", result.stderr)


class OriginTest(JobcastTest):
    def test_websocket_origins(self):
        broker = self.start_broker(args=("--allowed-origin", "https://app.example"))
        self.assertEqual(ws_status(broker, origin="https://app.example"), 101)
        self.assertEqual(ws_status(broker, origin="https://evil.example"), 403)
        # The broker's own page (same origin) and non-browser clients (no Origin).
        self.assertEqual(ws_status(broker, origin=f"http://{broker.http}"), 101)
        self.assertEqual(ws_status(broker), 101)

    def test_without_a_list_only_the_same_origin_may_call(self):
        broker = self.start_broker()  # no auth, loopback: a foreign page must not drive it
        self.assertEqual(ws_status(broker, origin="https://evil.example"), 403)
        api = self.client(broker)
        status, body, _ = api.request("POST", "/v1/jobs", {"type": "t"},
                                      headers={"Origin": "https://evil.example"})
        self.assertEqual((status, body["error"]["code"]), (403, "origin_not_allowed"))
        self.assertEqual(api.request("GET", "/v1/jobs")[0], 200)

    def test_cors_for_rest_and_sse(self):
        broker = self.start_broker(args=("--jwt-secret", SECRET,
                                         "--allowed-origin", "https://app.example"))
        api = self.client(broker, token_for("alice"))
        status, _, headers = api.request("OPTIONS", "/v1/jobs", headers={
            "Origin": "https://app.example", "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type"})
        self.assertEqual(status, 204)
        self.assertEqual(headers["Access-Control-Allow-Origin"], "https://app.example")
        self.assertIn("Authorization", headers["Access-Control-Allow-Headers"])
        self.assertIn("POST", headers["Access-Control-Allow-Methods"])
        status, _, headers = api.request("OPTIONS", "/v1/jobs", headers={
            "Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
        self.assertEqual(status, 403)
        self.assertNotIn("Access-Control-Allow-Origin", headers)

        status, job, headers = api.request("POST", "/v1/jobs", {"type": "t"},
                                           headers={"Origin": "https://app.example"})
        self.assertEqual(status, 201)
        self.assertEqual(headers["Access-Control-Allow-Origin"], "https://app.example")
        # EventSource cannot set headers: the token rides in access_token.
        conn, resp = sse_open(broker, f"/v1/jobs/{job['id']}/events?access_token="
                              + token_for("alice"), headers={"Origin": "https://app.example"})
        self.assertEqual(resp.status, 200)
        self.assertEqual(resp.getheader("Access-Control-Allow-Origin"), "https://app.example")
        conn.close()


class LimitsTest(JobcastTest):
    def limit_hits(self, broker, limit):
        return metric(self.client(broker), "jobcast_limit_hits_total", {"limit": limit})

    def test_submissions_per_owner_are_rate_limited(self):
        broker = self.start_broker(args=("--jwt-secret", SECRET, "--max-submissions-per-second",
                                         "0.01", "--submission-burst", "3"))
        alice, bob = self.client(broker, token_for("alice")), self.client(broker, token_for("bob"))
        for _ in range(3):
            alice.submit("t")
        status, body, headers = alice.request("POST", "/v1/jobs", {"type": "t"})
        self.assertEqual((status, body["error"]["code"]), (429, "rate_limited"))
        self.assertEqual(headers["Retry-After"], "1")
        bob.submit("t")  # each owner has a bucket of their own
        self.assertEqual(self.limit_hits(broker, "submissions_rate"), 1.0)
        broker.wait_for_line(r"audit event=limit_hit limit=submissions_rate owner=\"alice\"")

    def test_connections_per_owner(self):
        broker = self.start_broker(args=("--jwt-secret", SECRET,
                                         "--max-connections-per-owner", "2"))
        token = token_for("alice")
        job = self.client(broker, token).submit("t")
        held = [ws_connect(broker, token=token) for _ in range(2)]
        self.assertEqual(ws_status(broker, token=token), 429)
        conn, resp = sse_open(broker, f"/v1/jobs/{job['id']}/events", token)
        self.assertEqual(resp.status, 429)
        conn.close()
        self.assertEqual(ws_status(broker, token=token_for("bob")), 101)
        self.assertEqual(self.limit_hits(broker, "connections_per_owner"), 2.0)
        # Closing one gives its place back.
        held.pop().close()
        wait_until(lambda: ws_status(broker, token=token) == 101, what="a freed slot")
        for ws in held:
            ws.close()
        broker.wait_for_line(r"audit event=connection_closed transport=websocket owner=\"alice\"")

    def test_connections_per_ip(self):
        broker = self.start_broker(args=("--jwt-secret", SECRET, "--max-connections-per-ip", "1"))
        ws = ws_connect(broker, token=token_for("alice"))
        self.addCleanup(ws.close)
        self.assertEqual(ws_status(broker, token=token_for("bob")), 429)
        self.assertEqual(self.limit_hits(broker, "connections_per_ip"), 1.0)

    def test_websocket_ops_per_second(self):
        broker = self.start_broker(args=("--max-ws-ops-per-second", "0.01", "--ws-ops-burst", "5"))
        ws = ws_connect(broker)
        self.addCleanup(ws.close)
        for _ in range(8):
            ws.send(json.dumps({"op": "ping"}))
        frames = [ws_recv(ws) for _ in range(8)]
        self.assertEqual([f["type"] for f in frames[:5]], ["pong"] * 5)
        self.assertEqual([f.get("code") for f in frames[5:]], ["rate_limited"] * 3)
        self.assertEqual(self.limit_hits(broker, "ws_ops_rate"), 3.0)

    def test_sizes_are_counted(self):
        broker = self.start_broker(args=("--max-body", "1000", "--max-ws-message", "1000",
                                         "--max-subscriptions", "1"))
        api = self.client(broker)
        self.assertEqual(api.request("POST", "/v1/jobs", raw="x" * 5000)[0], 413)
        ws = ws_connect(broker)
        job = api.submit("t")
        other = api.submit("t")
        self.assertEqual(ws_request(ws, {"op": "subscribe", "job": job["id"]})["type"],
                         "subscribed")
        self.assertEqual(ws_request(ws, {"op": "subscribe", "job": other["id"]})["code"], "limit")
        # Closed with 1009; the close frame can be lost to a reset while sending.
        try:
            ws.send("x" * 5000)
            frame = ws_recv(ws)
            while frame["type"] in ("event", "events"):  # the subscription's replay
                frame = ws_recv(ws)
            self.assertEqual(frame, {"type": "close", "code": 1009})
        except (BrokenPipeError, ConnectionResetError,
                websocket.WebSocketConnectionClosedException):
            pass
        ws.close()
        wait_until(lambda: self.limit_hits(broker, "ws_message_size") == 1.0,
                   what="the oversize message to be counted")
        self.assertEqual(self.limit_hits(broker, "body_size"), 1.0)
        self.assertEqual(self.limit_hits(broker, "subscriptions"), 1.0)


class CliTokenTest(JobcastTest):
    def test_jobcast_token_mints_a_token_the_broker_accepts(self):
        broker = self.start_broker(args=("--jwt-secret", SECRET))
        cli = os.path.join(BIN, "jobcast")
        minted = subprocess.run([cli, "token", "--sub", "carol", "--secret", SECRET, "--ttl", "5m"],
                                capture_output=True, text=True, timeout=30, check=True).stdout.strip()
        payload = json.loads(base64.urlsafe_b64decode(minted.split(".")[1] + "=="))
        self.assertEqual(payload["sub"], "carol")
        self.assertEqual(payload["exp"] - payload["iat"], 300)
        url = f"http://{broker.http}"
        submitted = subprocess.run([cli, "--url", url, "--token", minted, "submit", "t"],
                                   capture_output=True, text=True, timeout=30)
        self.assertEqual(submitted.returncode, 0, submitted.stderr)
        job_id = submitted.stdout.strip()
        self.assertEqual(self.client(broker, minted).job(job_id)["owner"], "carol")
        # JOBCAST_TOKEN works as well as --token; no token is refused.
        listed = subprocess.run([cli, "--url", url, "list", "--json"], capture_output=True,
                                text=True, timeout=30, env={**os.environ, "JOBCAST_TOKEN": minted})
        self.assertEqual(listed.returncode, 0, listed.stderr)
        self.assertIn(job_id, listed.stdout)
        refused = subprocess.run([cli, "--url", url, "list"], capture_output=True, text=True,
                                 timeout=30, env={k: v for k, v in os.environ.items()
                                                  if k != "JOBCAST_TOKEN"})
        self.assertNotEqual(refused.returncode, 0)
        self.assertIn("401", refused.stderr + refused.stdout)


class CurveTest(JobcastTest):
    """Workers authenticate with ZeroMQ CURVE keys from `jobcast keygen`."""

    def keygen(self, name):
        prefix = os.path.join(self.tmp.name, name)
        result = subprocess.run([os.path.join(BIN, "jobcast"), "keygen", prefix],
                                capture_output=True, text=True, timeout=30)
        self.assertEqual(result.returncode, 0, result.stderr)
        public = result.stdout.strip()
        self.assertEqual(len(public), 40)
        self.assertEqual(os.stat(prefix + ".key").st_mode & 0o777, 0o600)
        return prefix

    def test_only_allowed_workers_get_jobs(self):
        broker_key, good, stranger = self.keygen("broker"), self.keygen("good"), self.keygen("bad")
        allow = os.path.join(self.tmp.name, "allowed")
        os.mkdir(allow)
        os.rename(good + ".pub", os.path.join(allow, "good.pub"))
        broker = self.start_broker(args=("--curve-secret-key-file", broker_key + ".key",
                                         "--curve-allow", allow))
        broker.wait_for_line(r"worker auth curve=on allowed_keys=1")
        api = self.client(broker)
        job = api.submit("llm.generate", {"prompt": "curve", "max_tokens": 3})

        # A worker with a key the broker does not know is turned away at the
        # handshake: it never says hello, the job stays queued.
        self.start_worker(broker, ["llm.generate"], name="stranger",
                          args=("--curve-server-key", broker_key + ".pub",
                                "--curve-secret-key-file", stranger + ".key"))
        broker.wait_for_line(r"audit event=worker_refused mechanism=CURVE")
        # And so is a worker speaking plain TCP.
        self.start_worker(broker, ["llm.generate"], name="plain")
        self.assertEqual(metric(api, "jobcast_workers"), 0.0)
        self.assertEqual(api.job(job["id"])["state"], "queued")

        self.start_worker(broker, ["llm.generate"], name="good",
                          args=("--curve-server-key", broker_key + ".pub",
                                "--curve-secret-key-file", good + ".key"))
        done = api.wait_state(job["id"], "succeeded")
        self.assertEqual(done["worker"], "good")

    def test_keygen_refuses_to_overwrite(self):
        prefix = self.keygen("k")
        again = subprocess.run([os.path.join(BIN, "jobcast"), "keygen", prefix],
                               capture_output=True, text=True, timeout=30)
        self.assertEqual(again.returncode, 2)
        self.assertIn("not overwriting", again.stderr)

    def test_refuses_public_worker_port_without_curve(self):
        result = subprocess.run([os.path.join(BIN, "jobcast-broker"), "--db", self.db,
                                 "--zmq", "tcp://0.0.0.0:0"],
                                capture_output=True, text=True, timeout=30)
        self.assertEqual(result.returncode, 2)
        self.assertIn("without CURVE", result.stderr)


def der_to_raw(der):
    """An ECDSA DER signature as the 64-byte r||s that JWS ES256 uses."""
    assert der[0] == 0x30
    i = 2 if der[1] < 0x80 else 3
    parts = []
    for _ in range(2):
        assert der[i] == 0x02
        n = der[i + 1]
        parts.append(int.from_bytes(der[i + 2:i + 2 + n], "big").to_bytes(32, "big"))
        i += 2 + n
    return b"".join(parts)


if __name__ == "__main__":
    unittest.main()
