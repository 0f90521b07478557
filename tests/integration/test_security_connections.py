"""Who may reach the broker and how much of it one client may hold, against
the real broker: DNS rebinding (the Host check of an open broker, audit H3),
every connection kind under the connection limits and a global cap below the
descriptor limit (M3), --max-subscriptions under a burst (M4), bearer tokens
and forged fields in the logs (L1), and event pages bounded by bytes (L4)."""

import http.client
import json
import os
import re
import socket
import threading
import time
import unittest

import msgpack
import websocket

from harness import BIN, Broker, JobcastTest, Process, ZmqPeers, metric, wait_until
from test_security import SECRET, make_token, sse_open, token_for, ws_connect, ws_status
from test_streaming import recv_frame

REBIND = "rebind.attacker.example"


def raw_exchange(broker, data, timeout=10):
    """Sends raw bytes on a fresh connection; returns (status, headers, body) of the answer."""
    with socket.create_connection((broker.host, broker.port), timeout) as s:
        s.sendall(data)
        return read_answer(s, timeout)


def read_answer(sock, timeout=10):
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1]) if lines[0].startswith("HTTP/") else None
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(4096)
        if not chunk:
            break
        body += chunk
    try:
        payload = json.loads(body) if body else None
    except ValueError:
        payload = body
    return status, headers, payload


def upgrade_request(host, origin=None, path="/v1/ws"):
    origin_line = f"Origin: {origin}\r\n" if origin else ""
    return (f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            f"Sec-WebSocket-Version: 13\r\n{origin_line}\r\n").encode()


def log_fields(line):
    """The key=value fields of one log line, quoted values unescaped; None if it
    does not parse as such a line from its first field on."""
    fields = {}
    pos = 0
    pattern = re.compile(r'\s*([A-Za-z_][A-Za-z0-9_]*)=("(?:[^"\\]|\\.)*"|[^\s"]*)(?=\s|$)')
    while pos < len(line):
        m = pattern.match(line, pos)
        if not m:
            return None
        value = m.group(2)
        if value.startswith('"'):
            value = re.sub(r"\\(x[0-9a-fA-F]{2}|.)",
                           lambda e: chr(int(e.group(1)[1:], 16)) if len(e.group(1)) == 3
                           and e.group(1)[0] == "x" else e.group(1), value[1:-1])
        fields[m.group(1)] = value
        pos = m.end()
    return fields


class LimitedBroker(Broker):
    """A broker started under `ulimit -n nofile` (soft and hard), so it cannot raise it."""

    def __init__(self, db, nofile, args=()):
        argv = ["/bin/sh", "-c", f'ulimit -n {nofile} && exec "$@"', "sh",
                os.path.join(BIN, "jobcast-broker"), "--http", "127.0.0.1:0", "--zmq",
                "tcp://127.0.0.1:0", "--db", db, "--heartbeat", "200ms", *args]
        Process.__init__(self, argv, name="broker")
        m = self.wait_for_line(r"listening http=(\S+) zmq=(\S+)")
        self.http, self.zmq = m.group(1), m.group(2)
        self.host, port = self.http.rsplit(":", 1)
        self.port = int(port)
        self.tls = None


def status_of(client, method, path, timeout=5):
    """The status of one request, or None when the connection failed."""
    try:
        return client.request(method, path, timeout=timeout)[0]
    except (OSError, http.client.HTTPException):
        return None


def long_poll(broker, job_id, token, wait=30, results=None, timeout=60):
    """GET .../events?wait= on its own connection; appends (status, body) or the error."""
    try:
        conn = http.client.HTTPConnection(broker.host, broker.port, timeout=timeout)
        conn.request("GET", f"/v1/jobs/{job_id}/events?after=1&wait={wait}",
                     headers={"Authorization": "Bearer " + token})
        resp = conn.getresponse()
        body = resp.read()
        conn.close()
        out = (resp.status, json.loads(body) if body else None)
    except (OSError, http.client.HTTPException) as e:
        out = ("error", repr(e))
    if results is not None:
        results.append(out)
    return out


def stream_long_poll(broker, name, token, offset="now", results=None, timeout=60):
    """GET /v1/streams/{name}?live=long-poll on its own connection; appends (status, body) or the error."""
    try:
        conn = http.client.HTTPConnection(broker.host, broker.port, timeout=timeout)
        conn.request("GET", f"/v1/streams/{name}?offset={offset}&live=long-poll",
                     headers={"Authorization": "Bearer " + token})
        resp = conn.getresponse()
        out = (resp.status, resp.read())
        conn.close()
    except (OSError, http.client.HTTPException) as e:
        out = ("error", repr(e))
    if results is not None:
        results.append(out)
    return out


class HostCheckTest(JobcastTest):
    """H3: a page whose DNS name is re-pointed at 127.0.0.1 sends its own name
    as Host and as Origin; an open broker must not serve it."""

    def test_dns_rebinding_is_refused_on_every_route_and_transport(self):
        broker = self.start_broker()
        api = self.client(broker)
        job = api.submit("t")
        host = f"{REBIND}:{broker.port}"
        rebind = {"Host": host, "Origin": f"http://{host}"}

        cases = [
            ("POST", "/v1/jobs", {"type": "exec", "params": {"command": "ls", "args": ["/"]}}),
            ("GET", "/v1/jobs", None),
            ("GET", f"/v1/jobs/{job['id']}", None),
            ("POST", f"/v1/jobs/{job['id']}/cancel", None),
            ("GET", f"/v1/jobs/{job['id']}/events?wait=1", None),
            ("GET", "/healthz", None),
            ("GET", "/metrics", None),
            ("GET", "/", None),
        ]
        for method, path, body in cases:
            with self.subTest(method=method, path=path):
                status, answer, _ = api.request(method, path, body, headers=rebind)
                self.assertEqual(status, 403, answer)
                self.assertEqual(answer["error"]["code"], "host_not_allowed")
        # Without an Origin too (a no-cors request, or no browser at all).
        status, answer, _ = api.request("GET", "/v1/jobs", headers={"Host": host})
        self.assertEqual((status, answer["error"]["code"]), (403, "host_not_allowed"))

        conn, resp = sse_open(broker, f"/v1/jobs/{job['id']}/events", headers=rebind)
        self.assertEqual(resp.status, 403)
        self.assertEqual(json.loads(resp.read())["error"]["code"], "host_not_allowed")
        conn.close()

        status, _, answer = raw_exchange(broker, upgrade_request(host, f"http://{host}"))
        self.assertEqual((status, answer["error"]["code"]), (403, "host_not_allowed"))

        # Nothing was created or cancelled, and each refusal is counted and audited.
        self.assertEqual([j["id"] for j in api.request("GET", "/v1/jobs")[1]["jobs"]], [job["id"]])
        self.assertEqual(api.job(job["id"])["state"], "queued")
        self.assertEqual(metric(api, "jobcast_requests_refused_total", {"reason": "host"}),
                         len(cases) + 3)
        broker.wait_for_line(r'audit event=request_refused reason=host ip=127\.0\.0\.1 '
                             r'host="rebind\.attacker\.example:\d+" method="POST" '
                             r'target="/v1/jobs"')

    def test_loopback_names_and_the_listed_hosts_are_served(self):
        broker = self.start_broker(args=("--allowed-host", "jobs.test"))
        api = self.client(broker)
        port = broker.port
        for host in (f"127.0.0.1:{port}", f"localhost:{port}", "localhost", f"127.0.0.1",
                     f"jobs.test:{port}", f"JOBS.TEST:{port}", f"127.1.2.3:{port}"):
            with self.subTest(host=host):
                origin = {"Host": host, "Origin": f"http://{host}"}
                status, body, _ = api.request("POST", "/v1/jobs", {"type": "t"}, headers=origin)
                self.assertEqual(status, 201, body)
                self.assertEqual(api.request("GET", "/v1/jobs", headers=origin)[0], 200)
                status, _, _ = raw_exchange(broker, upgrade_request(host, f"http://{host}"))
                self.assertEqual(status, 101)
        # The browser and Prometheus reach it by the address it prints.
        self.assertEqual(ws_status(broker, origin=f"http://{broker.http}"), 101)
        self.assertEqual(api.request("GET", "/metrics")[0], 200)
        # A name that merely starts like a loopback address is a name.
        for host in (f"127.0.0.1.nip.io:{port}", f"localhost.{REBIND}:{port}"):
            status, body, _ = api.request("GET", "/v1/jobs", headers={"Host": host})
            self.assertEqual((status, body["error"]["code"]), (403, "host_not_allowed"), host)

    @unittest.skipUnless(socket.has_ipv6, "no IPv6")
    def test_ipv6_loopback_is_served(self):
        try:
            with socket.socket(socket.AF_INET6) as probe:
                probe.bind(("::1", 0))
        except OSError:
            self.skipTest("::1 cannot be bound here")
        broker = self.start_broker(http="[::1]:0")
        api = self.client(broker)
        api.host = "::1"
        for host in (f"[::1]:{broker.port}", "[::1]", f"localhost:{broker.port}"):
            status, body, _ = api.request("GET", "/v1/jobs", headers={"Host": host})
            self.assertEqual(status, 200, (host, body))
        status, body, _ = api.request("GET", "/v1/jobs", headers={"Host": REBIND})
        self.assertEqual((status, body["error"]["code"]), (403, "host_not_allowed"))

    def test_with_auth_tokens_are_the_boundary_unless_hosts_are_listed(self):
        broker = self.start_broker(args=("--jwt-secret", SECRET))
        api = self.client(broker, token_for("alice"))
        status, body, _ = api.request("GET", "/v1/jobs", headers={"Host": "broker.example:443"})
        self.assertEqual(status, 200, body)

        strict = self.start_broker(db=os.path.join(self.tmp.name, "strict.db"),
                                   args=("--jwt-secret", SECRET, "--allowed-host",
                                         "broker.example"))
        api = self.client(strict, token_for("alice"))
        self.assertEqual(api.request("GET", "/v1/jobs",
                                     headers={"Host": "broker.example:443"})[0], 200)
        status, body, _ = api.request("GET", "/v1/jobs", headers={"Host": REBIND})
        self.assertEqual((status, body["error"]["code"]), (403, "host_not_allowed"))

        anything = self.start_broker(db=os.path.join(self.tmp.name, "any.db"),
                                     args=("--allowed-host", "*"))
        self.assertEqual(self.client(anything).request("GET", "/v1/jobs",
                                                       headers={"Host": REBIND})[0], 200)


class ConnectionLimitsTest(JobcastTest):
    """M3: long-polls count like streams, every connection counts per IP, and a
    global cap below the descriptor limit answers 503 instead of failing accept."""

    def limit_hits(self, broker, limit):
        return metric(self.client(broker), "jobcast_limit_hits_total", {"limit": limit})

    def test_long_polls_count_against_the_per_owner_limit(self):
        broker = self.start_broker(args=("--jwt-secret", SECRET,
                                         "--max-connections-per-owner", "3"))
        alice, bob = token_for("alice"), token_for("bob")
        job = self.client(broker, alice).submit("t")
        bobs = self.client(broker, bob).submit("t")
        held = []
        threads = [threading.Thread(target=long_poll, args=(broker, job["id"], alice, 30, held))
                   for _ in range(3)]
        for t in threads:
            t.start()
        # Once the three wait, the fourth is refused at once, like a fourth stream.
        wait_until(lambda: broker.output().count("event=connection_opened transport=long_poll "
                                                 'owner="alice"') == 3,
                   what="three waiting long-polls")
        # It is told why, and its connection closes (it would hold a descriptor).
        status, headers, body = raw_exchange(broker, (
            f"GET /v1/jobs/{job['id']}/events?after=1&wait=30 HTTP/1.1\r\nHost: {broker.http}"
            f"\r\nAuthorization: Bearer {alice}\r\n\r\n").encode())
        self.assertEqual((status, body["error"]["code"]), (429, "too_many_connections"))
        self.assertEqual(headers["connection"], "close")
        self.assertIn("retry-after", headers)
        self.assertEqual(ws_status(broker, token=alice), 429)
        # Another owner is not affected.
        self.assertEqual(long_poll(broker, bobs["id"], bob, 1)[0], 200)
        self.assertEqual(self.limit_hits(broker, "connections_per_owner"), 2.0)
        # An event answers the waiting ones, and their places come back.
        self.assertEqual(self.client(broker, alice).request(
            "POST", f"/v1/jobs/{job['id']}/cancel")[0], 202)
        for t in threads:
            t.join(30)
        self.assertEqual([s for s, _ in held], [200, 200, 200])
        self.assertEqual(long_poll(broker, job["id"], alice, 1)[0], 200)
        self.assertEqual(self.limit_hits(broker, "connections_per_owner"), 2.0)

    def test_durable_stream_long_polls_count_like_the_jobs_long_polls(self):
        broker = self.start_broker(args=("--jwt-secret", SECRET, "--max-connections-per-owner",
                                         "3", "--stream-long-poll", "30s"))
        alice, bob = token_for("alice"), token_for("bob")
        plain = {"Content-Type": "text/plain"}
        for token in (alice, bob):
            self.assertEqual(self.client(broker, token).request(
                "PUT", "/v1/streams/s", raw=b"x", headers=plain)[0], 201)
        job = self.client(broker, alice).submit("t")
        held = []
        threads = [threading.Thread(target=stream_long_poll, args=(broker, "s", alice, "now", held))
                   for _ in range(3)]
        for t in threads:
            t.start()
        wait_until(lambda: broker.output().count("event=connection_opened transport=long_poll "
                                                 'owner="alice"') == 3,
                   what="three waiting stream long-polls")
        # At the limit, a fourth long-poll is refused as GET /v1/jobs/{id}/events?wait= is.
        status, headers, body = raw_exchange(broker, (
            f"GET /v1/streams/s?offset=now&live=long-poll HTTP/1.1\r\nHost: {broker.http}"
            f"\r\nAuthorization: Bearer {alice}\r\n\r\n").encode())
        self.assertEqual((status, body["error"]["code"]), (429, "too_many_connections"))
        self.assertEqual(headers["connection"], "close")
        self.assertIn("retry-after", headers)
        self.assertEqual(long_poll(broker, job["id"], alice, 1)[0], 429)
        self.assertEqual(metric(self.client(broker), "jobcast_stream_live_readers",
                                {"mode": "long-poll"}), 3.0)
        # Another owner is not affected; plain reads are not long-polls.
        self.assertEqual(stream_long_poll(broker, "s", bob, "-1")[0], 200)
        self.assertEqual(self.client(broker, alice).request("GET", "/v1/streams/s")[0], 200)
        self.assertEqual(self.limit_hits(broker, "connections_per_owner"), 2.0)
        # An append answers the waiting ones, and their places come back.
        self.assertEqual(self.client(broker, alice).request(
            "POST", "/v1/streams/s", raw=b"y", headers=plain)[0], 204)
        for t in threads:
            t.join(30)
        self.assertEqual(held, [(200, b"y")] * 3)
        self.assertEqual(stream_long_poll(broker, "s", alice, "-1")[0], 200)
        self.assertEqual(metric(self.client(broker), "jobcast_stream_live_readers",
                                {"mode": "long-poll"}), 0.0)
        self.assertEqual(self.limit_hits(broker, "connections_per_owner"), 2.0)

    def test_streams_and_long_polls_count_per_ip_with_auth_off_too(self):
        broker = self.start_broker(args=("--max-connections-per-ip", "2"))
        job = self.client(broker).submit("t")
        ws = ws_connect(broker)
        self.addCleanup(ws.close)
        held = []
        poll = threading.Thread(target=long_poll, args=(broker, job["id"], "none", 30, held))
        poll.start()
        wait_until(lambda: "event=connection_opened transport=long_poll" in broker.output(),
                   what="the long-poll waiting")
        self.assertEqual(ws_status(broker), 429)
        self.assertEqual(long_poll(broker, job["id"], "none", 30)[0], 429)
        self.assertEqual(self.limit_hits(broker, "connections_per_ip"), 2.0)
        # Plain requests are not streams: they are served.
        self.assertEqual(self.client(broker).request("GET", "/v1/jobs")[0], 200)
        self.assertEqual(self.client(broker).request(
            "POST", f"/v1/jobs/{job['id']}/cancel")[0], 202)
        poll.join(30)
        self.assertEqual(held[0][0], 200)

    def test_the_repro_300_long_polls_under_a_low_descriptor_limit(self):
        """repro/08: under ulimit -n 256, one owner's 300 long-polls took every
        descriptor and another owner timed out."""
        broker = LimitedBroker(self.db, 256, args=("--jwt-secret", SECRET,
                                                   "--max-connections-per-owner", "5"))
        self.processes.append(broker)
        self.addCleanup(broker.kill)
        alice, bob = token_for("alice"), token_for("bob")
        job = self.client(broker, alice).submit("research", {"topic": "x"})
        results = []
        threads = [threading.Thread(target=long_poll, args=(broker, job["id"], alice, 30, results))
                   for _ in range(300)]
        for t in threads:
            t.start()
        # Beyond her five, every one is refused at once (429, or 503 over the
        # global cap) instead of holding a descriptor for 30 s.
        wait_until(lambda: len(results) >= 295, timeout=30,
                   what="alice's long-polls over her limit to be refused")
        # While alice tries her 300, bob is served.
        started = time.monotonic()
        wait_until(lambda: status_of(self.client(broker, bob), "GET", "/v1/jobs") == 200,
                   timeout=10, what="bob served")
        self.assertLess(time.monotonic() - started, 10)
        self.assertEqual(self.client(broker, alice).request(
            "POST", f"/v1/jobs/{job['id']}/cancel")[0], 202)
        for t in threads:
            t.join(60)
        statuses = [s for s, _ in results]
        self.assertEqual(len(statuses), 300)
        self.assertEqual(statuses.count(200), 5, statuses)
        self.assertGreater(statuses.count(429), 0)
        # Refused ones were told why (429 per owner, 503 over the cap) or, when
        # even that would cost too much, closed; none waited.
        self.assertTrue(set(statuses) <= {200, 429, 503, "error"}, set(statuses))
        self.assertNotIn("accept failed", broker.output())
        self.assertTrue(broker.alive())
        # It could not raise its limit, and capped the connections below it.
        fd_line = re.search(r"event=fd_limit soft=(\d+) .*max_connections=(\d+)", broker.output())
        self.assertIsNotNone(fd_line)
        self.assertEqual(int(fd_line.group(1)), 256)
        self.assertLess(int(fd_line.group(2)), 256)

    def test_global_cap_answers_503_and_closes(self):
        broker = self.start_broker(args=("--max-connections", "20", "--max-sockets-per-ip", "40"))
        broker.wait_for_line(r"event=fd_limit .*max_connections=20\b")
        idle = [socket.create_connection((broker.host, broker.port), 10) for _ in range(20)]
        try:
            for s in idle[-1:]:
                # The 20th is admitted: it is served (and kept alive).
                s.sendall(f"GET /healthz HTTP/1.1\r\nHost: {broker.http}\r\n\r\n".encode())
                self.assertEqual(read_answer(s)[0], 200)
            refused = []
            for _ in range(3):
                with socket.create_connection((broker.host, broker.port), 10) as s:
                    s.sendall(f"GET /v1/jobs HTTP/1.1\r\nHost: {broker.http}\r\n\r\n".encode())
                    refused.append(read_answer(s))
                    self.assertEqual(s.recv(1), b"", "closed after the answer")
            for status, headers, body in refused:
                self.assertEqual(status, 503)
                self.assertEqual(body["error"]["code"], "overloaded")
                self.assertEqual(headers["connection"], "close")
                self.assertIn("retry-after", headers)
        finally:
            for s in idle:
                s.close()
        api = self.client(broker)
        wait_until(lambda: api.request("GET", "/healthz")[0] == 200, what="served again")
        self.assertGreaterEqual(self.limit_hits(broker, "connections"), 3.0)
        # A flood is audited once per interval, not once per connection.
        lines = [l for l in broker.output().splitlines()
                 if "audit event=limit_hit limit=connections " in l]
        self.assertEqual(len(lines), 1, lines)
        self.assertIn("max_connections=20", lines[0])
        self.assertNotIn("accept failed", broker.output())

    def test_every_connection_from_one_address_counts_at_accept(self):
        broker = self.start_broker(args=("--max-sockets-per-ip", "3"))
        idle = [socket.create_connection((broker.host, broker.port), 10) for _ in range(2)]
        ws = ws_connect(broker)  # a stream is a connection too
        try:
            status, headers, body = raw_exchange(
                broker, f"GET /healthz HTTP/1.1\r\nHost: {broker.http}\r\n\r\n".encode())
            self.assertEqual((status, body["error"]["code"]), (429, "too_many_connections"))
            self.assertEqual(headers["connection"], "close")
            ws.send(json.dumps({"op": "ping"}))
            self.assertEqual(recv_frame(ws), {"type": "pong"})  # the open ones go on
        finally:
            ws.close()
            for s in idle:
                s.close()
        api = self.client(broker)
        wait_until(lambda: api.request("GET", "/healthz")[0] == 200, what="served again")
        self.assertGreaterEqual(self.limit_hits(broker, "sockets_per_ip"), 1.0)


class SubscriptionBurstTest(JobcastTest):
    def test_max_subscriptions_holds_under_a_burst(self):
        """M4: 100 subscribe ops in one TCP write against --max-subscriptions 5."""
        # At debug level the ops are read faster than their ownership checks
        # come back, which is the window the burst used (100 of 100 got through).
        broker = self.start_broker(args=("--max-subscriptions", "5", "--log-level", "debug"))
        api = self.client(broker)
        jobs = [api.submit("t")["id"] for _ in range(100)]
        ws = websocket.create_connection(f"ws://{broker.http}/v1/ws", timeout=20)
        self.addCleanup(ws.close)
        burst = b"".join(
            websocket.ABNF.create_frame(json.dumps({"op": "subscribe", "job": j}),
                                        websocket.ABNF.OPCODE_TEXT).format() for j in jobs)
        ws.sock.sendall(burst)
        subscribed, limited = [], []
        while len(subscribed) + len(limited) < 100:
            frame = recv_frame(ws)
            if frame["type"] == "subscribed":
                subscribed.append(frame["job"])
            elif frame["type"] == "error":
                self.assertEqual(frame["code"], "limit", frame)
                limited.append(frame["job"])
        self.assertEqual((len(subscribed), len(limited)), (5, 95))
        self.assertEqual(sorted(subscribed + limited), sorted(jobs))
        self.assertLessEqual(metric(api, "jobcast_subscriptions"), 5)
        self.assertEqual(metric(api, "jobcast_limit_hits_total", {"limit": "subscriptions"}), 95)
        # Unsubscribing gives a place back.
        ws.send(json.dumps({"op": "unsubscribe", "job": subscribed[0]}))
        ws.send(json.dumps({"op": "subscribe", "job": limited[0]}))
        frame = recv_frame(ws)
        while frame["type"] in ("event", "events"):  # the subscribed jobs' queued events
            frame = recv_frame(ws)
        self.assertEqual((frame["type"], frame["job"]), ("subscribed", limited[0]))


class LogHygieneTest(JobcastTest):
    def test_tokens_are_redacted_and_targets_cannot_forge_fields_or_lines(self):
        """L1: at --log-level debug every request line has its target; the
        access_token in it is redacted, and a quote cannot end the field."""
        broker = self.start_broker(args=("--jwt-secret", SECRET, "--log-level", "debug"))
        token = token_for("alice")
        api = self.client(broker)
        self.assertEqual(api.request("GET", "/v1/jobs?access_token=" + token)[0], 200)
        ws = ws_connect(broker, query_token=token)
        ws.close()
        conn, resp = sse_open(broker, "/v1/jobs/nope/events?after=0&access_token=" + token)
        self.assertEqual(resp.status, 404)
        conn.close()
        forged = [
            b'GET /v1/jobs/a"b=c HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n',
            b'GET /v1/jobs/x"%20code=200%20audit=1 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n',
            b'GET /v1/jobs?access_token=' + token.encode() + b'" HTTP/1.1\r\nHost: 127.0.0.1'
            b'\r\n\r\n',
        ]
        for raw in forged:
            raw_exchange(broker, raw)
        # An Origin folded over two lines cannot start a line of its own either.
        open_broker = self.start_broker(db=os.path.join(self.tmp.name, "open.db"),
                                        args=("--log-level", "debug"))
        status, _, _ = raw_exchange(open_broker, (
            f"POST /v1/jobs HTTP/1.1\r\nHost: {open_broker.http}\r\nContent-Length: 2\r\n"
            "Origin: http://evil.example\r\n audit event=forged owner=\"x\"\r\n\r\n{}").encode())
        self.assertEqual(status, 403)
        open_broker.wait_for_line(r"audit event=request_refused reason=origin")

        broker.wait_for_line(r'target="/v1/jobs/a\\"b=c"')
        broker.wait_for_line(r'request conn=\d+ method="GET" target="/v1/jobs/x\\"%20code')
        for process in (broker, open_broker):
            out = process.output()
            self.assertNotIn(token, out)
            self.assertNotIn(token.split(".")[2], out)  # not even the signature
            for line in out.splitlines():
                self.assertFalse(re.search(r"(^|\] )audit event=forged", line), line)
        requests = [l for l in broker.output().splitlines() if " request conn=" in l]
        self.assertTrue(any("access_token=REDACTED" in l for l in requests), requests)
        for line in requests:
            fields = log_fields(line[line.index("request conn="):][len("request "):])
            self.assertIsNotNone(fields, line)
            self.assertEqual(set(fields), {"conn", "method", "target", "code", "ms"}, line)
        targets = {log_fields(l[l.index("request conn="):][len("request "):])["target"]
                   for l in requests}
        self.assertIn('/v1/jobs/a"b=c', targets)
        self.assertIn('/v1/jobs/x"%20code=200%20audit=1', targets)


class PageBytesTest(ZmqPeers, JobcastTest):
    """L4: a job whose worker emits big events is read in pages bounded by
    bytes, each saying where to go on, over REST, long-poll and WebSocket replay."""

    CHUNK = 900_000  # bytes of text per event (a worker message is at most 1 MiB)
    EVENTS = 12
    BUDGET = 4 << 20  # the default --max-page-bytes

    def big_job(self, broker):
        api = self.client(broker)
        sock = self.dealer(broker)
        self.hello(sock, "big", ["big"])
        job = api.submit("big")
        self.recv_type(sock, "assign")
        wseq = 0
        for i in range(self.EVENTS):
            wseq += 1
            sock.send(msgpack.packb({"v": 1, "t": "chunk", "job": job["id"], "attempt": 1,
                                     "wseq": wseq, "kind": "token",
                                     "data": {"text": chr(ord("a") + i) * self.CHUNK},
                                     "ts": int(time.time() * 1e6)}))
        wseq += 1
        sock.send(msgpack.packb({"v": 1, "t": "done", "job": job["id"], "attempt": 1,
                                 "wseq": wseq, "result": {}}))
        api.wait_state(job["id"], "succeeded")
        return job["id"]

    def test_pages_stop_at_the_byte_budget_and_continue_exactly(self):
        budget = self.BUDGET
        broker = self.start_broker()
        api = self.client(broker)
        job = self.big_job(broker)
        events, after, pages = [], 0, 0
        while True:
            status, page, _ = api.request("GET", f"/v1/jobs/{job}/events?after={after}&limit=10000")
            self.assertEqual(status, 200)
            pages += 1
            data = sum(len(json.dumps(e["data"])) for e in page["events"])
            # At most the budget plus the event that reached it.
            self.assertLess(data, budget + self.CHUNK + 1000)
            self.assertTrue(page["events"])
            events += page["events"]
            after = page["events"][-1]["seq"]
            if page["done"]:
                break
            self.assertLess(pages, 20)
        self.assertGreaterEqual(pages, 3)
        self.assertEqual([e["seq"] for e in events], list(range(1, len(events) + 1)))
        tokens = [e["data"]["text"] for e in events if e["kind"] == "token"]
        self.assertEqual(tokens, [chr(ord("a") + i) * self.CHUNK for i in range(self.EVENTS)])
        # A long-poll's answer is a page like any other.
        status, page, _ = api.request("GET", f"/v1/jobs/{job}/events?after=0&wait=5")
        self.assertEqual(status, 200)
        self.assertFalse(page["done"])
        self.assertLess(len(page["events"]), len(events))

        # A WebSocket replay reads the store in pages of the same bound.
        ws = websocket.create_connection(f"ws://{broker.http}/v1/ws", timeout=30)
        self.addCleanup(ws.close)
        ws.send(json.dumps({"op": "subscribe", "job": job, "after": 0}))
        replayed, frames = [], 0
        while not replayed or replayed[-1]["kind"] != "state" or \
                replayed[-1]["data"]["state"] != "succeeded":
            frame = recv_frame(ws)
            if frame["type"] == "events":
                frames += 1
                data = sum(len(json.dumps(e["data"])) for e in frame["events"])
                self.assertLess(data, budget + self.CHUNK + 1000)
                replayed += frame["events"]
            elif frame["type"] == "event":
                frames += 1
                replayed.append({k: frame[k] for k in ("seq", "kind", "ts", "data")})
        self.assertGreaterEqual(frames, 3)
        self.assertEqual(replayed, events)


if __name__ == "__main__":
    unittest.main()
