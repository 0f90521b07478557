"""Params checked before a job is queued: the real jobcast-worker announces its
job types' JSON Schemas in hello, and the broker answers a submission that
breaks one with 422 naming the field (REST and the CLI alike), lists the
schemas at GET /v1/types and counts the refusals. Hand-written workers show
that a hello without schemas (an older worker) still works, and that a schema
the broker cannot take is refused alone."""

import os
import subprocess
import unittest

import msgpack

from harness import BIN, JobcastTest, ZmqPeers, metric, wait_until

CLI = os.path.join(BIN, "jobcast")


class ParamsSchemaTest(ZmqPeers, JobcastTest):
    def setUp(self):
        super().setUp()
        self.broker = self.start_broker()
        self.api = self.client(self.broker)

    def types(self):
        status, body, _ = self.api.request("GET", "/v1/types")
        self.assertEqual(status, 200)
        return {t["type"]: t for t in body["types"]}

    def post(self, job_type, params):
        status, body, _ = self.api.request("POST", "/v1/jobs", {"type": job_type, "params": params})
        return status, body

    def test_the_shipped_worker_announces_its_schemas_and_bad_params_are_refused(self):
        worker = self.start_worker(self.broker, ["llm.generate", "research", "exec"],
                                   args=["--exec-allow", "echo"])
        wait_until(lambda: len(self.types()) == 3, what="the worker's types")
        types = self.types()
        for name in ("llm.generate", "research", "exec"):
            self.assertIsInstance(types[name]["schema"], dict, name)
            self.assertEqual(types[name]["workers"], 1)
        self.assertEqual(types["research"]["schema"]["required"], ["topic"])

        status, body = self.post("research", {"stage_ms": 5})
        self.assertEqual(status, 422, body)
        self.assertEqual(body["error"]["code"], "invalid_params")
        self.assertEqual(body["error"]["field"], "/topic")
        self.assertEqual(body["error"]["rule"], "required")
        self.assertIn("params/topic", body["error"]["message"])

        status, body = self.post("llm.generate", {"prompt": "x", "max_tokens": "many"})
        self.assertEqual(status, 422, body)
        self.assertEqual(body["error"]["field"], "/max_tokens")
        self.assertEqual(body["error"]["rule"], "type")

        status, body = self.post("exec", {"command": "echo", "args": ["a", 1]})
        self.assertEqual(status, 422, body)
        self.assertEqual(body["error"]["field"], "/args/1")

        # Nothing was queued; the refusals are counted per type.
        status, page, _ = self.api.request("GET", "/v1/jobs")
        self.assertEqual(page["jobs"], [])
        self.assertEqual(metric(self.api, "jobcast_params_refused_total", {"type": "research"}), 1)
        self.assertEqual(metric(self.api, "jobcast_params_refused_total", {"type": "llm.generate"}), 1)
        self.assertEqual(metric(self.api, "jobcast_params_refused_total", {"type": "exec"}), 1)

        # Conforming params (defaults left out, nulls too) run as before.
        job = self.api.submit("research", {"topic": "tides", "stages": ["a", "b"], "stage_ms": 1})
        self.assertEqual(self.api.wait_state(job["id"], ["succeeded"])["state"], "succeeded")
        job = self.api.submit("llm.generate", {"prompt": "hi", "max_tokens": 5,
                                               "tokens_per_second": 0, "backend": None})
        self.assertEqual(self.api.wait_state(job["id"], ["succeeded"])["state"], "succeeded")

        # A type no worker announced a schema for is accepted as today.
        self.assertEqual(self.post("nobody.runs.this", {"anything": [1]})[0], 201)

        # The CLI submits through REST: refused the same way.
        env = dict(os.environ, JOBCAST_URL=f"http://{self.broker.http}")
        env.pop("JOBCAST_TOKEN", None)
        done = subprocess.run([CLI, "submit", "research", "stage_ms=5"], capture_output=True,
                              env=env, timeout=60)
        self.assertNotEqual(done.returncode, 0)
        self.assertIn("params/topic", done.stderr.decode())

        # Once the worker is gone, so are its schemas.
        worker.kill()
        wait_until(lambda: "research" not in self.types(), timeout=30, what="the worker to go")
        self.assertEqual(self.post("research", {"stage_ms": 5})[0], 201)

    def test_a_worker_without_schemas_and_a_bad_schema_are_served(self):
        # An older worker: no "schemas" field.
        old = self.dealer(self.broker)
        self.say_hello(old, "old", ["plain"])
        wait_until(lambda: "plain" in self.types(), what="the old worker's type")
        self.assertIsNone(self.types()["plain"]["schema"])
        self.assertEqual(self.post("plain", {"x": 1})[0], 201)

        # A worker whose schemas loop, fetch, or are not JSON: welcomed, its
        # types served without a schema; its good one is kept.
        sock = self.dealer(self.broker)
        hello = {"v": 1, "t": "hello", "worker": "mixed", "types": ["a", "b", "c", "d"],
                 "capacity": 1, "inflight": [],
                 "schemas": {"a": '{"$ref":"#"}',
                             "b": '{"$ref":"http://127.0.0.1:9/schema.json"}',
                             "c": "{not json",
                             "d": '{"properties":{"n":{"type":"integer"}}}'}}
        sock.send(msgpack.packb(hello))
        self.recv_type(sock, "welcome", timeout=5)
        wait_until(lambda: "d" in self.types(), what="the mixed worker's types")
        types = self.types()
        for name in ("a", "b", "c"):
            self.assertIsNone(types[name]["schema"], name)
        self.assertEqual(types["d"]["schema"], {"properties": {"n": {"type": "integer"}}})
        self.assertEqual(self.post("a", {"anything": True})[0], 201)
        status, body = self.post("d", {"n": "one"})
        self.assertEqual(status, 422)
        self.assertEqual(body["error"]["field"], "/n")
        self.broker.wait_for_line(r"event=schema_refused worker=\"?mixed\"? type=\"?a\"?.*loop")
        self.broker.wait_for_line(r"event=schema_refused worker=\"?mixed\"? type=\"?b\"?.*not local")

        # The broker still serves both (heart-beats them).
        self.recv_type(sock, "heartbeat", timeout=5)
        self.recv_type(old, "heartbeat", timeout=5)


if __name__ == "__main__":
    unittest.main()
