"""The bad-input catalogue: every kind of hostile or broken input the broker
faces, sent to the real binary, each with the exact rejection a client sees
(status and error code, close code, metric increment) and proof that the
broker still serves a normal client afterwards (submit a job, stream it to the
end over WebSocket).

Sections: REST bodies, REST parameters and headers, unknown jobs, sizes,
WebSocket ops, WebSocket frames, slow and half-open connections, the ZeroMQ
port. Foreign leases (a worker touching jobs it does not hold) are in
test_faults.RogueWorkerTest."""

import base64
import http.client
import json
import os
import select
import socket
import struct
import time
import unittest

import msgpack
import zmq

from harness import JobcastTest, metric, sim_text, wait_until
from test_streaming import WsClient, follow_ws

JOB_TYPE = "llm.generate"
READ_TIMEOUT_S = 1.0  # the broker's --read-timeout in these tests
MAX_FRAME = 4096  # the broker's --max-frame (worker messages)
MAX_WS_MESSAGE = 8192  # the broker's --max-ws-message


def recv_all(sock, timeout):
    """Everything the peer sends until it closes (b"" if it closes at once);
    raises AssertionError if it is still open after `timeout` seconds."""
    sock.settimeout(timeout)
    data = b""
    deadline = time.monotonic() + timeout
    while True:
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            raise AssertionError(f"the broker kept the connection open for {timeout}s")
        except ConnectionResetError:
            return data
        if not chunk:
            return data
        data += chunk
        sock.settimeout(max(0.05, deadline - time.monotonic()))


def read_response(sock, timeout=10):
    """(status, headers, JSON body) of the one response the peer sends next."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"closed without a response: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    while len(body) < int(headers.get("content-length", 0)):
        chunk = sock.recv(65536)
        assert chunk, "closed in the middle of a response"
        body += chunk
    return int(lines[0].split(" ", 2)[1]), headers, json.loads(body)


def closed_by_peer(sock, wait):
    """True once the peer has closed (EOF or reset); waits up to `wait` seconds."""
    if not select.select([sock], [], [], wait)[0]:
        return False
    try:
        return sock.recv(1, socket.MSG_PEEK) == b""
    except ConnectionResetError:
        return True


class RawWebSocket:
    """A WebSocket client over a plain socket, to send frames no library would."""

    def __init__(self, broker, rcvbuf=None):
        self.sock = socket.socket()
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(10)
        self.sock.connect((broker.host, broker.port))
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((
            f"GET /v1/ws HTTP/1.1\r\nHost: {broker.http}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(1)
            assert chunk, "closed during the handshake"
            head += chunk
        assert head.startswith(b"HTTP/1.1 101"), head
        self.pending = b""

    @staticmethod
    def frame(opcode, payload=b"", fin=True, rsv=0, mask=True, length=None):
        first = (0x80 if fin else 0) | (rsv << 4) | opcode
        n = len(payload) if length is None else length
        if n < 126:
            header = struct.pack("!BB", first, (0x80 if mask else 0) | n)
        elif n < 1 << 16:
            header = struct.pack("!BBH", first, (0x80 if mask else 0) | 126, n)
        else:
            header = struct.pack("!BBQ", first, (0x80 if mask else 0) | 127, n)
        if not mask:
            return header + payload
        key = os.urandom(4)
        return header + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))

    def send(self, data):
        self.sock.sendall(data)

    def close_code(self, timeout=10):
        """Reads server frames until a close frame; its code (None: closed without one)."""
        data = self.pending + recv_all(self.sock, timeout)
        while len(data) >= 2:
            opcode, n = data[0] & 0x0F, data[1] & 0x7F
            offset = 2
            if n == 126:
                n, offset = struct.unpack("!H", data[2:4])[0], 4
            elif n == 127:
                n, offset = struct.unpack("!Q", data[2:10])[0], 10
            payload = data[offset:offset + n]
            if opcode == 0x8:
                return struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
            data = data[offset + n:]
        return None

    def close(self):
        self.sock.close()


class BadInputCase(JobcastTest):
    """A broker with `broker_args`, an honest worker, and the shared checks."""

    broker_args = []

    def setUp(self):
        super().setUp()
        self.broker = self.start_broker(args=self.broker_args)
        self.api = self.client(self.broker)
        self.start_worker(self.broker, [JOB_TYPE], name="w-honest")
        self.runs = 0

    def assert_still_serves(self):
        """A normal client is served normally: submit a job, stream it to the end."""
        self.runs += 1
        params = {"prompt": f"after bad input {self.runs}", "max_tokens": 12,
                  "tokens_per_second": 0, "seed": self.runs}
        job = self.api.submit(JOB_TYPE, params)
        events = follow_ws(self.broker, job["id"])
        self.assertEqual(events[-1]["data"]["state"], "succeeded", events[-1])
        text = "".join(e["data"]["text"] for e in events if e["kind"] == "token")
        self.assertEqual(text, sim_text(params["prompt"], self.runs, 12))
        self.assertEqual(events, self.api.events(job["id"]))

    def assert_error(self, response, status, code, mentions=None, case=None):
        got_status, body, _ = response
        self.assertEqual(got_status, status, (case, body))
        self.assertIsInstance(body, dict, case)
        self.assertEqual(body["error"]["code"], code, (case, body))
        self.assertTrue(body["error"]["message"], case)
        if mentions:
            self.assertIn(mentions, body["error"]["message"], (case, body))

    def http_count(self, route, code):
        return metric(self.api, "jobcast_http_requests_total",
                      {"route": route, "code": str(code)}) or 0



class BadInputTest(BadInputCase):
    broker_args = ["--read-timeout", f"{int(READ_TIMEOUT_S * 1000)}ms", "--keepalive", "500ms",
                   "--ws-ping-interval", "500ms",
                   "--max-frame", str(MAX_FRAME), "--max-ws-message", str(MAX_WS_MESSAGE)]

    # ---- REST: request bodies ---------------------------------------------

    def test_malformed_json_wrong_types_and_huge_numbers_in_bodies(self):
        cases = [
            # Malformed JSON.
            ("{not json", None),
            ("", None),
            ('{"type":"exec"', None),
            ('{"type":"exec"}}', None),
            ("null", None),
            ('["exec"]', None),
            ('{"type":"exec","params":{"a":NaN}}', None),
            ('{"type":"exec","params":{"a":Infinity}}', None),
            ('{"type":"exec","params":{"a":-Infinity}}', None),
            ('{"type":"exec",}', None),
            ('{"type":"exec","params":' + "[" * 5000 + "]" * 5000 + "}", None),
            # Invalid UTF-8 inside a JSON string, and a lone surrogate escape.
            (b'{"type":"ex\xffec"}', None),
            (b'{"type":"exec","params":{"s":"\xc3\x28"}}', None),
            # Wrong types.
            ('{"params":{}}', "type"),
            ('{"type":42}', "type"),
            ('{"type":""}', "type"),
            ('{"type":"exec","params":[1]}', "params"),
            ('{"type":"exec","params":"x"}', "params"),
            ('{"type":"exec","priority":"high"}', "priority"),
            ('{"type":"exec","priority":1.5}', "priority"),
            ('{"type":"exec","max_attempts":true}', "max_attempts"),
            ('{"type":"exec","max_attempts":0}', "max_attempts"),
            # Huge numbers.
            ('{"type":"exec","priority":9223372036854775808}', "priority"),
            ('{"type":"exec","priority":-9223372036854775809}', "priority"),
            ('{"type":"exec","priority":18446744073709551616}', "priority"),
            ('{"type":"exec","priority":1e400}', None),
            ('{"type":"exec","max_attempts":99999999999999999999999}', "max_attempts"),
            ('{"type":"exec","params":{"n":1e400}}', None),
            ('{"type":"exec","params":{"n":-1e400}}', None),
        ]
        for body, mentions in cases:
            response = self.api.request("POST", "/v1/jobs", raw=body)
            self.assert_error(response, 400, "invalid_request", mentions, case=body)
        # Huge but representable numbers inside params are kept as they were sent.
        job = self.api.submit("nobody.runs.this", {"big": 2**64 - 1, "neg": -2**63, "f": 1e308})
        self.assertEqual(self.api.job(job["id"])["params"],
                         {"big": 2**64 - 1, "neg": -2**63, "f": 1e308})
        self.assertEqual(self.api.request("GET", "/v1/jobs?limit=1000")[1]["jobs"][0]["id"],
                         job["id"])  # nothing else was created
        self.assert_still_serves()

    # ---- REST: query parameters, paths, headers ---------------------------

    def test_bad_query_parameters_and_headers(self):
        job = self.api.submit("nobody.runs.this")
        events = f"/v1/jobs/{job['id']}/events"
        cases = [
            (f"{events}?after=-1", "after"),
            (f"{events}?after=%2D1", "after"),
            (f"{events}?after=18446744073709551616", "after"),
            (f"{events}?after=1e3", "after"),
            (f"{events}?after=nan", "after"),
            (f"{events}?after=inf", "after"),
            (f"{events}?after=+1", "after"),
            (f"{events}?after=", "after"),
            (f"{events}?after=%FF", "after"),
            (f"{events}?limit=0", "limit"),
            (f"{events}?limit=10001", "limit"),
            (f"{events}?limit=99999999999999999999999", "limit"),
            (f"{events}?wait=61", "wait"),
            (f"{events}?wait=-1", "wait"),
            (f"{events}?wait=0.5", "wait"),
            (f"{events}?after=%zz", "%-escape"),
            (f"{events}?after=%4", "%-escape"),
            ("/v1/jobs?limit=-3", "limit"),
            ("/v1/jobs?limit=1001", "limit"),
            ("/v1/jobs?state=bogus", "state"),
            ("/v1/jobs?state=%FF%FE", "state"),
        ]
        for path, mentions in cases:
            self.assert_error(self.api.request("GET", path), 400, "invalid_request", mentions,
                              case=path)
        # Invalid UTF-8 in a filter or cursor is just a value that matches nothing.
        status, page, _ = self.api.request("GET", "/v1/jobs?type=%FF%FE%00&cursor=%C3%28")
        self.assertEqual((status, page["jobs"]), (200, []))
        # Unknown methods and routes.
        status, body, headers = self.api.request("DELETE", "/v1/jobs")
        self.assertEqual((status, body["error"]["code"]), (405, "method_not_allowed"))
        self.assertEqual(headers.get("Allow"), "GET, POST")
        self.assert_error(self.api.request("GET", "/v1/nothing-here"), 404, "not_found")
        self.assert_error(self.api.request("GET", "/v1/jobs/"), 404, "not_found")
        self.assert_error(self.api.request("GET", "/v1/jobs//events"), 404, "not_found")
        # Headers: an empty, an oversize and a non-UTF-8 Idempotency-Key.
        body = {"type": "nobody.runs.this"}
        self.assert_error(self.api.request("POST", "/v1/jobs", body,
                                           headers={"Idempotency-Key": ""}),
                          400, "invalid_request", "Idempotency-Key")
        self.assert_error(self.api.request("POST", "/v1/jobs", body,
                                           headers={"Idempotency-Key": "k" * 201}),
                          400, "invalid_request", "Idempotency-Key")
        raw_key = "k\udcff\udcfe".encode("utf-8", "surrogateescape").decode("latin-1")
        s1, j1, _ = self.api.request("POST", "/v1/jobs", body, headers={"Idempotency-Key": raw_key})
        s2, j2, _ = self.api.request("POST", "/v1/jobs", body, headers={"Idempotency-Key": raw_key})
        self.assertEqual((s1, s2, j1["id"]), (201, 200, j2["id"]))
        # SSE: a Last-Event-ID that is not a seq.
        for value in ["-1", "1e3", "nan", "18446744073709551616", "\xff"]:
            conn = http.client.HTTPConnection(self.broker.host, self.broker.port, timeout=10)
            conn.putrequest("GET", events)
            conn.putheader("Accept", "text/event-stream")
            conn.putheader("Last-Event-ID", value.encode("latin-1"))
            conn.endheaders()
            resp = conn.getresponse()
            self.assertEqual(resp.status, 400, value)
            self.assertEqual(json.loads(resp.read())["error"]["code"], "invalid_request")
            conn.close()
        self.assert_still_serves()

    def test_raw_bytes_the_http_parser_refuses(self):
        """Requests no HTTP client library would send, on a raw socket: each one
        gets its exact status and JSON error."""
        cases = [
            (b"GARBAGE\r\n\r\n", 400),
            (b"GET /v1/jobs HTTP/9.9\r\n\r\n", 400),
            (b"GET /v1/jobs HTTP/1.1\r\nBad Header\r\n\r\n", 400),
            (b"GET /v1/jobs HTTP/1.1\r\nX: a\x00b\r\n\r\n", 400),
            (b"POST /v1/jobs HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400),
            (b"POST /v1/jobs HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n", 400),
            (b"POST /v1/jobs HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400),
            (b"POST /v1/jobs HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
            # Bytes outside ASCII in a target are no route and no job.
            (b"GET /v1/jobs/\xff\xfe HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 404),
            (b"GET /v1/jobs\xff HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 404),
            # Declared over --max-body: refused before any of it is sent.
            (b"POST /v1/jobs HTTP/1.1\r\nContent-Length: 2000000\r\n\r\n", 413),
            (b"GET /v1/jobs HTTP/1.1\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n", 431),
        ]
        upgrade = (b"GET /v1/ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                   b"Connection: Upgrade\r\n")
        key = b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        cases += [
            # WebSocket upgrades Beast would refuse in plain text: JSON, and counted.
            (b"GET /v1/ws HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 426),
            (upgrade + b"Sec-WebSocket-Version: 13\r\n\r\n", 400),
            (upgrade + b"Sec-WebSocket-Key: " + b"A" * 25 + b"\r\nSec-WebSocket-Version: 13\r\n\r\n",
             400),
            (upgrade + key + b"\r\n", 400),
            (upgrade + key + b"Sec-WebSocket-Version: 8\r\n\r\n", 426),
        ]
        codes = {400: "invalid_request", 404: "not_found", 413: "payload_too_large",
                 426: "upgrade_required", 431: "header_too_large"}
        ws_101 = self.http_count("/v1/ws", 101)
        for raw, status in cases:
            with socket.create_connection((self.broker.host, self.broker.port), 10) as s:
                s.sendall(raw)
                got, headers, body = read_response(s)
                self.assertEqual(got, status, raw[:80])
                self.assertEqual(body["error"]["code"], codes[status], raw[:80])
                if status == 426 and b"Sec-WebSocket-Version: 8" in raw:
                    self.assertEqual(headers.get("sec-websocket-version"), "13")
        self.assertEqual(self.http_count("/v1/ws", 101), ws_101)  # no upgrade counted
        self.assertEqual(self.http_count("/v1/ws", 400), 3)
        self.assertEqual(self.http_count("/v1/ws", 426), 2)
        self.assert_still_serves()

    # ---- unknown jobs -----------------------------------------------------

    def test_unknown_jobs_are_404_on_every_transport(self):
        ids = ["01NOSUCHJOB", "%FF%FE", "a%00b", "x" * 5000, "%2E%2E", "..", "01HZY3J5KX8Q2V7R4M6N0P1S9T"]
        for job_id in ids:
            for method, path in [("GET", f"/v1/jobs/{job_id}"),
                                 ("GET", f"/v1/jobs/{job_id}/events"),
                                 ("GET", f"/v1/jobs/{job_id}/events?wait=1"),
                                 ("POST", f"/v1/jobs/{job_id}/cancel")]:
                self.assert_error(self.api.request(method, path), 404, "not_found",
                                  case=path[:80])
            conn = http.client.HTTPConnection(self.broker.host, self.broker.port, timeout=10)
            conn.request("GET", f"/v1/jobs/{job_id}/events", headers={"Accept": "text/event-stream"})
            resp = conn.getresponse()
            self.assertEqual(resp.status, 404, job_id[:80])
            self.assertEqual(json.loads(resp.read())["error"]["code"], "not_found")
            conn.close()
        self.assert_still_serves()

    # ---- sizes ------------------------------------------------------------

    def test_oversize_bodies_and_messages(self):
        before = self.http_count("/v1/jobs", 413)
        self.assert_error(self.api.request("POST", "/v1/jobs", raw="x" * (2 << 20)), 413,
                          "payload_too_large")
        # The same over chunked transfer encoding, where no length is declared.
        conn = http.client.HTTPConnection(self.broker.host, self.broker.port, timeout=10)
        try:
            conn.request("POST", "/v1/jobs", body=iter([b"x" * 65536] * 40),
                         encode_chunked=True, headers={"Transfer-Encoding": "chunked"})
            resp = conn.getresponse()
            self.assertEqual(resp.status, 413)
            self.assertEqual(json.loads(resp.read())["error"]["code"], "payload_too_large")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the broker closed while we still sent: also a refusal
        finally:
            conn.close()
        wait_until(lambda: self.http_count("/v1/jobs", 413) >= before + 1, what="413 counted")
        # A WebSocket message over --max-ws-message: close 1009, counted.
        errors = metric(self.api, "jobcast_ws_op_errors_total")
        raw = RawWebSocket(self.broker)
        self.addCleanup(raw.close)
        raw.send(raw.frame(0x1, b'{"op":"ping","pad":"' + b"x" * MAX_WS_MESSAGE + b'"}'))
        self.assertEqual(raw.close_code(), 1009)
        # The same size in fragments (each small) is the same message.
        raw = RawWebSocket(self.broker)
        self.addCleanup(raw.close)
        piece = b"x" * 1024
        raw.send(raw.frame(0x1, b'{"op":"ping","pad":"', fin=False))
        for _ in range(MAX_WS_MESSAGE // len(piece) + 1):
            raw.send(raw.frame(0x0, piece, fin=False))
        self.assertEqual(raw.close_code(), 1009)
        wait_until(lambda: metric(self.api, "jobcast_ws_op_errors_total") >= errors + 2,
                   what="oversize messages counted")
        self.assert_still_serves()

    # ---- WebSocket ops ----------------------------------------------------

    def test_bad_ops_get_error_frames_and_the_connection_stays_usable(self):
        job = self.api.submit("nobody.runs.this")
        jid = job["id"]
        client = WsClient(self.broker)
        self.addCleanup(client.close)
        errors = metric(self.api, "jobcast_ws_op_errors_total")
        cases = [
            ("{not json", "bad_json"),
            ("", "bad_json"),
            ("[1,2]", "bad_json"),
            ('"subscribe"', "bad_json"),
            ('{"op":"ping",}', "bad_json"),
            ("[" * 100 + "]" * 100, "bad_json"),
            ('{"op":"dance"}', "unknown_op"),
            ('{"op":42}', "bad_request"),
            ('{"job":"%s"}' % jid, "bad_request"),
            ('{"op":"subscribe"}', "bad_request"),
            ('{"op":"subscribe","job":42}', "bad_request"),
            ('{"op":"subscribe","job":""}', "bad_request"),
            ('{"op":"subscribe","job":"%s"}' % ("x" * 65), "bad_request"),
            ('{"op":"subscribe","job":"a b"}', "bad_request"),
            ('{"op":"subscribe","job":"\\u00ff"}', "bad_request"),
            ('{"op":"subscribe","job":"%s","after":-1}' % jid, "bad_request"),
            ('{"op":"subscribe","job":"%s","after":1e400}' % jid, "bad_request"),
            ('{"op":"subscribe","job":"%s","after":1.5}' % jid, "bad_request"),
            ('{"op":"subscribe","job":"%s","after":"3"}' % jid, "bad_request"),
            ('{"op":"subscribe","job":"%s","after":18446744073709551616}' % jid, "bad_request"),
            ('{"op":"subscribe","job":"%s","after":NaN}' % jid, "bad_json"),
            ('{"op":"subscribe","job":"%s","after":99}' % jid, "bad_request"),
            ('{"op":"subscribe","job":"01UNKNOWNJOB"}', "not_found"),
            ('{"op":"cancel","job":"01UNKNOWNJOB"}', "not_found"),
            ('{"op":"unsubscribe"}', "bad_request"),
            ('{"op":"subscribe","feed":"everything"}', "bad_request"),
            ('{"op":"subscribe","feed":42}', "bad_request"),
            ('{"op":"auth"}', "bad_request"),
            ('{"op":"auth","token":""}', "bad_request"),
        ]
        for text, code in cases:
            client.ws.send(text)
            frame = client.recv()
            self.assertEqual(frame["type"], "error", text)
            self.assertEqual(frame["code"], code, (text, frame))
            self.assertTrue(frame["message"], text)
        client.ws.send_binary(b"\x00\x01")
        frame = client.recv()
        self.assertEqual((frame["type"], frame["code"]), ("error", "bad_request"))
        client.send({"op": "ping"})
        self.assertEqual(client.recv(), {"type": "pong"})
        self.assertEqual(metric(self.api, "jobcast_ws_op_errors_total"),
                         errors + len(cases) + 1)
        self.assert_still_serves()

    # ---- WebSocket frames -------------------------------------------------

    def test_malformed_websocket_frames_close_with_the_protocol_code(self):
        frame = RawWebSocket.frame
        ping = b'{"op":"ping"}'
        cases = [
            ("reserved opcode 0x3", frame(0x3, ping), 1002),
            ("reserved control opcode 0xB", frame(0xB, b""), 1002),
            ("unmasked client frame", frame(0x1, ping, mask=False), 1002),
            ("RSV1 without an extension", frame(0x1, ping, rsv=4), 1002),
            ("RSV3", frame(0x1, ping, rsv=1), 1002),
            ("continuation with nothing to continue", frame(0x0, ping), 1002),
            ("text frame inside a fragmented message",
             frame(0x1, b'{"op"', fin=False) + frame(0x1, b':"ping"}'), 1002),
            ("fragmented ping", frame(0x9, b"x", fin=False), 1002),
            ("ping over 125 bytes", frame(0x9, b"x" * 126), 1002),
            ("invalid UTF-8 in a text frame", frame(0x1, b'{"op":"\xff\xfe"}'), 1007),
            ("close with a reserved code", frame(0x8, struct.pack("!H", 999)), 1002),
            ("length over 2^63", frame(0x1, b"", length=1 << 63), 1009),
            ("length over the limit", frame(0x1, b"", length=MAX_WS_MESSAGE + 1), 1009),
        ]
        for what, data, code in cases:
            raw = RawWebSocket(self.broker)
            try:
                raw.send(data)
                self.assertEqual(raw.close_code(), code, what)
            finally:
                raw.close()
        # A truncated frame, then silence: the broker's keepalive ping goes
        # unanswered and the connection is closed, not kept forever.
        # (The sessions closed above may still be ending: wait for them, so
        # that the count below is about this one alone.)
        def websockets():
            return metric(self.api, "jobcast_connections", {"transport": "websocket"})
        wait_until(lambda: websockets() == 0, what="the sessions above to end")
        raw = RawWebSocket(self.broker)
        self.addCleanup(raw.close)
        raw.send(frame(0x1, ping * 10)[:20])
        recv_all(raw.sock, 15)
        wait_until(lambda: websockets() == 0, what="the session ended")
        self.assert_still_serves()

    # ---- slow and half-open connections -----------------------------------

    def test_slowloris_and_half_open_connections_are_cut_off(self):
        malformed = self.http_count("malformed", 408)
        jobs_408 = self.http_count("/v1/jobs", 408)

        def connect():
            s = socket.create_connection((self.broker.host, self.broker.port), timeout=10)
            self.addCleanup(s.close)
            return s

        idle = connect()  # sends nothing at all
        half = connect()  # half a request line, then nothing
        half.sendall(b"GET /v1/jo")
        body = connect()  # a whole header, half the body, then nothing
        body.sendall(b"POST /v1/jobs HTTP/1.1\r\nContent-Length: 100\r\n\r\n{\"type\":")
        slow = connect()  # a header dribbled byte by byte, never finished
        # While they hang, others are served.
        self.assertEqual(self.api.request("GET", "/healthz")[0], 200)
        cut_off = False
        # The whole dribble would take 50 s, far beyond --read-timeout.
        for byte in b"GET /healthz HTTP/1.1\r\nX-Slow: " + b"a" * 1000:
            try:
                slow.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                pass
            if closed_by_peer(slow, wait=0.05):
                cut_off = True
                break
        self.assertTrue(cut_off, "a client dribbling its header was never cut off")
        for s in (idle, half, body):
            self.assertEqual(recv_all(s, READ_TIMEOUT_S + 10), b"")  # closed, no response
        # Partial requests count as 408 (half, slow: no route yet; body: /v1/jobs);
        # the idle connection is an ordinary keep-alive close and counts nothing.
        wait_until(lambda: self.http_count("malformed", 408) == malformed + 2
                   and self.http_count("/v1/jobs", 408) == jobs_408 + 1, what="408s counted")
        self.assert_still_serves()

    # ---- the ZeroMQ port --------------------------------------------------

    def test_garbage_on_the_zeromq_port(self):
        host, port = self.broker.zmq.rsplit("/", 1)[1].rsplit(":", 1)
        # A ZMTP peer with frames that are not protocol v1: each counted, by reason.
        ctx = zmq.Context()
        self.addCleanup(ctx.term)
        rogue = ctx.socket(zmq.DEALER)
        rogue.setsockopt(zmq.LINGER, 0)
        self.addCleanup(rogue.close)
        rogue.connect(self.broker.zmq)

        def rejected(reason):
            return metric(self.api, "jobcast_rejected_messages_total", {"reason": reason}) or 0

        malformed, oversize = rejected("malformed"), rejected("oversize")
        pack = msgpack.packb
        deep = 1
        for _ in range(40):  # deeper than the decoder's limit of 32
            deep = [deep]
        nested = {"v": 1, "t": "chunk", "job": "j", "attempt": 1, "wseq": 1, "kind": "log",
                  "ts": 1, "data": {"d": deep}}
        malformed_frames = [
            b"",
            b"\xc1",
            b"\xc1\xff garbage",
            pack([1, 2, 3]),
            pack({"v": 1}),
            pack({"v": 2, "t": "heartbeat"}),
            pack({"v": 1, "t": "no-such-type"}),
            pack({"v": 1, "t": "chunk", "job": "j"}),
            pack({"v": 1, "t": "chunk", "job": "j", "attempt": -1, "wseq": 1, "kind": "log",
                  "data": {}, "ts": 1}),
            pack({"v": 1, "t": "chunk", "job": "j", "attempt": 1, "wseq": 1, "kind": "log",
                  "data": [1], "ts": 1}),
            pack({"v": 1, "t": "chunk", "job": "j", "attempt": 1, "wseq": 1, "kind": "log",
                  "data": {"x": float("nan")}, "ts": 1}),
            pack({"v": 1, "t": "chunk", "job": "j", "attempt": 1, "wseq": 1, "kind": "log",
                  "data": {"x": float("inf")}, "ts": 1}),
            pack({"v": 1, "t": "hello", "worker": b"\xff\xfe", "types": ["x"], "capacity": 1,
                  "inflight": []}),
            pack(nested),
            b"\x80" * 10,  # a map followed by trailing garbage
            b"\xdf\xff\xff\xff\xff",  # a map claiming 4 billion entries
        ]
        for f in malformed_frames:
            rogue.send(f)
        rogue.send_multipart([pack({"v": 1, "t": "heartbeat"}), b"extra"])
        rogue.send(pack({"v": 1, "t": "heartbeat", "pad": "x" * MAX_FRAME}))
        wait_until(lambda: rejected("malformed") >= malformed + len(malformed_frames) + 1,
                   what="malformed frames counted")
        wait_until(lambda: rejected("oversize") >= oversize + 1, what="oversize frame counted")
        self.assertEqual(rejected("malformed"), malformed + len(malformed_frames) + 1)
        self.assertEqual(rejected("oversize"), oversize + 1)
        # After all that, the peer can still say hello properly and be welcomed;
        # its bad hello was answered with a reject that says why.
        rogue.send(pack({"v": 1, "t": "hello", "worker": "rogue", "types": ["none"],
                         "capacity": 1, "inflight": []}))
        replies = []
        while not replies or replies[-1]["t"] != "welcome":
            self.assertTrue(rogue.poll(10000), "no welcome")
            replies.append(msgpack.unpackb(rogue.recv()))
        self.assertEqual([(r["t"], r["reason"]) for r in replies[:-1]],
                         [("reject", "invalid_hello")])
        # A frame far over the limit: ZeroMQ drops that peer's connection.
        rogue.send(b"\x00" * (MAX_FRAME * 4))
        # Not ZMTP at all. A bad greeting is dropped at once; bytes that could
        # still be the start of a (legacy) greeting are dropped by ZeroMQ's
        # handshake timeout (ZMQ_HANDSHAKE_IVL, 30 s): checked at the end. (Bytes
        # that pass for ZMTP 1.0 frames may be counted as malformed messages.)
        bad_greeting = b"\xff\x00\x00\x00\x00\x00\x00\x00\x01\x7f\x03\x00NULL" + b"\x00" * 48
        with socket.create_connection((host, int(port)), timeout=10) as s:
            s.sendall(bad_greeting + b"garbage" * 10)
            recv_all(s, 10)  # closed at once
        opened = time.monotonic()
        hanging = []
        for garbage in [b"GET / HTTP/1.1\r\n\r\n", os.urandom(4096), b""]:
            s = socket.create_connection((host, int(port)), timeout=10)
            self.addCleanup(s.close)
            s.sendall(garbage)
            hanging.append(s)
        self.assert_still_serves()
        for s in hanging:
            recv_all(s, max(1.0, opened + 40 - time.monotonic()))


class UnreadAnswersTest(BadInputCase):
    """With the default keepalive, so that the ping timeout does not cut the
    client off while the test watches the queue."""

    def test_ops_from_a_client_that_reads_no_answers_are_paced(self):
        """Every op queues an answer. A client that sends ops as fast as it
        can and never reads makes the broker stop reading its ops once the
        answers fill the connection's queue (--client-queue-bytes), instead
        of queueing answers without bound."""
        raw = RawWebSocket(self.broker, rcvbuf=4096)
        self.addCleanup(raw.close)
        ping = raw.frame(0x1, b'{"op":"ping"}', mask=False)
        ping = ping[:1] + bytes([ping[1] | 0x80]) + b"\0\0\0\0" + ping[2:]  # mask key 0
        flood = ping * 2_000_000  # 38 MB: about 34 MB of answers
        raw.sock.settimeout(3)
        sent = 0
        try:
            while sent < len(flood):
                sent += raw.sock.send(flood[sent:sent + (1 << 20)])
        except socket.timeout:
            pass  # the broker stopped reading: what this test wants
        self.assertLess(sent, len(flood), "the broker read every op without pacing")
        # The answers it did queue stay within the limit (here the default, 1 MiB).
        queued = metric(self.api, "jobcast_client_queued_bytes")
        self.assertLessEqual(queued, (1 << 20) + 4096)
        raw.close()
        wait_until(lambda: metric(self.api, "jobcast_connections", {"transport": "websocket"}) == 0,
                   what="the flooding connection ended")
        self.assertEqual(metric(self.api, "jobcast_client_queued_bytes"), 0)
        self.assert_still_serves()


if __name__ == "__main__":
    unittest.main()
