"""Cluster mode from the outside: brokers sharing one Redis Cluster (3
primaries, each with a replica: the strict layout of CLUSTER.md), started
from Debian's redis-tools by the test. A job streamed by a worker on broker A
is read on broker B exactly as on A: the same job, the same log, and a live
SSE subscriber on B gets every event once, in order, byte-equal to the
stored log; a subscriber that joins on B mid-stream and one that resumes on
B with Last-Event-ID do too. Dispatch and leases span the brokers: a job
submitted on B runs on a worker connected only to A (B's ready hints tell A
at once) and B then no longer counts it in its queue depth, a cancel on B
reaches that worker (at once, by a cancel hint, even when no lease renewal
comes in time), a worker whose broker is killed carries
on with the same attempt on another broker, and a job whose broker and worker
both die is requeued when its lease expires and runs elsewhere."""
import http.client
import json
import os
import threading
import time
import unittest

from harness import ClusterTestCase, metric, sim_text, wait_until


def sse_events(broker, job_id, last_event_id=None, timeout=60):
    """Reads the job's SSE stream on `broker` until its terminal event (or the
    broker ends the stream); returns [(id, data)]."""
    conn = http.client.HTTPConnection(broker.host, broker.port, timeout=timeout)
    headers = {"Accept": "text/event-stream"}
    if last_event_id is not None:
        headers["Last-Event-ID"] = str(last_event_id)
    conn.request("GET", f"/v1/jobs/{job_id}/events", headers=headers)
    response = conn.getresponse()
    out = []
    if response.status == 204:
        conn.close()
        return out
    assert response.status == 200, response.status
    event_id, data = None, []
    try:
        while True:
            line = response.fp.readline()
            if not line:
                break
            line = line.decode().rstrip("\r\n")
            if line.startswith("id:"):
                event_id = line[3:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].lstrip(" "))
            elif line == "" and data:
                event = json.loads("\n".join(data))
                out.append((int(event_id), event))
                data = []
                if event.get("kind") == "state" and event["data"].get("state") in (
                        "succeeded", "failed", "cancelled"):
                    break
    finally:
        conn.close()
    return out


class ClusterTest(ClusterTestCase):
    def test_a_job_streamed_on_one_broker_reads_the_same_on_another(self):
        a = self.start_cluster_broker()
        b = self.start_cluster_broker()
        self.start_worker(a, ["llm.generate"])
        api_a, api_b = self.client(a), self.client(b)

        n, seed, prompt = 300, 7, "across brokers"
        job = api_a.submit("llm.generate", {"prompt": prompt, "max_tokens": n,
                                            "tokens_per_second": 300, "seed": seed})
        # Subscribers on B: one from the start (while the job runs on A), one
        # that joins once some tokens are stored, one resuming mid-log.
        results = {}

        def read(name, **kw):
            results[name] = sse_events(b, job["id"], **kw)

        from_start = threading.Thread(target=read, args=("start",))
        from_start.start()
        wait_until(lambda: len(api_a.events(job["id"])) > 50, timeout=30,
                   what="50 events stored")
        late = threading.Thread(target=read, args=("late",))
        late.start()
        resumed = threading.Thread(target=read, args=("resumed",),
                                   kwargs={"last_event_id": 20})
        resumed.start()
        for t in (from_start, late, resumed):
            t.join(90)
            self.assertFalse(t.is_alive(), "an SSE reader on B did not finish")

        done = api_b.wait_state(job["id"], ["succeeded"], timeout=60)
        self.assertEqual(done["result"]["text"], sim_text(prompt, seed, n))
        stored_a = api_a.events(job["id"])
        stored_b = api_b.events(job["id"])
        self.assertEqual(stored_a, stored_b)
        self.assertEqual([e["seq"] for e in stored_a], list(range(1, len(stored_a) + 1)))

        # Every subscriber on B saw exactly the stored log, from its start point.
        for name, after in (("start", 0), ("late", 0), ("resumed", 20)):
            got = results[name]
            self.assertEqual([seq for seq, _ in got], [e["seq"] for e in stored_a[after:]], name)
            self.assertEqual([event for _, event in got], stored_a[after:], name)

        # The job is the same job everywhere, and B's listing holds it.
        self.assertEqual(api_a.job(job["id"]), api_b.job(job["id"]))
        status, page, _ = api_b.request("GET", "/v1/jobs?limit=10")
        self.assertEqual(status, 200)
        self.assertIn(job["id"], [j["id"] for j in page["jobs"]])
        # After the terminal event, a reconnect on B gets 204, as on one node.
        self.assertEqual(sse_events(b, job["id"], last_event_id=stored_a[-1]["seq"]), [])

    def test_a_job_submitted_on_one_broker_runs_on_a_worker_of_another(self):
        a = self.start_cluster_broker()
        b = self.start_cluster_broker()
        self.start_worker(a, ["llm.generate"])
        api_b = self.client(b)
        job = api_b.submit("llm.generate", {"prompt": "from b", "max_tokens": 20, "seed": 3,
                                            "tokens_per_second": 400})
        done = api_b.wait_state(job["id"], ["succeeded"], timeout=30)
        self.assertEqual(done["result"]["text"], sim_text("from b", 3, 20))
        self.assertEqual(done["attempt"], 1)

    def test_a_cancel_on_one_broker_reaches_the_worker_on_another(self):
        a = self.start_cluster_broker()
        b = self.start_cluster_broker()
        self.start_worker(a, ["llm.generate"])
        api_a, api_b = self.client(a), self.client(b)
        job = api_a.submit("llm.generate", {"prompt": "long", "max_tokens": 100000,
                                            "tokens_per_second": 50, "seed": 1})
        api_a.wait_state(job["id"], ["running"], timeout=30)
        asked = time.monotonic()
        status, _, _ = api_b.request("POST", f"/v1/jobs/{job['id']}/cancel")
        self.assertIn(status, (200, 202))
        done = api_b.wait_state(job["id"], ["cancelled"], timeout=30)
        # The worker stopped it (its error event), well before the broker's
        # grace would have ended it by force.
        self.assertLess(time.monotonic() - asked, 8)
        kinds = [e["kind"] for e in api_b.events(job["id"])]
        self.assertIn("error", kinds)
        self.assertEqual(done["state"], "cancelled")

    def test_jobs_queued_on_one_broker_are_hinted_to_the_free_workers_of_another(self):
        a = self.start_cluster_broker()
        b = self.start_cluster_broker()
        self.start_worker(a, ["llm.generate"], capacity=2)
        api_a, api_b = self.client(a), self.client(b)
        jobs = [api_b.submit("llm.generate", {"prompt": f"hinted {i}", "max_tokens": 5,
                                              "seed": i, "tokens_per_second": 500})
                for i in range(12)]
        # Every job runs once, to the end, on A's worker.
        for i, job in enumerate(jobs):
            done = api_b.wait_state(job["id"], ["succeeded", "failed"], timeout=60)
            self.assertEqual(done["state"], "succeeded")
            self.assertEqual(done["attempt"], 1)
            self.assertEqual(done["result"]["text"], sim_text(f"hinted {i}", i, 5))
        # B hinted the queued jobs' partitions; A heard it.
        self.assertGreater(metric(api_b, "jobcast_cluster_hints_total",
                                  {"kind": "ready", "direction": "published"}), 0)
        self.assertGreater(metric(api_a, "jobcast_cluster_hints_total",
                                  {"kind": "ready", "direction": "received"}), 0)

    def test_a_broker_without_workers_stops_counting_the_jobs_another_broker_ran(self):
        a = self.start_cluster_broker()
        b = self.start_cluster_broker()
        api_a, api_b = self.client(a), self.client(b)
        jobs = [api_b.submit("llm.generate", {"prompt": f"counted {i}", "max_tokens": 5,
                                              "seed": i, "tokens_per_second": 500})
                for i in range(6)]
        ids = sorted(job["id"] for job in jobs)

        def queued_listed(api):  # of these jobs (the cluster is the test class's)
            status, page, _ = api.request("GET", "/v1/jobs?state=queued&limit=100")
            self.assertEqual(status, 200)
            return sorted(j["id"] for j in page["jobs"] if j["id"] in ids)

        # No worker anywhere: the jobs wait, and B, where they were submitted,
        # counts them, as the cluster's listing does.
        wait_until(lambda: metric(api_b, "jobcast_queue_depth") == len(jobs), timeout=10,
                   interval=0.1, what="B to count the jobs waiting")
        self.assertEqual(queued_listed(api_b), ids)
        # Only A has a worker: it runs them, and B no longer counts them.
        self.start_worker(a, ["llm.generate"], capacity=2)
        for i, job in enumerate(jobs):
            done = api_b.wait_state(job["id"], ["succeeded", "failed"], timeout=60)
            self.assertEqual(done["state"], "succeeded")
            self.assertEqual(done["attempt"], 1)
            self.assertEqual(done["result"]["text"], sim_text(f"counted {i}", i, 5))
        wait_until(lambda: metric(api_b, "jobcast_queue_depth") == 0, timeout=10,
                   interval=0.1, what="B's jobcast_queue_depth back to 0")
        for api in (api_a, api_b):
            self.assertEqual(metric(api, "jobcast_queue_depth"), 0)
            self.assertEqual(queued_listed(api), [])

    def test_a_cancel_on_one_broker_reaches_the_worker_on_another_by_its_hint(self):
        # A renews its leases every 100 s (heartbeat 200 ms x liveness 1500: a
        # lease timeout of 300 s, renewed every third of it, the first time
        # when A starts, with no lease yet): within this test only the cancel
        # hint can tell A.
        url = f"redis-cluster://{self.cluster.seeds()}?partitions=16"
        a = self.start_broker(args=["--store", url, "--retention", "1h", "--liveness", "1500"])
        b = self.start_cluster_broker()
        self.start_worker(a, ["llm.generate"])
        api_a, api_b = self.client(a), self.client(b)
        job = api_a.submit("llm.generate", {"prompt": "long", "max_tokens": 100000,
                                            "tokens_per_second": 50, "seed": 1})
        api_a.wait_state(job["id"], ["running"], timeout=30)
        status, _, _ = api_b.request("POST", f"/v1/jobs/{job['id']}/cancel")
        self.assertIn(status, (200, 202))
        # The worker stops it (its error event) before B's grace (10 s) would
        # end it by force.
        done = api_b.wait_state(job["id"], ["cancelled"], timeout=8)
        self.assertEqual(done["state"], "cancelled")
        self.assertIn("error", [e["kind"] for e in api_b.events(job["id"])])
        self.assertGreaterEqual(metric(api_b, "jobcast_cluster_hints_total",
                                       {"kind": "cancel", "direction": "published"}), 1)
        self.assertGreaterEqual(metric(api_a, "jobcast_cluster_hints_total",
                                       {"kind": "cancel", "direction": "received"}), 1)

    def test_a_worker_carries_on_with_the_same_attempt_when_its_broker_is_killed(self):
        a = self.start_cluster_broker()
        b = self.start_cluster_broker()
        self.start_worker(f"{a.zmq},{b.zmq}", ["llm.generate"], name="failover-worker")
        api_a, api_b = self.client(a), self.client(b)
        n, seed, prompt = 400, 11, "failover"
        job = api_a.submit("llm.generate", {"prompt": prompt, "max_tokens": n,
                                            "tokens_per_second": 100, "seed": seed})
        results = {}

        def read():
            results["b"] = sse_events(b, job["id"], timeout=90)

        reader = threading.Thread(target=read)
        reader.start()
        wait_until(lambda: len(api_b.events(job["id"])) > 40, timeout=30,
                   what="40 events stored")
        a.kill()
        done = api_b.wait_state(job["id"], ["succeeded", "failed"], timeout=60)
        reader.join(60)
        self.assertFalse(reader.is_alive(), "the SSE reader on B did not finish")
        self.assertEqual(done["state"], "succeeded")
        self.assertEqual(done["attempt"], 1)
        self.assertEqual(done["result"]["text"], sim_text(prompt, seed, n))
        stored = api_b.events(job["id"])
        self.assertEqual([e["seq"] for e in stored], list(range(1, len(stored) + 1)))
        self.assertEqual([seq for seq, _ in results["b"]], [e["seq"] for e in stored])
        self.assertEqual([event for _, event in results["b"]], stored)
        # One attempt: a single running state event.
        running = [e for e in stored if e["kind"] == "state"
                   and e["data"].get("state") == "running"]
        self.assertEqual(len(running), 1)

    def test_a_job_whose_broker_and_worker_die_runs_again_elsewhere(self):
        a = self.start_cluster_broker()
        b = self.start_cluster_broker()
        doomed = self.start_worker(a, ["llm.generate"], name="doomed")
        api_b = self.client(b)
        n, seed, prompt = 200, 5, "requeued"
        job = api_b.submit("llm.generate", {"prompt": prompt, "max_tokens": n,
                                            "tokens_per_second": 40, "seed": seed})
        wait_until(lambda: len(api_b.events(job["id"])) > 10, timeout=30,
                   what="the job to stream on A's worker")
        doomed.kill()
        a.kill()
        self.start_worker(b, ["llm.generate"], name="survivor")
        done = api_b.wait_state(job["id"], ["succeeded", "failed"], timeout=60)
        self.assertEqual(done["state"], "succeeded")
        self.assertEqual(done["attempt"], 2)
        self.assertEqual(done["result"]["text"], sim_text(prompt, seed, n))
        stored = api_b.events(job["id"])
        self.assertEqual([e["seq"] for e in stored], list(range(1, len(stored) + 1)))
        reasons = [e["data"].get("reason", "") for e in stored
                   if e["kind"] == "state" and e["data"].get("state") == "queued"]
        self.assertTrue(any("lease expired" in r for r in reasons), reasons)

    def test_a_bad_store_url_is_refused_with_a_clear_error(self):
        import subprocess
        from harness import BIN
        result = subprocess.run(
            [os.path.join(BIN, "jobcast-broker"), "--store", "redis-cluster://nohost"],
            capture_output=True, text=True, timeout=30)
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("--store", result.stderr)


if __name__ == "__main__":
    unittest.main()
