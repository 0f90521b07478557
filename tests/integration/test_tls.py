"""Native TLS on the broker's HTTP port (--tls-cert/--tls-key): HTTPS, wss://
and SSE over TLS on one port with a certificate the client verifies; plain
HTTP on that port refused with a 400 that says why; old protocol versions and
garbage handshakes refused and counted; the certificate reloaded on SIGHUP
without dropping open streams; bad certificate flags refused at start."""

import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
import unittest

import websocket

import test_streaming as streaming
from harness import BIN, JobcastTest, check_contiguous, metric, sim_text, wait_until


def make_cert(directory, name, cn="localhost", san="DNS:localhost,IP:127.0.0.1"):
    """A self-signed ECDSA certificate, by default for localhost and 127.0.0.1."""
    cert = os.path.join(directory, name + ".crt")
    key = os.path.join(directory, name + ".key")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=" + cn,
         "-addext", "subjectAltName=" + san],
        check=True, capture_output=True)
    return cert, key


def client_context(cafile):
    """What a careful client does: verify the chain and the host name."""
    ctx = ssl.create_default_context(cafile=cafile)
    ctx.check_hostname = True
    return ctx


def raw_exchange(broker, data, timeout=10):
    """Sends `data` on a plain TCP connection and reads until the broker closes."""
    with socket.create_connection((broker.host, broker.port), timeout=timeout) as s:
        s.sendall(data)
        out = b""
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            out += chunk
        return out


def peer_subject(broker, ctx):
    with socket.create_connection((broker.host, broker.port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
            subject = dict(x[0] for x in tls.getpeercert()["subject"])
            return subject["commonName"]


class TlsTest(JobcastTest):
    def setUp(self):
        super().setUp()
        self.cert, self.key = make_cert(self.tmp.name, "broker")

    def start_tls_broker(self, cert=None, key=None, args=(), db=None):
        broker = self.start_broker(db=db or self.db, args=["--tls-cert", cert or self.cert,
                                                           "--tls-key", key or self.key, *args])
        broker.tls = client_context(cert or self.cert)
        return broker

    def llm_job(self, api, n=120, tps=400, seed=3, prompt="tls"):
        params = {"prompt": prompt, "max_tokens": n, "tokens_per_second": tps, "seed": seed}
        return api.submit("llm.generate", params), sim_text(prompt, seed, n)

    def test_https_wss_and_sse_share_the_tls_port(self):
        broker = self.start_tls_broker()
        self.start_worker(broker, ["llm.generate"])
        api = self.client(broker)

        conn = api.connection()
        conn.request("GET", "/healthz")
        self.assertEqual(conn.getresponse().status, 200)
        self.assertIn(conn.sock.version(), ("TLSv1.2", "TLSv1.3"))
        conn.close()

        job, text = self.llm_job(api)
        ws_events = streaming.follow_ws(broker, job["id"])
        check_contiguous(self, ws_events)
        self.assertEqual(ws_events, api.events(job["id"]))
        self.assertEqual("".join(e["data"]["text"] for e in ws_events if e["kind"] == "token"),
                         text)

        sse_events = streaming.follow_sse(broker, job["id"])
        self.assertEqual(sse_events, ws_events)
        # Resume over TLS, as a reconnecting EventSource does.
        tail = streaming.follow_sse(broker, job["id"], last_event_id=ws_events[10]["seq"])
        self.assertEqual(tail, ws_events[11:])
        # A resumed WebSocket too.
        self.assertEqual(streaming.follow_ws(broker, job["id"], after=ws_events[-5]["seq"]),
                         ws_events[-4:])

        # The certificate's expiry is a gauge (the self-signed one lasts 2 days).
        expiry = metric(api, "jobcast_tls_certificate_expiry_timestamp_seconds")
        self.assertGreater(expiry, time.time() + 86400)
        self.assertLessEqual(expiry, time.time() + 2 * 86400 + 60)

    def test_large_replays_over_tls_are_exact(self):
        # Replays go out in frames of up to 256 KiB: many TLS records per
        # write, partial writes, and reads and writes in flight together.
        broker = self.start_tls_broker()
        self.start_worker(broker, ["llm.generate"])
        api = self.client(broker)
        job, text = self.llm_job(api, n=6000, tps=100000, prompt="a long replay")
        api.wait_state(job["id"], ["succeeded"])
        stored = api.events(job["id"])
        self.assertGreater(len(stored), 6000)
        for follow in (streaming.follow_ws, streaming.follow_sse):
            with self.subTest(transport=follow.__name__):
                got = follow(broker, job["id"])
                self.assertEqual(got, stored)
                self.assertEqual(
                    "".join(e["data"]["text"] for e in got if e["kind"] == "token"), text)

    def test_sse_over_tls_ends_with_close_notify(self):
        # A body delimited by the connection's end: a TLS client must see
        # close_notify, or it cannot tell the end from a truncation.
        broker = self.start_tls_broker()
        self.start_worker(broker, ["llm.generate"])
        api = self.client(broker)
        job, _ = self.llm_job(api, n=30)
        api.wait_state(job["id"], ["succeeded"])
        ctx = client_context(self.cert)
        with socket.create_connection((broker.host, broker.port), timeout=10) as raw:
            tls = ctx.wrap_socket(raw, server_hostname="localhost", suppress_ragged_eofs=False)
            tls.sendall(f"GET /v1/jobs/{job['id']}/events?after=25 HTTP/1.1\r\n"
                        "Host: localhost\r\nAccept: text/event-stream\r\n\r\n".encode())
            body = b""
            while True:
                chunk = tls.recv(65536)  # SSLEOFError here: closed without close_notify
                if not chunk:
                    break
                body += chunk
            tls.close()
        self.assertTrue(body.startswith(b"HTTP/1.1 200 OK"), body[:200])
        ids = [int(line[4:]) for line in body.decode().splitlines() if line.startswith("id: ")]
        self.assertEqual(ids, list(range(26, ids[-1] + 1)))
        self.assertIn(b'"state":"succeeded"', body)

    def test_plaintext_client_is_refused_on_the_tls_port(self):
        broker = self.start_tls_broker()
        api = self.client(broker)

        reply = raw_exchange(broker, b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        head, _, body = reply.partition(b"\r\n\r\n")
        self.assertTrue(head.startswith(b"HTTP/1.1 400 "), reply[:200])
        error = json.loads(body)["error"]
        self.assertEqual(error["code"], "tls_required")
        self.assertIn("https://", error["message"])

        # A ws:// client is refused the same way, before any upgrade.
        with self.assertRaises(websocket.WebSocketBadStatusException) as refused:
            websocket.create_connection(f"ws://{broker.http}/v1/ws", timeout=10)
        self.assertEqual(refused.exception.status_code, 400)

        # Counted, and the port still serves TLS clients.
        self.assertEqual(
            metric(api, "jobcast_tls_handshake_failures_total", {"reason": "plaintext"}), 2)
        status, _, _ = api.request("GET", "/healthz")
        self.assertEqual(status, 200)

    def test_old_protocols_and_broken_handshakes_are_refused_and_counted(self):
        broker = self.start_tls_broker(args=["--tls-min-version", "1.3"])
        api = self.client(broker)

        # A client that offers TLS 1.2 at most: the broker answers with a
        # protocol_version alert (the refusal comes from the server side).
        old = ssl.create_default_context(cafile=self.cert)
        old.maximum_version = ssl.TLSVersion.TLSv1_2
        with socket.create_connection((broker.host, broker.port), timeout=10) as raw:
            with self.assertRaises(ssl.SSLError) as refused:
                old.wrap_socket(raw, server_hostname="localhost")
        self.assertIn("PROTOCOL_VERSION", refused.exception.reason or str(refused.exception))

        # A TLS record with a ClientHello header and garbage after it.
        raw_exchange(broker, b"\x16\x03\x01\x00\x30\x01\x00\x00\x2c" + b"\xff" * 44)

        wait_until(lambda: metric(api, "jobcast_tls_handshake_failures_total",
                                  {"reason": "handshake"}) == 2,
                   what="both refused handshakes counted")
        status, _, _ = api.request("GET", "/healthz")
        self.assertEqual(status, 200)
        conn = api.connection()
        conn.request("GET", "/healthz")
        conn.getresponse().read()
        self.assertEqual(conn.sock.version(), "TLSv1.3")
        conn.close()

    def test_a_client_that_stalls_the_handshake_is_closed_and_counted(self):
        broker = self.start_tls_broker(args=["--read-timeout", "500ms"])
        api = self.client(broker)
        with socket.create_connection((broker.host, broker.port), timeout=10) as s:
            s.sendall(b"\x16\x03\x01\x02\x00\x01")  # a ClientHello that never finishes
            started = time.monotonic()
            self.assertEqual(s.recv(100), b"")  # closed by the broker
            self.assertLess(time.monotonic() - started, 8)
        wait_until(lambda: metric(api, "jobcast_tls_handshake_failures_total",
                                  {"reason": "timeout"}) == 1, what="timeout counted")

    def test_sighup_reloads_the_certificate_and_keeps_open_streams(self):
        live_cert = os.path.join(self.tmp.name, "live.crt")
        live_key = os.path.join(self.tmp.name, "live.key")
        shutil.copy(self.cert, live_cert)
        shutil.copy(self.key, live_key)
        broker = self.start_tls_broker(cert=live_cert, key=live_key)
        self.start_worker(broker, ["llm.generate"])
        api = self.client(broker)
        self.assertEqual(peer_subject(broker, client_context(self.cert)), "localhost")

        # A WebSocket opened with the old certificate...
        ws = streaming.WsClient(broker)
        self.addCleanup(ws.close)

        # ...the certificate is renewed on disk, and the broker told.
        new_cert, new_key = make_cert(self.tmp.name, "renewed", cn="renewed.localhost")
        shutil.copy(new_cert, live_cert)
        shutil.copy(new_key, live_key)
        broker.kill(signal.SIGHUP)
        broker.wait_for_line(r'event=tls_certificate subject="/CN=renewed.localhost"')

        new_ctx = client_context(new_cert)
        self.assertEqual(peer_subject(broker, new_ctx), "renewed.localhost")
        broker.tls = new_ctx
        api = self.client(broker)

        # The old connection still streams a job submitted after the reload.
        job, text = self.llm_job(api, n=40)
        ws.send({"op": "subscribe", "job": job["id"], "after": 0})
        events = []
        for frame_job, e in ws.frames():
            if frame_job:
                events.append(e)
                if streaming.is_terminal(e):
                    break
        self.assertEqual("".join(e["data"]["text"] for e in events if e["kind"] == "token"),
                         text)

        # A broken renewal is refused; the renewed certificate stays in use.
        with open(live_key, "w") as f:
            f.write("not a key\n")
        broker.kill(signal.SIGHUP)
        broker.wait_for_line(r"event=tls_reload result=failed")
        self.assertEqual(peer_subject(broker, new_ctx), "renewed.localhost")
        self.assertTrue(broker.alive())
        self.assertEqual(api.job(job["id"])["state"], "succeeded")

    def test_the_cli_follows_a_job_over_https_and_wss(self):
        broker = self.start_tls_broker()
        self.start_worker(broker, ["llm.generate"])
        cli = os.path.join(BIN, "jobcast")
        env = {k: v for k, v in os.environ.items() if not k.startswith("JOBCAST_")}
        env["JOBCAST_URL"] = f"https://localhost:{broker.port}"
        run = subprocess.run(
            [cli, "--cacert", self.cert, "submit", "llm.generate", "prompt=over tls",
             "max_tokens=80", "tokens_per_second=400", "seed=5", "--follow"],
            capture_output=True, text=True, env=env, timeout=60)
        self.assertEqual(run.returncode, 0, run.stderr)
        self.assertEqual(run.stdout, sim_text("over tls", 5, 80))

        # Without --cacert the self-signed certificate is not trusted: a
        # connection error (exit 4) that says why, and nothing is submitted.
        refused = subprocess.run([cli, "submit", "llm.generate", "prompt=x"],
                                 capture_output=True, text=True, env=env, timeout=60)
        self.assertEqual(refused.returncode, 4, refused.stderr)
        self.assertIn("certificate verify failed", refused.stderr)
        self.assertEqual(len(self.client(broker).request("GET", "/v1/jobs")[1]["jobs"]), 1)

        # A trusted certificate for another name is refused too.
        other_cert, other_key = make_cert(self.tmp.name, "other", san="DNS:elsewhere.example")
        other = self.start_tls_broker(cert=other_cert, key=other_key,
                                      db=os.path.join(self.tmp.name, "other.db"))
        env["JOBCAST_URL"] = f"https://localhost:{other.port}"
        wrong_name = subprocess.run([cli, "--cacert", other_cert, "list"],
                                    capture_output=True, text=True, env=env, timeout=60)
        self.assertEqual(wrong_name.returncode, 4, wrong_name.stderr)
        self.assertIn("certificate verify failed", wrong_name.stderr)

    def test_bad_tls_flags_are_refused_at_start(self):
        other_cert, other_key = make_cert(self.tmp.name, "other")
        cases = [
            (["--tls-cert", self.cert], "--tls-cert needs --tls-key"),
            (["--tls-key", self.key], "--tls-key needs --tls-cert"),
            (["--tls-cert", "/nonexistent.crt", "--tls-key", self.key], "cannot read"),
            (["--tls-cert", self.key, "--tls-key", self.key], "not a PEM certificate"),
            (["--tls-cert", self.cert, "--tls-key", self.cert], "not an unencrypted PEM"),
            (["--tls-cert", self.cert, "--tls-key", other_key], "does not match"),
            (["--tls-cert", self.cert, "--tls-key", self.key, "--tls-min-version", "1.1"],
             "must be 1.2 or 1.3"),
        ]
        for args, message in cases:
            with self.subTest(args=args):
                run = subprocess.run(
                    [os.path.join(BIN, "jobcast-broker"), "--http", "127.0.0.1:0", "--zmq",
                     "tcp://127.0.0.1:0", "--db", self.db, *args],
                    capture_output=True, text=True, timeout=30)
                self.assertEqual(run.returncode, 2, run.stderr)
                self.assertIn(message, run.stderr)


# The streaming tests where the byte stream under the sessions matters most,
# run again over TLS: replays on every transport, resume under load, a lagging
# subscriber whose backlog is coalesced, clients that stop reading (closed,
# with the broker's memory bounded), and the jobs feed with cancel. (The slow
# subscriber's catch-up takes 3.5 minutes and is the same code above the
# stream: it runs in test_streaming only.)
OVER_TLS = {
    "test_websocket_subscribe_streams_the_log_then_live",
    "test_finished_job_replays_whole_log_on_every_transport",
    "test_resume_at_random_points_under_load_has_no_gap_or_duplicate",
    "test_lagging_live_subscriber_gets_its_backlog_coalesced_and_exact",
    "test_client_that_stops_reading_is_closed_and_broker_memory_stays_bounded",
    "test_jobs_feed_and_cancel_over_websocket",
}


class StreamingOverTlsTest(streaming.StreamingTest):
    def start_broker(self, **kw):
        if not hasattr(self, "cert"):
            self.cert, self.key = make_cert(self.tmp.name, "broker")
        kw["args"] = ["--tls-cert", self.cert, "--tls-key", self.key, *kw.get("args", ())]
        broker = super().start_broker(**kw)
        broker.tls = client_context(self.cert)
        return broker


for _name in dir(streaming.StreamingTest):
    if _name.startswith("test_") and _name not in OVER_TLS:
        setattr(StreamingOverTlsTest, _name, None)
assert OVER_TLS <= set(dir(streaming.StreamingTest))


if __name__ == "__main__":
    unittest.main()
