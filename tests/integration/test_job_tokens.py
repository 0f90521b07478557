"""Per-job browser tokens against the real broker: POST /v1/jobs/{id}/tokens
mints a token that reads that one job on every transport (REST, long-poll,
snapshot, SSE, the UI message stream, the WebSocket) and is refused
everywhere else exactly like an unknown job; a refresh keeps a WebSocket
open across the old token's expiry with no gap and never outlives the
session's ceiling (--max-token-lifetime); POST /v1/tokens/revoke closes the
open streams relying on a revoked token within a second and holds after a
restart. Every refusal is counted in jobcast_auth_failures_total{reason} and
written to the audit log."""

import json
import os
import threading
import time
import unittest

from harness import JobcastTest, check_contiguous, metric, wait_until
from test_security import SECRET, sse_open, token_for, ws_connect, ws_request
from test_security_tokens import read_sse_event
from test_streaming import recv_frame as ws_recv

UNKNOWN = "01JUNKNOWNJOB0000000000000"
CEILING = 3600  # --max-token-lifetime of the broker under test


def slow_job(client, tokens=60, rate=10):
    """An llm.generate job that runs tokens / rate seconds."""
    return client.submit("llm.generate", {"prompt": "slow", "max_tokens": tokens,
                                           "tokens_per_second": rate})["id"]


def assert_ws_and_sse_closed_within_a_second(test, ws, sse, revoked_at):
    """A revoked token's open streams: the WebSocket closes with 4003 and the
    SSE response ends, each within a second of the revocation."""
    while True:
        frame = ws_recv(ws)
        if frame["type"] == "close":
            break
    test.assertEqual(frame["code"], 4003)
    test.assertLess(time.monotonic() - revoked_at, 1.0)
    while read_sse_event(sse) is not None:
        pass
    test.assertLess(time.monotonic() - revoked_at, 1.0)

class JobTokenTest(JobcastTest):
    def setUp(self):
        super().setUp()
        self.broker = self.start_broker(args=(
            "--jwt-secret", SECRET, "--jwt-leeway", "0",
            "--max-token-lifetime", f"{CEILING}s", "--token-admin", "root"))
        self.start_worker(self.broker, ["llm.generate"])
        self.alice = self.client(self.broker, token_for("alice"))
        self.bob = self.client(self.broker, token_for("bob"))

    def mint(self, job, client=None, **body):
        status, answer, _ = (client or self.alice).request("POST", f"/v1/jobs/{job}/tokens", body)
        self.assertEqual(status, 201, answer)
        return answer

    def revoke(self, client=None, **body):
        status, answer, _ = (client or self.alice).request("POST", "/v1/tokens/revoke", body)
        self.assertEqual(status, 200, answer)
        return answer

    def failures(self, reason):
        return metric(self.client(self.broker), "jobcast_auth_failures_total", {"reason": reason})

    def finished_job(self, client=None):
        client = client or self.alice
        job = client.submit("llm.generate", {"prompt": "done", "max_tokens": 5})["id"]
        client.wait_state(job, "succeeded")
        return job


class MintTest(JobTokenTest):
    def test_the_owner_mints_a_token_with_bounded_ttl(self):
        job = self.finished_job()
        before = int(time.time())
        minted = self.mint(job, ttl=60)
        self.assertEqual(minted["job"], job)
        self.assertFalse(minted["cancel"])
        self.assertTrue(before + 60 <= minted["expires_at"] <= int(time.time()) + 60)
        self.assertGreaterEqual(minted["session_expires_at"], before + CEILING)
        # Without a ttl: 15 minutes.
        default = self.mint(job)
        self.assertAlmostEqual(default["expires_at"] - time.time(), 900, delta=5)
        self.assertTrue(self.mint(job, ttl=CEILING, cancel=True)["cancel"])
        self.broker.wait_for_line(r'audit event=token_issued owner="alice" ip=\S+ job="%s" '
                                  r"token_id=\w+ session=\w+ cancel=false expires_at=\d+ "
                                  r"refresh=false" % job)

    def test_bad_bodies_are_refused_with_400(self):
        job = self.finished_job()
        for body in ({"ttl": 0}, {"ttl": -1}, {"ttl": 1.5}, {"ttl": "60"}, {"ttl": 1e30},
                     {"ttl": 2**64}, {"ttl": 2**63}, {"ttl": None}, {"ttl": CEILING + 1},
                     {"cancel": "yes"}, {"scope": "all"}, [], "60"):
            with self.subTest(body=body):
                status, answer, _ = self.alice.request("POST", f"/v1/jobs/{job}/tokens", body)
                self.assertEqual(status, 400, answer)
                self.assertEqual(answer["error"]["code"], "invalid_request")
        status, answer, _ = self.alice.request("POST", f"/v1/jobs/{job}/tokens",
                                               raw=b"{not json")
        self.assertEqual(status, 400, answer)
        status, answer, _ = self.alice.request("POST", f"/v1/jobs/{job}/tokens",
                                               {"ttl": CEILING + 1})
        self.assertIn("--max-token-lifetime", answer["error"]["message"])

    def test_only_the_owner_mints(self):
        job = self.finished_job()
        for client, target in ((self.bob, job), (self.alice, UNKNOWN)):
            status, answer, _ = client.request("POST", f"/v1/jobs/{target}/tokens", {"ttl": 60})
            self.assertEqual((status, answer["error"]["code"]), (404, "not_found"))


class ScopeTest(JobTokenTest):
    def setUp(self):
        super().setUp()
        self.job = self.finished_job()
        self.other = self.finished_job()  # Alice's too
        self.bobs = self.finished_job(self.bob)
        self.token = self.mint(self.job, ttl=600)["token"]
        self.scoped = self.client(self.broker, self.token)

    def test_reads_its_job_on_every_transport(self):
        owner_view = self.alice.job(self.job)
        status, job, _ = self.scoped.request("GET", f"/v1/jobs/{self.job}")
        self.assertEqual((status, job), (200, owner_view))
        events = self.alice.events(self.job)
        self.assertEqual(self.scoped.events(self.job), events)
        status, page, _ = self.scoped.request("GET", f"/v1/jobs/{self.job}/events?wait=1")
        self.assertEqual((status, page["events"]), (200, events))
        status, snapshot, _ = self.scoped.request("GET", f"/v1/jobs/{self.job}/snapshot")
        self.assertEqual(status, 200)
        self.assertEqual(snapshot["seq"], events[-1]["seq"])
        for query in ("", "?format=ui-message", f"?access_token={self.token}"):
            with self.subTest(sse=query):
                conn, resp = sse_open(self.broker, f"/v1/jobs/{self.job}/events{query}",
                                      None if "access_token" in query else self.token)
                try:
                    self.assertEqual(resp.status, 200)
                    self.assertIn(b"data:", resp.read())
                finally:
                    conn.close()
        ws = ws_connect(self.broker, query_token=self.token)
        self.addCleanup(ws.close)
        frame = ws_request(ws, {"op": "subscribe", "job": self.job})
        self.assertEqual(frame["type"], "subscribed")

    def test_refused_elsewhere_exactly_like_an_unknown_job(self):
        unknown = self.alice.request("GET", f"/v1/jobs/{UNKNOWN}")[:2]
        self.assertEqual(unknown[0], 404)
        before = self.failures("scope")
        refused = 0
        for method, path, body in (
                ("GET", f"/v1/jobs/{self.other}", None),
                ("GET", f"/v1/jobs/{self.other}/events", None),
                ("GET", f"/v1/jobs/{self.other}/events?wait=1", None),
                ("GET", f"/v1/jobs/{self.other}/snapshot", None),
                ("GET", f"/v1/jobs/{self.bobs}", None),
                ("GET", f"/v1/jobs/{self.bobs}/events", None),
                ("GET", "/v1/jobs", None),
                ("POST", "/v1/jobs", {"type": "llm.generate", "params": {"prompt": "x"}}),
                ("GET", "/v1/types", None),
                ("POST", f"/v1/jobs/{self.job}/cancel", None),  # minted without cancel
                ("POST", f"/v1/jobs/{self.other}/tokens", {}),
                ("POST", "/v1/tokens/revoke", {"job": self.job}),
                ("GET", f"/v1/streams/jobs/{self.other}", None)):
            with self.subTest(method=method, path=path):
                self.assertEqual(self.scoped.request(method, path, body)[:2], unknown)
                refused += 1
        for path in (f"/v1/jobs/{self.other}/events", f"/v1/jobs/{self.bobs}/events"):
            conn, resp = sse_open(self.broker, path, self.token)
            try:
                self.assertEqual((resp.status, json.loads(resp.read())), unknown)
                refused += 1
            finally:
                conn.close()
        ws = ws_connect(self.broker, token=self.token)
        self.addCleanup(ws.close)
        no_such = {"type": "error", "code": "not_found", "message": "no such job"}
        for op in ("subscribe", "cancel"):
            for job in (self.other, self.bobs, UNKNOWN):
                with self.subTest(op=op, job=job):
                    self.assertEqual(ws_request(ws, {"op": op, "job": job}),
                                     {**no_such, "job": job})
                    refused += 1
        self.assertEqual(ws_request(ws, {"op": "subscribe", "feed": "jobs"}), no_such)
        refused += 2  # the cancel of its own job (no cancel claim) and the feed
        self.assertEqual(ws_request(ws, {"op": "cancel", "job": self.job}),
                         {**no_such, "job": self.job})
        # An owner's token cannot take over the scoped connection, nor can
        # another job's token.
        other_token = self.mint(self.other, ttl=60)["token"]
        for token in (token_for("alice"), other_token):
            self.assertEqual(ws_request(ws, {"op": "auth", "token": token})["code"], "forbidden")
        self.assertEqual(self.failures("scope") - before, refused)
        self.broker.wait_for_line(r"audit event=auth_failure transport=http ip=\S+ reason=scope "
                                  r'message="job token used beyond its job: GET /v1/jobs"')

    def test_a_cancel_token_cancels_its_job_only(self):
        running = slow_job(self.alice, tokens=200)
        token = self.mint(running, ttl=60, cancel=True)["token"]
        scoped = self.client(self.broker, token)
        other = slow_job(self.alice, tokens=200)
        self.assertEqual(scoped.request("POST", f"/v1/jobs/{other}/cancel")[0], 404)
        self.assertEqual(scoped.request("POST", f"/v1/jobs/{running}/cancel")[0], 202)
        self.alice.wait_state(running, "cancelled")
        self.alice.request("POST", f"/v1/jobs/{other}/cancel")


class RefreshTest(JobTokenTest):
    def test_a_websocket_refreshed_in_band_stays_open_across_expiry_with_no_gap(self):
        job = slow_job(self.alice, tokens=60, rate=10)  # six seconds
        first = self.mint(job, ttl=2)
        ws = ws_connect(self.broker, query_token=first["token"])
        self.addCleanup(ws.close)
        self.assertEqual(ws_request(ws, {"op": "subscribe", "job": job})["type"], "subscribed")
        scoped = self.client(self.broker, first["token"])
        # A refresh may not widen the token.
        status, answer, _ = scoped.request("POST", f"/v1/jobs/{job}/tokens", {"cancel": True})
        self.assertEqual((status, answer["error"]["code"]), (403, "forbidden"))
        refreshed = self.mint(job, client=scoped, ttl=600)
        self.assertEqual(refreshed["session_expires_at"], first["session_expires_at"])
        self.assertNotEqual(refreshed["token_id"], first["token_id"])
        ws.send(json.dumps({"op": "auth", "token": refreshed["token"]}))
        events, authenticated = [], None
        while not events or events[-1]["kind"] != "state" or \
                events[-1]["data"]["state"] not in ("succeeded", "failed", "cancelled"):
            frame = ws_recv(ws)
            self.assertNotEqual(frame["type"], "close", "closed before the job ended")
            if frame["type"] == "authenticated":
                authenticated = frame
            elif frame["type"] == "event":
                events.append(frame)
            elif frame["type"] == "events":
                events.extend(frame["events"])
        self.assertEqual(authenticated["expires_at"], refreshed["expires_at"])
        self.assertGreater(time.time(), first["expires_at"] + 1, "the job outlived the first token")
        check_contiguous(self, events)
        self.assertEqual(events[0]["seq"], 1)
        self.broker.wait_for_line(r"audit event=token_issued .* refresh=true")

    def test_an_sse_reader_resumes_with_a_refreshed_token_and_last_event_id(self):
        job = slow_job(self.alice, tokens=50, rate=10)  # five seconds
        first = self.mint(job, ttl=2)
        conn, resp = sse_open(self.broker, f"/v1/jobs/{job}/events", first["token"])
        self.addCleanup(conn.close)
        self.assertEqual(resp.status, 200)
        refreshed = self.mint(job, client=self.client(self.broker, first["token"]), ttl=600)
        events = []
        while (event := read_sse_event(resp)) is not None:  # ends at the first token's expiry
            events.append(event)
        self.assertGreater(time.time(), first["expires_at"] - 0.5)
        self.assertTrue(events, "no event before the token expired")
        conn, resp = sse_open(self.broker, f"/v1/jobs/{job}/events", refreshed["token"],
                              {"Last-Event-ID": str(events[-1]["seq"])})
        self.addCleanup(conn.close)
        self.assertEqual(resp.status, 200)
        while (event := read_sse_event(resp)) is not None:
            events.append(event)
        check_contiguous(self, events)
        self.assertEqual(events[-1]["data"]["state"], "succeeded")

    def test_no_refresh_goes_past_the_session_ceiling(self):
        broker = self.start_broker(db=os.path.join(self.tmp.name, "short.db"), args=(
            "--jwt-secret", SECRET, "--jwt-leeway", "0", "--max-token-lifetime", "3s"))
        alice = self.client(broker, token_for("alice", ttl=3))
        job = alice.submit("nobody.runs.this")["id"]
        first = self.mint(job, client=alice, ttl=3)
        self.assertEqual(first["expires_at"], first["session_expires_at"])
        time.sleep(1.2)
        refreshed = self.mint(job, client=self.client(broker, first["token"]), ttl=3)
        self.assertEqual(refreshed["expires_at"], first["session_expires_at"])
        wait_until(lambda: time.time() > first["session_expires_at"] + 0.2, what="the ceiling")
        status, answer, _ = self.client(broker, refreshed["token"]).request(
            "POST", f"/v1/jobs/{job}/tokens", {"ttl": 3})
        self.assertEqual((status, answer["error"]["code"]), (401, "unauthorized"))


class RevokeTest(JobTokenTest):
    def open_streams(self, job, token):
        """A subscribed WebSocket, an SSE response and a waiting long-poll on `job`."""
        ws = ws_connect(self.broker, query_token=token)
        self.addCleanup(ws.close)
        self.assertEqual(ws_request(ws, {"op": "subscribe", "job": job})["type"], "subscribed")
        conn, sse = sse_open(self.broker, f"/v1/jobs/{job}/events", token)
        self.addCleanup(conn.close)
        self.assertEqual(sse.status, 200)
        poll = {}
        last = self.alice.job(job)["last_seq"]

        def waiting_long_polls():
            return metric(self.client(self.broker), "jobcast_connections",
                          {"transport": "longpoll"})
        waiting_before = waiting_long_polls()

        def long_poll():
            client = self.client(self.broker, token)
            poll["answer"] = client.request("GET", f"/v1/jobs/{job}/events?after={last}&wait=30")
            poll["at"] = time.monotonic()
        thread = threading.Thread(target=long_poll, daemon=True)
        thread.start()
        wait_until(lambda: waiting_long_polls() == waiting_before + 1,
                   what="the long-poll to wait")
        return ws, sse, thread, poll

    def assert_closed_within_a_second(self, ws, sse, thread, poll, revoked_at):
        assert_ws_and_sse_closed_within_a_second(self, ws, sse, revoked_at)
        thread.join(5)
        self.assertEqual(poll["answer"][0], 401)
        self.assertEqual(poll["answer"][1]["error"]["message"], "token revoked")
        self.assertLess(poll["at"] - revoked_at, 1.0)

    def test_revocation_closes_every_open_stream_within_a_second(self):
        for kind in ("token_id", "job", "owner"):
            with self.subTest(kind=kind):
                # Queued for good (no worker runs its type): the streams
                # wait, and only the revocation ends them.
                job = self.alice.submit("nobody.runs.this")["id"]
                minted = self.mint(job, ttl=600)
                streams = self.open_streams(job, minted["token"])
                key = {"token_id": minted["token_id"], "job": job, "owner": "alice"}[kind]
                before = self.failures("revoked")
                revoked_at = time.monotonic()
                answer = self.revoke(**{kind: key})
                self.assertEqual(answer["closed_streams"], 3)
                self.assert_closed_within_a_second(*streams, revoked_at)
                status, body, _ = self.client(self.broker, minted["token"]).request(
                    "GET", f"/v1/jobs/{job}")
                self.assertEqual((status, body["error"]["message"]), (401, "token revoked"))
                self.assertEqual(self.failures("revoked") - before, 1)
                # A session the owner starts afterwards is not revoked.
                fresh = self.mint(job, ttl=60)["token"]
                self.assertEqual(self.client(self.broker, fresh).request(
                    "GET", f"/v1/jobs/{job}")[0], 200)
                self.alice.request("POST", f"/v1/jobs/{job}/cancel")
        self.broker.wait_for_line(r'audit event=token_revoked by="alice" ip=\S+ kind=owner '
                                  r'owner="alice" key="alice" closed=3')
        self.broker.wait_for_line(r'audit event=token_revoked_close transport=sse owner="alice"')

    def test_revoking_a_token_revokes_its_refreshes(self):
        job = self.finished_job()
        first = self.mint(job, ttl=600)
        refreshed = self.mint(job, client=self.client(self.broker, first["token"]), ttl=600)
        self.revoke(token_id=refreshed["token_id"])
        for token in (first["token"], refreshed["token"]):
            self.assertEqual(self.client(self.broker, token).request(
                "GET", f"/v1/jobs/{job}")[0], 401)

    def test_who_may_revoke(self):
        job = self.finished_job()
        minted = self.mint(job, ttl=600)
        scoped = self.client(self.broker, minted["token"])
        # Bob: Alice's job is unknown to him, her owner is not his, and a
        # token id he names reaches his own tokens only.
        status, answer, _ = self.bob.request("POST", "/v1/tokens/revoke", {"job": job})
        self.assertEqual((status, answer["error"]["code"]), (404, "not_found"))
        status, answer, _ = self.bob.request("POST", "/v1/tokens/revoke", {"owner": "alice"})
        self.assertEqual((status, answer["error"]["code"]), (403, "forbidden"))
        self.revoke(client=self.bob, token_id=minted["token_id"])
        self.assertEqual(scoped.request("GET", f"/v1/jobs/{job}")[0], 200)
        for body in ({}, {"job": job, "owner": "alice"}, {"token_id": ""}, {"token_id": 7},
                     {"everything": True}):
            with self.subTest(body=body):
                self.assertEqual(self.alice.request("POST", "/v1/tokens/revoke", body)[0], 400)
        # A token admin revokes anyone's.
        admin = self.client(self.broker, token_for("root"))
        self.revoke(client=admin, job=job)
        self.assertEqual(scoped.request("GET", f"/v1/jobs/{job}")[0], 401)


class RestartTest(JobTokenTest):
    def test_tokens_and_revocations_survive_a_restart(self):
        job = self.finished_job()
        kept, revoked = self.mint(job, ttl=600), self.mint(job, ttl=600)
        self.revoke(token_id=revoked["token_id"])
        self.broker.kill()
        broker = self.start_broker(args=("--jwt-secret", SECRET, "--jwt-leeway", "0",
                                         "--max-token-lifetime", f"{CEILING}s"))
        # The key is the store's: a token minted before the restart still reads.
        status, _, _ = self.client(broker, kept["token"]).request("GET", f"/v1/jobs/{job}")
        self.assertEqual(status, 200)
        status, body, _ = self.client(broker, revoked["token"]).request("GET", f"/v1/jobs/{job}")
        self.assertEqual((status, body["error"]["message"]), (401, "token revoked"))


if __name__ == "__main__":
    unittest.main()
