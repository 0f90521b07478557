"""Guarantees 1, 3 and 4 over the public transports: WebSocket, SSE and
long-poll resume exactly (no gap, no duplicate, order kept) at random points
under load; slow and stalled clients cost bounded memory and lose nothing.
Bad client input (ops, frames, sizes) is in the bad-input catalogue,
test_bad_input.py."""

import http.client
import json
import random
import socket
import threading
import time
import unittest

import websocket

from harness import Client, JobcastTest, check_contiguous, metric, sim_text, wait_until

TERMINAL = {"succeeded", "failed", "cancelled"}

# websocket-client 1.2 refuses close code 1012 (service restart), which the
# broker sends on shutdown and which RFC 6455's registry defines.
if 1012 not in websocket._abnf.VALID_CLOSE_STATUS:
    websocket._abnf.VALID_CLOSE_STATUS = tuple(websocket._abnf.VALID_CLOSE_STATUS) + (1012,)


def is_terminal(event):
    return event["kind"] == "state" and event["data"]["state"] in TERMINAL


def recv_frame(ws):
    """The next JSON frame of a websocket-client connection; a close frame
    becomes {"type": "close", "code": N}."""
    while True:
        opcode, frame = ws.recv_data_frame(True)
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            code = int.from_bytes(frame.data[:2], "big") if len(frame.data) >= 2 else None
            return {"type": "close", "code": code}
        if opcode == websocket.ABNF.OPCODE_TEXT:
            return json.loads(frame.data.decode())
        if opcode == websocket.ABNF.OPCODE_BINARY:
            raise AssertionError("binary frame from the server")
        if opcode == websocket.ABNF.OPCODE_PING:
            ws.pong(frame.data)  # as browsers do, or the broker's keepalive drops us


class WsClient:
    """A WebSocket client of /v1/ws that unpacks `events` frames."""

    def __init__(self, broker, timeout=20):
        tls = getattr(broker, "tls", None)
        if tls:
            self.ws = websocket.create_connection(f"wss://{broker.http}/v1/ws", timeout=timeout,
                                                  sslopt={"context": tls})
        else:
            self.ws = websocket.create_connection(f"ws://{broker.http}/v1/ws", timeout=timeout)

    def send(self, op):
        self.ws.send(json.dumps(op))

    def recv(self):
        return recv_frame(self.ws)

    def frames(self):
        """Yields (job, event) for event frames and the frame itself for others."""
        while True:
            frame = self.recv()
            if frame["type"] == "event":
                yield frame["job"], {k: frame[k] for k in ("seq", "kind", "ts", "data")}
            elif frame["type"] == "events":
                for e in frame["events"]:
                    yield frame["job"], e
            elif frame["type"] == "close":
                yield None, frame
                return
            else:
                yield None, frame

    def close(self):
        try:
            self.ws.close()
        except Exception:
            pass


def follow_ws(broker, job, after=0, stop_after=None, timeout=20):
    """Events of `job` after `after` until terminal (or `stop_after` events);
    `timeout`: the longest wait for a frame."""
    client = WsClient(broker, timeout=timeout)
    try:
        client.send({"op": "subscribe", "job": job, "after": after})
        got = []
        for frame_job, item in client.frames():
            if frame_job is None:
                if item["type"] == "error":
                    raise AssertionError(f"error frame: {item}")
                continue
            assert frame_job == job
            got.append(item)
            if is_terminal(item) or (stop_after is not None and len(got) >= stop_after):
                return got
    finally:
        client.close()


def follow_sse(broker, job, after=None, last_event_id=None, stop_after=None):
    """Events from the SSE stream until it ends (or `stop_after` events)."""
    conn = Client(broker.host, broker.port, tls=getattr(broker, "tls", None)).connection(20)
    headers = {"Accept": "text/event-stream"}
    if last_event_id is not None:
        headers["Last-Event-ID"] = str(last_event_id)
    path = f"/v1/jobs/{job}/events" + (f"?after={after}" if after is not None else "")
    conn.request("GET", path, headers=headers)
    resp = conn.getresponse()
    assert resp.status == 200, (resp.status, resp.read())
    assert resp.getheader("Content-Type").startswith("text/event-stream")
    got, fields = [], {}
    try:
        while True:
            line = resp.fp.readline()
            if not line:
                return got  # the server ended the stream
            line = line.decode().rstrip("\n")
            if line == "":
                if "data" in fields:
                    event = json.loads(fields["data"])
                    assert str(event["seq"]) == fields["id"]
                    assert event["kind"] == fields["event"]
                    got.append(event)
                    if stop_after is not None and len(got) >= stop_after:
                        return got
                fields = {}
            elif line.startswith(":"):
                continue  # heartbeat comment
            else:
                key, _, value = line.partition(": ")
                fields[key] = value
    finally:
        conn.close()


def follow_longpoll(api, job, after=0, stop_after=None):
    got = []
    while True:
        status, page, _ = api.request("GET", f"/v1/jobs/{job}/events?after={after}&wait=5&limit=50")
        assert status == 200, (status, page)
        got += page["events"]
        if page["events"]:
            after = page["events"][-1]["seq"]
        if page["done"] or (stop_after is not None and len(got) >= stop_after):
            return got


class StreamingTest(JobcastTest):
    def setUp(self):
        super().setUp()
        self.broker = self.start_broker()
        self.api = self.client(self.broker)

    def llm_job(self, n=200, tps=200, seed=1, prompt="stream"):
        params = {"prompt": prompt, "max_tokens": n, "tokens_per_second": tps, "seed": seed}
        return self.api.submit("llm.generate", params), sim_text(prompt, seed, n)

    def test_websocket_subscribe_streams_the_log_then_live(self):
        self.start_worker(self.broker, ["llm.generate"])
        job, text = self.llm_job(n=150, tps=300)
        client = WsClient(self.broker)
        self.addCleanup(client.close)
        client.send({"op": "subscribe", "job": job["id"], "after": 0})
        first = client.recv()
        self.assertEqual(first["type"], "subscribed")
        self.assertEqual(first["job"], job["id"])
        events = []
        for frame_job, e in client.frames():
            if frame_job:
                events.append(e)
                if is_terminal(e):
                    break
        check_contiguous(self, events)
        self.assertEqual(events, self.api.events(job["id"]))
        self.assertEqual("".join(e["data"]["text"] for e in events if e["kind"] == "token"), text)
        # The connection stays usable after the stream ended.
        client.send({"op": "ping"})
        self.assertEqual(client.recv(), {"type": "pong"})

    def test_finished_job_replays_whole_log_on_every_transport(self):
        self.start_worker(self.broker, ["llm.generate"])
        job, _ = self.llm_job(n=40, tps=0)
        self.api.wait_state(job["id"], "succeeded")
        log = self.api.events(job["id"])
        self.assertEqual(follow_ws(self.broker, job["id"]), log)
        self.assertEqual(follow_sse(self.broker, job["id"]), log)
        self.assertEqual(follow_longpoll(self.api, job["id"]), log)
        self.assertEqual(follow_ws(self.broker, job["id"], after=30), log[30:])
        self.assertEqual(follow_sse(self.broker, job["id"], last_event_id=30), log[30:])

    def test_resuming_after_the_terminal_event_ends_at_once(self):
        self.start_worker(self.broker, ["llm.generate"])
        job, _ = self.llm_job(n=20, tps=0)
        self.api.wait_state(job["id"], "succeeded")
        log = self.api.events(job["id"])
        last = log[-1]["seq"]
        # A browser's EventSource reconnects whenever a stream ends, with the
        # terminal event's id; 204 No Content is what makes it stop.
        conn = http.client.HTTPConnection(self.broker.host, self.broker.port, timeout=10)
        self.addCleanup(conn.close)
        conn.request("GET", f"/v1/jobs/{job['id']}/events",
                     headers={"Accept": "text/event-stream", "Last-Event-ID": str(last)})
        resp = conn.getresponse()
        self.assertEqual(resp.status, 204)
        self.assertEqual(resp.read(), b"")
        self.assertEqual(follow_sse(self.broker, job["id"], last_event_id=last - 1), log[-1:])
        # A WebSocket client re-subscribing all it knows after a reconnect gets
        # nothing more, and the server keeps no subscription for it.
        client = WsClient(self.broker)
        self.addCleanup(client.close)
        client.send({"op": "subscribe", "job": job["id"], "after": last})
        self.assertEqual(client.recv(), {"type": "subscribed", "job": job["id"], "last_seq": last})
        client.send({"op": "ping"})
        self.assertEqual(client.recv(), {"type": "pong"})
        self.assertEqual(metric(self.api, "jobcast_subscriptions"), 0)
        self.assertEqual(follow_ws(self.broker, job["id"], after=last - 1), log[-1:])

    def test_resume_at_random_points_under_load_has_no_gap_or_duplicate(self):
        for i in range(2):
            self.start_worker(self.broker, ["llm.generate"], name=f"load{i}", capacity=8)
        jobs = [self.llm_job(n=400, tps=400, seed=i, prompt=f"load {i}")[0] for i in range(8)]
        rng = random.Random(1234)
        results, errors = {}, []

        def reader(kind, job_id, key):
            try:
                got = []
                after = 0
                while not got or not is_terminal(got[-1]):
                    chunk = rng.randint(1, 120)
                    if kind == "ws":
                        part = follow_ws(self.broker, job_id, after=after, stop_after=chunk)
                    elif kind == "sse":
                        part = follow_sse(self.broker, job_id, last_event_id=after if after else None,
                                          stop_after=chunk)
                    else:
                        part = follow_longpoll(self.api, job_id, after=after, stop_after=chunk)
                    got += part
                    if got:
                        after = got[-1]["seq"]
                results[key] = got
            except Exception as e:  # reported below with the key
                errors.append((key, repr(e)))

        threads = []
        for job in jobs:
            for kind in ("ws", "ws", "sse", "longpoll"):
                key = (kind, job["id"], len(threads))
                threads.append(threading.Thread(target=reader, args=(kind, job["id"], key)))
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        self.assertEqual(errors, [])
        self.assertEqual(len(results), len(threads))
        for (kind, job_id, _), got in results.items():
            log = self.api.events(job_id)
            # The reassembled stream equals the stored log: same events, same order.
            self.assertEqual([e["seq"] for e in got], [e["seq"] for e in log], kind)
            self.assertEqual(got, log, kind)
        self.assertGreater(metric(self.api, "jobcast_resumes_total"), 0)

    def test_slow_subscriber_catches_up_from_store_and_fast_ones_are_unaffected(self):
        broker = self.start_broker(db=self.db + ".slow",
                                   args=["--client-queue-bytes", "16384", "--replay-page", "100",
                                         "--keepalive", "120s", "--stall-timeout", "600s"])
        api = self.client(broker)
        self.start_worker(broker, ["llm.generate"], capacity=2)
        # More than the kernel's socket buffers hold, so the broker's own queue fills.
        params = {"prompt": "x" * 10, "max_tokens": 100000, "tokens_per_second": 0, "seed": 5}
        job = api.submit("llm.generate", params)

        # A raw WebSocket that subscribes, then does not read for a while.
        slow = WsClient(broker)
        self.addCleanup(slow.close)
        slow.ws.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        slow.send({"op": "subscribe", "job": job["id"], "after": 0})
        fast = follow_ws(broker, job["id"])  # a fast reader gets everything meanwhile
        self.assertTrue(is_terminal(fast[-1]))
        check_contiguous(self, fast)
        wait_until(lambda: (metric(api, "jobcast_slow_consumer_catchups_total") or 0) >= 1,
                   what="the slow subscriber to be switched to catch-up")
        # Now it reads: everything arrives, in order, once.
        got = []
        for frame_job, e in slow.frames():
            if frame_job:
                got.append(e)
                if is_terminal(e):
                    break
        self.assertEqual(got, api.events(job["id"]))
        self.assertGreater(metric(api, "jobcast_replayed_events_total"), 0)

    def test_lagging_live_subscriber_gets_its_backlog_coalesced_and_exact(self):
        # A client queue large enough to keep the whole job live (no catch-up).
        broker = self.start_broker(db=self.db + ".lag",
                                   args=["--stall-timeout", "600s", "--keepalive", "120s",
                                         "--client-queue-bytes", str(64 << 20)])
        api = self.client(broker)
        # More than the kernel's socket buffers hold (tcp_wmem max is 4 MiB).
        params = {"prompt": "lag", "max_tokens": 60000, "tokens_per_second": 20000, "seed": 8}
        job = api.submit("llm.generate", params)
        # Live before the first token, then it stops reading.
        lagging = WsClient(broker, timeout=60)
        self.addCleanup(lagging.close)
        lagging.ws.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        lagging.send({"op": "subscribe", "job": job["id"], "after": 0})
        wait_until(lambda: metric(api, "jobcast_subscriptions") == 1, what="the subscription")
        self.start_worker(broker, ["llm.generate"])
        api.wait_state(job["id"], "succeeded", timeout=120)
        self.assertGreater(metric(api, "jobcast_client_queued_bytes"), 0, "a backlog in the broker")
        got = []
        for frame_job, e in lagging.frames():
            if frame_job:
                got.append(e)
                if is_terminal(e):
                    break
        self.assertEqual(got, api.events(job["id"]))
        # The backlog went out as fewer, larger frames (one write each), live.
        self.assertGreater(metric(api, "jobcast_coalesced_frames_total"), 0)
        self.assertEqual(metric(api, "jobcast_slow_consumer_catchups_total"), 0)

    def test_client_that_stops_reading_is_closed_and_broker_memory_stays_bounded(self):
        broker = self.start_broker(db=self.db + ".stall",
                                   args=["--client-queue-bytes", "16384", "--stall-timeout", "1s",
                                         "--keepalive", "500ms"])
        api = self.client(broker)
        self.start_worker(broker, ["llm.generate"], capacity=4)
        stalled = []
        for i in range(2):
            c = WsClient(broker)
            self.addCleanup(c.close)
            c.ws.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            stalled.append(c)
        jobs = [api.submit("llm.generate", {"prompt": "p" * 200, "max_tokens": 100000,
                                            "tokens_per_second": 0, "seed": i})
                for i in range(2)]
        for c, job in zip(stalled, jobs):
            c.send({"op": "subscribe", "job": job["id"], "after": 0})
        # 200,000 events are committed while nobody reads them; what the broker
        # holds for the two clients stays within the queue bound (plus the one
        # frame that crossed it) the whole time.
        peak = 0
        while any(api.job(j["id"])["state"] != "succeeded" for j in jobs):
            peak = max(peak, metric(api, "jobcast_client_queued_bytes"))
        self.assertLessEqual(peak, 2 * (16384 + (1 << 20)))
        wait_until(lambda: (metric(api, "jobcast_slow_consumer_closes_total") or 0) >= 1,
                   timeout=30, what="a stalled client to be closed")
        wait_until(lambda: metric(api, "jobcast_connections", {"transport": "websocket"}) == 0,
                   what="the stalled connections to be gone")
        self.assertEqual(metric(api, "jobcast_client_queued_bytes"), 0)
        # A normal client is served normally afterwards.
        small = api.submit("llm.generate", {"prompt": "after", "max_tokens": 50,
                                            "tokens_per_second": 0, "seed": 1})
        self.assertEqual(follow_ws(broker, small["id"]), api.events(small["id"]))

    def test_keepalive_closes_a_silent_peer_in_time_and_keeps_live_ones(self):
        # README: a peer that stops answering is closed within 2 x
        # --ws-ping-interval plus a sixteenth of it (one sweep tick) of its
        # last message; one that answers pings is kept however long it is
        # idle; one that is being written to is not pinged at all.
        interval = 1.0  # --ws-ping-interval
        broker = self.start_broker(db=self.db + ".keepalive", args=["--ws-ping-interval", "1s"])
        api = self.client(broker)
        quiet = api.submit("nobody.runs.this")["id"]

        def websockets():
            return metric(api, "jobcast_connections", {"transport": "websocket"})

        def subscribe(client, job):
            client.send({"op": "subscribe", "job": job, "after": 0})
            for _, item in client.frames():
                if item.get("type") == "subscribed":
                    return

        # A live idle client: it reads (answering pings, as browsers do) and
        # counts the pings, on its own thread.
        live = WsClient(broker)
        self.addCleanup(live.close)
        subscribe(live, quiet)
        live_pings, live_error = [], []

        def read_live():
            try:
                while True:
                    opcode, frame = live.ws.recv_data_frame(True)
                    if opcode == websocket.ABNF.OPCODE_PING:
                        live_pings.append(time.monotonic())
                        live.ws.pong(frame.data)
                    elif opcode == websocket.ABNF.OPCODE_CLOSE:
                        live_error.append("closed by the broker")
                        return
                    elif opcode == websocket.ABNF.OPCODE_TEXT:
                        if json.loads(frame.data.decode()).get("type") == "pong":
                            return  # the end of the test's idle time, below
            except Exception as e:  # noqa: BLE001 - reported by the test
                live_error.append(repr(e))
        reader = threading.Thread(target=read_live, daemon=True)
        reader.start()

        # A dead peer: subscribed, then it never reads nor answers again.
        dead = WsClient(broker)
        self.addCleanup(dead.close)
        subscribe(dead, quiet)
        last_message = time.monotonic()
        wait_until(lambda: websockets() == 2, what="both connections counted")
        closes = metric(api, "jobcast_slow_consumer_closes_total") or 0
        wait_until(lambda: websockets() == 1, timeout=30, interval=0.01,
                   what="the silent peer to be closed")
        took = time.monotonic() - last_message
        # Pinged after three quarters of an interval at least, closed an
        # interval after that when no pong came; the upper bound allows a
        # second of scheduling on a loaded machine.
        self.assertGreaterEqual(took, 1.4 * interval)
        self.assertLessEqual(took, 2 * interval + interval / 16 + 1.0)
        self.assertEqual(metric(api, "jobcast_slow_consumer_closes_total"), closes + 1)

        # The live one, idle for three intervals by now, was pinged about once
        # per interval and is still served.
        wait_until(lambda: time.monotonic() - last_message >= 3 * interval,
                   what="three intervals")
        self.assertEqual(live_error, [])
        self.assertGreaterEqual(len(live_pings), 2)
        self.assertLessEqual(len(live_pings), 5)
        live.send({"op": "ping"})
        reader.join(10)
        self.assertFalse(reader.is_alive())
        self.assertEqual(live_error, [])
        self.assertEqual(websockets(), 1)

        # A client that is being written to is never pinged.
        self.start_worker(broker, ["llm.generate"])
        job = api.submit("llm.generate", {"prompt": "busy", "max_tokens": 60,
                                          "tokens_per_second": 20, "seed": 1})
        busy = WsClient(broker)
        self.addCleanup(busy.close)
        busy.send({"op": "subscribe", "job": job["id"], "after": 0})
        first_event, pings_while_busy = None, 0
        while True:
            opcode, frame = busy.ws.recv_data_frame(True)
            if opcode == websocket.ABNF.OPCODE_PING:
                busy.ws.pong(frame.data)
                if first_event is not None:  # counted from the first event on
                    pings_while_busy += 1
                continue
            self.assertEqual(opcode, websocket.ABNF.OPCODE_TEXT)
            item = json.loads(frame.data.decode())
            batch = item["events"] if item["type"] == "events" else (
                [item] if item["type"] == "event" else [])
            if batch and first_event is None:
                first_event = time.monotonic()
            if any(is_terminal(e) for e in batch):
                break
        # Three seconds of tokens: three intervals in which it was never idle.
        self.assertGreaterEqual(time.monotonic() - first_event, 2 * interval)
        self.assertEqual(pings_while_busy, 0)

    def test_jobs_feed_and_cancel_over_websocket(self):
        client = WsClient(self.broker)
        self.addCleanup(client.close)
        client.send({"op": "subscribe", "feed": "jobs"})
        self.assertEqual(client.recv()["type"], "subscribed")
        job = self.api.submit("nobody.runs.this")
        client.send({"op": "cancel", "job": job["id"]})
        states = []
        for frame_job, item in client.frames():
            if frame_job == job["id"]:
                states.append(item["data"]["state"])
                if states[-1] == "cancelled":
                    break
        self.assertEqual(states, ["queued", "cancelled"])

    def test_long_poll_returns_as_soon_as_there_is_an_event(self):
        job = self.api.submit("nobody.runs.this")
        started = time.monotonic()
        status, page, _ = self.api.request("GET", f"/v1/jobs/{job['id']}/events?after=1&wait=1")
        self.assertEqual(page["events"], [])
        self.assertGreaterEqual(time.monotonic() - started, 0.9)  # it waited

        def waiting_long_polls():
            return metric(self.api, "jobcast_connections", {"transport": "longpoll"})

        def delivered_by_long_poll():
            return metric(self.api, "jobcast_events_delivered_total",
                          {"transport": "longpoll"}) or 0

        # The cancel is sent once the broker counts the long-poll as waiting.
        delivered_before = delivered_by_long_poll()
        cancel_error = []

        def cancel_once_waiting():
            try:
                wait_until(lambda: waiting_long_polls() == 1, what="the long-poll to wait")
                self.api.request("POST", f"/v1/jobs/{job['id']}/cancel")
            except Exception as e:  # reported by the main thread
                cancel_error.append(e)
        canceller = threading.Thread(target=cancel_once_waiting)
        canceller.start()
        started = time.monotonic()
        status, page, _ = self.api.request("GET", f"/v1/jobs/{job['id']}/events?after=1&wait=30")
        elapsed = time.monotonic() - started
        canceller.join(10)
        self.assertEqual(cancel_error, [])
        self.assertEqual([e["data"]["state"] for e in page["events"]], ["cancelled"])
        self.assertTrue(page["done"])
        self.assertLess(elapsed, 10)
        # Answered: no longer counted as open; its event counted as delivered.
        self.assertEqual(waiting_long_polls(), 0)
        self.assertEqual(delivered_by_long_poll() - delivered_before, 1)
        status, _, _ = self.api.request("GET", f"/v1/jobs/{job['id']}/events?wait=abc")
        self.assertEqual(status, 400)


if __name__ == "__main__":
    unittest.main()
