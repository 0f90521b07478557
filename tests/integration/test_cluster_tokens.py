"""Per-job token revocations in cluster mode, from the outside: brokers
sharing one Redis Cluster (3 primaries, each with a replica), started from
Debian's redis-tools by the test. A token minted on broker A reads its job on
broker B; revoking it on A (by token id, job or owner) closes B's WebSocket
(4003) and SSE readers that rely on it within a second, and the token is
refused from then on by every broker: A, B, a broker started after the
revocation, and brokers started after all of them were stopped."""
import time
import unittest

from harness import ClusterTestCase
from test_security import SECRET, sse_open, token_for, ws_connect, ws_request
from test_job_tokens import assert_ws_and_sse_closed_within_a_second
from test_security_tokens import read_sse_event


CEILING = 3600  # --max-token-lifetime of the brokers under test


class ClusterTokenTest(ClusterTestCase):
    def start_cluster_broker(self):
        return super().start_cluster_broker("--jwt-secret", SECRET, "--jwt-leeway", "0",
                                            "--max-token-lifetime", f"{CEILING}s")

    def mint(self, broker, job):
        status, answer, _ = self.client(broker, token_for("alice")).request(
            "POST", f"/v1/jobs/{job}/tokens", {"ttl": 600})
        self.assertEqual(status, 201, answer)
        return answer

    def open_readers(self, broker, job, token):
        """A subscribed WebSocket and an SSE response past its first event."""
        ws = ws_connect(broker, query_token=token)
        self.addCleanup(ws.close)
        self.assertEqual(ws_request(ws, {"op": "subscribe", "job": job})["type"], "subscribed")
        conn, sse = sse_open(broker, f"/v1/jobs/{job}/events", token)
        self.addCleanup(conn.close)
        self.assertEqual(sse.status, 200)
        self.assertIsNotNone(read_sse_event(sse))  # the job's queued state event
        return ws, sse

    def assert_closed_within_a_second(self, ws, sse, revoked_at):
        assert_ws_and_sse_closed_within_a_second(self, ws, sse, revoked_at)

    def assert_refused(self, broker, job, token):
        status, body, _ = self.client(broker, token).request("GET", f"/v1/jobs/{job}")
        self.assertEqual((status, body["error"]["message"]), (401, "token revoked"))
        conn, sse = sse_open(broker, f"/v1/jobs/{job}/events", token)
        try:
            self.assertEqual(sse.status, 401)
        finally:
            conn.close()

    def test_a_revocation_on_one_broker_holds_on_every_broker(self):
        a = self.start_cluster_broker()
        b = self.start_cluster_broker()
        alice = self.client(a, token_for("alice"))
        revoked = []
        for kind in ("token_id", "job", "owner"):
            with self.subTest(kind=kind):
                # Queued for good (no worker runs its type): only the
                # revocation ends the streams.
                job = alice.submit("nobody.runs.this")["id"]
                minted = self.mint(a, job)
                ws, sse = self.open_readers(b, job, minted["token"])
                key = {"token_id": minted["token_id"], "job": job, "owner": "alice"}[kind]
                revoked_at = time.monotonic()
                status, answer, _ = alice.request("POST", "/v1/tokens/revoke", {kind: key})
                self.assertEqual(status, 200, answer)
                self.assertEqual(answer["closed_streams"], 0)  # they are on B
                self.assert_closed_within_a_second(ws, sse, revoked_at)
                for broker in (a, b):
                    self.assert_refused(broker, job, minted["token"])
                revoked.append((job, minted["token"]))
        b.wait_for_line(r'audit event=token_revoked_close transport=sse owner="alice"')

        # A broker started afterwards loads the revocations in force; a
        # session begun after them is not revoked.
        c = self.start_cluster_broker()
        for job, token in revoked:
            self.assert_refused(c, job, token)
        job = revoked[-1][0]
        kept = self.mint(c, job)["token"]
        self.assertEqual(self.client(b, kept).request("GET", f"/v1/jobs/{job}")[0], 200)

        # Every broker stopped: the revocations are the cluster's, not theirs.
        for broker in (a, b, c):
            broker.kill()
        d = self.start_cluster_broker()
        for job, token in revoked:
            self.assert_refused(d, job, token)
        self.assertEqual(self.client(d, kept).request("GET", f"/v1/jobs/{job}")[0], 200)


if __name__ == "__main__":
    unittest.main()
