"""Durable Streams created over HTTP in cluster mode: two brokers on one
Redis Cluster (3 primaries, each with a replica). A producer appends on
broker A with an idempotent producer (retries included); a long-poll reader
and an SSE reader on broker B get every append once and in order, woken by
each append (a reader left to its long-poll timeout would take 20 s per
append), and the stream's end. While a shard cannot replicate, an append on
it is not acknowledged and no reader on B sees it. A fork made on B reads
its source written on A; a deleted source stays for its forks (410 to
everyone else), and goes with the last of them; forks go at most 16 deep."""
import http.client
import json
import threading
import time
import unittest

from harness import ClusterTestCase


JSON = {"Content-Type": "application/json"}


def long_poll_reader(broker, path, out, stop):
    """Reads `path` on `broker` with live=long-poll from the start until the
    stream is closed (or `stop` is set); appends each message to `out`."""
    offset = "-1"
    while not stop.is_set():
        conn = http.client.HTTPConnection(broker.host, broker.port, timeout=60)
        try:
            conn.request("GET", f"{path}?offset={offset}&live=long-poll")
            response = conn.getresponse()
            body = response.read()
            headers = {k.lower(): v for k, v in response.getheaders()}
        finally:
            conn.close()
        if response.status == 200 and body:
            out.extend(json.loads(body))
        elif response.status not in (200, 204):
            raise AssertionError(f"long-poll answered {response.status}: {body!r}")
        offset = headers["stream-next-offset"]
        if headers.get("stream-closed") == "true":
            return


def sse_reader(broker, path, out):
    """Reads `path` on `broker` with live=sse from the start until a control
    event says the stream is closed; appends each message to `out`."""
    conn = http.client.HTTPConnection(broker.host, broker.port, timeout=60)
    try:
        conn.request("GET", f"{path}?offset=-1&live=sse")
        response = conn.getresponse()
        assert response.status == 200, response.status
        event, data = None, []
        while True:
            line = response.fp.readline()
            if not line:
                return
            line = line.decode().rstrip("\r\n")
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].lstrip(" "))
            elif line == "" and data:
                payload = json.loads("\n".join(data))
                data = []
                if event == "data":
                    out.extend(payload)
                elif event == "control" and payload.get("streamClosed"):
                    return
    finally:
        conn.close()


class ClusterStreamsTest(ClusterTestCase):
    def append(self, api, path, i, seq=None):
        headers = dict(JSON, **{"Producer-Id": "writer", "Producer-Epoch": "0",
                                "Producer-Seq": str(i if seq is None else seq)})
        return api.request("POST", path, raw=json.dumps({"i": i}), headers=headers)

    def test_appends_on_one_broker_reach_readers_on_another_once_and_in_order(self):
        a = self.start_cluster_broker()
        b = self.start_cluster_broker()
        api_a = self.client(a)
        path = "/v1/streams/across-brokers"
        status, _, _ = api_a.request("PUT", path, headers=JSON)
        self.assertEqual(status, 201)

        polled, streamed, stop = [], [], threading.Event()
        readers = [threading.Thread(target=long_poll_reader, args=(b, path, polled, stop)),
                   threading.Thread(target=sse_reader, args=(b, path, streamed))]
        for t in readers:
            t.start()
        time.sleep(0.5)  # both wait at the tail, subscribed on B

        n = 25
        started = time.monotonic()
        for i in range(n):
            status, _, headers = self.append(api_a, path, i)
            self.assertEqual(status, 200, i)
            self.assertEqual(int(headers["Stream-Next-Offset"]), i + 1)
            if i % 5 == 0:  # a retry of a committed append is stored once
                status, _, _ = self.append(api_a, path, i)
                self.assertEqual(status, 204, i)
            time.sleep(0.05)
        status, _, _ = api_a.request("POST", path, headers={"Stream-Closed": "true"})
        self.assertEqual(status, 204)
        for t in readers:
            t.join(60)
        stop.set()
        elapsed = time.monotonic() - started

        expected = [{"i": i} for i in range(n)]
        self.assertEqual(polled, expected)
        self.assertEqual(streamed, expected)
        # Woken by each append on A, not by the 20 s long-poll timeout.
        self.assertLess(elapsed, 15, "readers on B were not woken by appends on A")
        status, body, headers = self.client(b).request("GET", f"{path}?offset=-1")
        self.assertEqual((status, body, headers.get("Stream-Closed")), (200, expected, "true"))

    def test_an_append_the_replicas_do_not_have_is_neither_acknowledged_nor_shown(self):
        a = self.start_cluster_broker()
        b = self.start_cluster_broker()
        api_a, api_b = self.client(a), self.client(b)
        path = "/v1/streams/unreplicated"
        status, _, _ = api_a.request("PUT", path, headers=JSON)
        self.assertEqual(status, 201)
        status, _, _ = self.append(api_a, path, 0)
        self.assertEqual(status, 200)

        replicas = [node for node in self.cluster.nodes if node.alive() and
                    node.info("replication").get("role") == "slave"]
        for node in replicas:
            node.stop()  # SIGSTOP: connected, but acknowledging nothing
        try:
            status, _, _ = self.append(api_a, path, 1)
            self.assertNotIn(status, (200, 204), "acknowledged without a replica")
            status, body, _ = api_b.request("GET", f"{path}?offset=-1")
            self.assertEqual((status, body), (200, [{"i": 0}]))
        finally:
            for node in replicas:
                node.cont()
            self.cluster.wait_healthy()
        # Its retry settles it once the replicas are back, and B shows it.
        status, _, _ = self.append(api_a, path, 1)
        self.assertIn(status, (200, 204))
        status, body, _ = api_b.request("GET", f"{path}?offset=-1")
        self.assertEqual((status, body), (200, [{"i": 0}, {"i": 1}]))


    def test_a_fork_made_on_one_broker_reads_its_source_on_another(self):
        a = self.start_cluster_broker()
        b = self.start_cluster_broker()
        api_a, api_b = self.client(a), self.client(b)
        src, fork = "/v1/streams/source", "/v1/streams/branch"
        status, _, headers = api_a.request("PUT", src, raw=json.dumps([{"i": 0}, {"i": 1}]),
                                           headers=JSON)
        self.assertEqual(status, 201)
        at = headers["Stream-Next-Offset"]
        self.assertIn(api_a.request("POST", src, raw=json.dumps({"i": 2}), headers=JSON)[0],
                      (200, 204))

        # Forked on B at the offset A handed out: the source's first two, then its own.
        status, _, _ = api_b.request("PUT", fork, headers={"Stream-Forked-From": src,
                                                           "Stream-Fork-Offset": at})
        self.assertEqual(status, 201)
        self.assertIn(api_b.request("POST", fork, raw=json.dumps({"i": 7}), headers=JSON)[0],
                      (200, 204))
        status, body, _ = api_a.request("GET", f"{fork}?offset=-1")
        self.assertEqual((status, body), (200, [{"i": 0}, {"i": 1}, {"i": 7}]))

        # Deleted on A while the fork reads it: gone to everyone, the fork still reads.
        self.assertEqual(api_a.request("DELETE", src)[0], 204)
        self.assertEqual(api_b.request("GET", f"{src}?offset=-1")[0], 410)
        self.assertEqual(api_b.request("DELETE", src)[0], 410)
        self.assertEqual(api_b.request("PUT", src, headers=JSON)[0], 409)
        status, body, _ = api_b.request("GET", f"{fork}?offset=-1")
        self.assertEqual((status, body), (200, [{"i": 0}, {"i": 1}, {"i": 7}]))
        # The fork goes, and the source with it: the name is free again.
        self.assertEqual(api_b.request("DELETE", fork)[0], 204)
        self.assertEqual(api_a.request("GET", f"{src}?offset=-1")[0], 404)
        self.assertEqual(api_a.request("PUT", src, headers=JSON)[0], 201)

    def test_forks_of_forks_go_at_most_16_deep(self):
        api = self.client(self.start_cluster_broker())
        self.assertEqual(api.request("PUT", "/v1/streams/d0", raw=json.dumps([0]),
                                     headers=JSON)[0], 201)
        for depth in range(1, 17):
            status, _, _ = api.request("PUT", f"/v1/streams/d{depth}",
                                       headers={"Stream-Forked-From": f"/v1/streams/d{depth - 1}"})
            self.assertEqual(status, 201, depth)
        status, body, _ = api.request("PUT", "/v1/streams/d17",
                                      headers={"Stream-Forked-From": "/v1/streams/d16"})
        self.assertEqual(status, 409, body)
        self.assertEqual(api.request("GET", "/v1/streams/d17?offset=-1")[0], 404)
        status, body, _ = api.request("GET", "/v1/streams/d16?offset=-1")
        self.assertEqual((status, body), (200, [0]))

if __name__ == "__main__":
    unittest.main()
