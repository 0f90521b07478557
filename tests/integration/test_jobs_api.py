"""Submit over HTTP, a real jobcast-worker runs the job, the events page has the
whole ordered log. The REST API's answers to bad requests are in the bad-input
catalogue, test_bad_input.py."""

import json
import unittest

from harness import JobcastTest, check_contiguous, metric, sim_text, wait_until


class RestApiTest(JobcastTest):
    def setUp(self):
        super().setUp()
        self.broker = self.start_broker()
        self.api = self.client(self.broker)

    def test_unknown_type_waits_and_queued_cancel_is_immediate(self):
        job = self.api.submit("nobody.runs.this", {"a": 1})
        self.assertEqual(job["state"], "queued")
        self.assertEqual(job["params"], {"a": 1})
        status, _, _ = self.api.request("POST", f"/v1/jobs/{job['id']}/cancel")
        self.assertEqual(status, 202)
        self.assertEqual(self.api.job(job["id"])["state"], "cancelled")
        status, _, _ = self.api.request("POST", f"/v1/jobs/{job['id']}/cancel")
        self.assertEqual(status, 409)
        events = self.api.events(job["id"])
        check_contiguous(self, events)
        self.assertEqual([e["data"]["state"] for e in events], ["queued", "cancelled"])

    def test_idempotency_key_returns_the_same_job(self):
        hdr = {"Idempotency-Key": "order-42"}
        s1, j1, _ = self.api.request("POST", "/v1/jobs", {"type": "t"}, headers=hdr)
        s2, j2, h2 = self.api.request("POST", "/v1/jobs", {"type": "t"}, headers=hdr)
        self.assertEqual(s1, 201)
        self.assertEqual(s2, 200)
        self.assertEqual(j1["id"], j2["id"])
        status, page, _ = self.api.request("GET", "/v1/jobs?limit=100")
        self.assertEqual(len(page["jobs"]), 1)

    def test_list_pages_with_cursor_and_filters(self):
        ids = [self.api.submit("t.list", {"i": i})["id"] for i in range(7)]
        self.api.submit("t.other")
        seen, cursor = [], ""
        while True:
            status, page, _ = self.api.request("GET", f"/v1/jobs?type=t.list&limit=3&cursor={cursor}")
            self.assertEqual(status, 200)
            seen += [j["id"] for j in page["jobs"]]
            if not page["next"]:
                break
            cursor = page["next"]
        self.assertEqual(seen, sorted(ids, reverse=True))  # newest first, each once
        status, page, _ = self.api.request("GET", "/v1/jobs?state=running")
        self.assertEqual(page["jobs"], [])
        status, _, _ = self.api.request("GET", "/v1/jobs?state=bogus")
        self.assertEqual(status, 400)


class EndToEndTest(JobcastTest):
    def setUp(self):
        super().setUp()
        self.broker = self.start_broker()
        self.api = self.client(self.broker)

    def test_llm_job_streams_the_deterministic_text(self):
        self.start_worker(self.broker, ["llm.generate"], name="w-llm")
        params = {"prompt": "tell me about streams", "max_tokens": 60, "tokens_per_second": 0,
                  "seed": 7}
        job = self.api.submit("llm.generate", params)
        done = self.api.wait_state(job["id"], ["succeeded", "failed"])
        self.assertEqual(done["state"], "succeeded", done)

        events = self.api.events(job["id"])
        check_contiguous(self, events)
        self.assertEqual(done["last_seq"], events[-1]["seq"])
        kinds = [e["kind"] for e in events]
        self.assertEqual(events[0]["data"], {"state": "queued", "attempt": 0})
        self.assertEqual(events[1]["data"]["state"], "running")
        self.assertEqual(events[1]["data"]["attempt"], 1)
        self.assertEqual(kinds[-2:], ["result", "state"])
        self.assertEqual(events[-1]["data"]["state"], "succeeded")
        text = "".join(e["data"]["text"] for e in events if e["kind"] == "token")
        self.assertEqual(kinds.count("token"), 60)
        self.assertEqual(text, sim_text(params["prompt"], 7, 60))
        self.assertEqual(events[-2]["data"]["text"], text)
        self.assertEqual(done["result"]["text"], text)
        # The page says the log is complete only once the terminal event is in it.
        status, page, _ = self.api.request("GET", f"/v1/jobs/{job['id']}/events?after=0&limit=5")
        self.assertFalse(page["done"])
        status, page, _ = self.api.request(
            "GET", f"/v1/jobs/{job['id']}/events?after={events[-3]['seq']}")
        self.assertTrue(page["done"])
        self.assertEqual(metric(self.api, "jobcast_events_ingested_total", {"kind": "token"}), 60)

    def test_research_job_reports_stages(self):
        self.start_worker(self.broker, ["research"], name="w-research")
        job = self.api.submit("research", {"topic": "tides", "stage_ms": 20})
        done = self.api.wait_state(job["id"], ["succeeded", "failed"])
        self.assertEqual(done["state"], "succeeded", done)
        self.assertEqual(done["progress"], 1.0)
        self.assertIn("tides", done["result"]["summary"])
        events = self.api.events(job["id"])
        check_contiguous(self, events)
        stages = [e["data"].get("stage") for e in events if e["kind"] == "progress"]
        for stage in ["plan", "gather", "read", "write"]:
            self.assertIn(stage, stages)
        fractions = [e["data"]["fraction"] for e in events if e["kind"] == "progress"]
        self.assertEqual(fractions, sorted(fractions))

    def test_exec_job_streams_output_and_refuses_what_is_not_allowed(self):
        self.start_worker(self.broker, ["exec"], name="w-exec", args=["--exec-allow", "echo"])
        job = self.api.submit("exec", {"command": "echo", "args": ["hello", "world"]})
        done = self.api.wait_state(job["id"], ["succeeded", "failed"])
        self.assertEqual(done["state"], "succeeded", done)
        self.assertEqual(done["result"]["exit_code"], 0)
        logs = [e["data"]["message"] for e in self.api.events(job["id"]) if e["kind"] == "log"]
        self.assertIn("hello world", logs)

        bad = self.api.submit("exec", {"command": "cat", "args": ["/etc/passwd"]})
        done = self.api.wait_state(bad["id"], ["succeeded", "failed"])
        self.assertEqual(done["state"], "failed")
        self.assertEqual(done["attempt"], 1)  # not retried: it can never succeed
        self.assertIn("allow", done["error"])

    def test_many_jobs_over_several_workers_all_finish(self):
        for i in range(2):
            self.start_worker(self.broker, ["llm.generate"], name=f"w{i}", capacity=4)
        # Both connected before the jobs exist, so that both get some.
        wait_until(lambda: metric(self.api, "jobcast_workers") == 2, what="two workers")
        jobs = [self.api.submit("llm.generate", {"prompt": f"p{i}", "max_tokens": 20,
                                                 "tokens_per_second": 0, "seed": i})
                for i in range(24)]
        for i, job in enumerate(jobs):
            done = self.api.wait_state(job["id"], ["succeeded", "failed"])
            self.assertEqual(done["state"], "succeeded")
            self.assertEqual(done["result"]["text"], sim_text(f"p{i}", i, 20))
        workers = {self.api.events(j["id"])[1]["data"]["worker"] for j in jobs}
        self.assertEqual(workers, {"w0", "w1"})


if __name__ == "__main__":
    unittest.main()
