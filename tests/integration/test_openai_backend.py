"""llm.generate with the `openai` backend: a real jobcast-worker streams from
an OpenAI-compatible /v1/chat/completions endpoint (a local fake started by the
test) and relays each delta as a token event."""

import json
import os
import sys
import unittest
import urllib.request

from harness import HERE, JobcastTest, Process, check_contiguous

sys.path.insert(0, HERE)
import fake_openai  # noqa: E402  (the reply it streams)


class OpenAIBackendTest(JobcastTest):
    def test_tokens_stream_from_the_endpoint(self):
        broker = self.start_broker()
        api = self.client(broker)
        port = self.free_fake_port()
        fake = Process([sys.executable, os.path.join(HERE, "fake_openai.py"), "--port", str(port),
                        "--api-key", "sk-test", "--delay-ms", "5"], name="fake_openai")
        self.addCleanup(fake.kill)
        base = f"http://127.0.0.1:{port}"
        self.wait_http(base + "/last-request")
        self.start_worker(broker, ["llm.generate"], name="openai",
                          args=["--openai-base-url", base, "--openai-model", "fake-1",
                                "--openai-api-key", "sk-test"])
        job = api.submit("llm.generate", {"prompt": "say hello", "max_tokens": 50,
                                          "backend": "openai"})
        done = api.wait_state(job["id"], ["succeeded", "failed"])
        self.assertEqual(done["state"], "succeeded", done)
        events = api.events(job["id"])
        check_contiguous(self, events)
        tokens = [e["data"]["text"] for e in events if e["kind"] == "token"]
        self.assertEqual(tokens, fake_openai.REPLY)
        self.assertEqual(done["result"]["text"], "".join(fake_openai.REPLY))
        last = json.load(urllib.request.urlopen(base + "/last-request", timeout=5))
        self.assertEqual(last["headers"].get("Authorization"), "Bearer sk-test")
        self.assertEqual(last["body"]["model"], "fake-1")
        self.assertTrue(last["body"]["stream"])
        self.assertEqual(last["body"]["messages"][-1]["content"], "say hello")

    def test_a_chat_s_messages_reach_the_endpoint_as_they_are(self):
        broker = self.start_broker()
        api = self.client(broker)
        port = self.free_fake_port()
        fake = Process([sys.executable, os.path.join(HERE, "fake_openai.py"), "--port", str(port)],
                       name="fake_openai")
        self.addCleanup(fake.kill)
        base = f"http://127.0.0.1:{port}"
        self.wait_http(base + "/last-request")
        self.start_worker(broker, ["llm.generate"], name="openai",
                          args=["--openai-base-url", base, "--openai-model", "fake-1"])
        # What JobcastChatTransport sends: the conversation, and its last user text.
        messages = [{"role": "system", "content": "Be brief."},
                    {"role": "user", "content": "Hi"},
                    {"role": "assistant", "content": "Hello! How can I help?"},
                    {"role": "user", "content": "Tell me about tides."}]
        job = api.submit("llm.generate", {"prompt": "Tell me about tides.", "messages": messages,
                                          "backend": "openai"})
        done = api.wait_state(job["id"], ["succeeded", "failed"])
        self.assertEqual(done["state"], "succeeded", done)
        last = json.load(urllib.request.urlopen(base + "/last-request", timeout=5))
        self.assertEqual(last["body"]["messages"], messages)

        # The params schema knows `messages`: a malformed one is refused at submit.
        status, body, _ = api.request("POST", "/v1/jobs", {
            "type": "llm.generate", "params": {"messages": [{"content": "no role"}]}})
        self.assertEqual(status, 422, body)

    def test_a_refused_key_fails_the_job_without_retries(self):
        broker = self.start_broker()
        api = self.client(broker)
        port = self.free_fake_port()
        fake = Process([sys.executable, os.path.join(HERE, "fake_openai.py"), "--port", str(port),
                        "--api-key", "sk-right"], name="fake_openai")
        self.addCleanup(fake.kill)
        base = f"http://127.0.0.1:{port}"
        self.wait_http(base + "/last-request")
        self.start_worker(broker, ["llm.generate"], name="openai",
                          args=["--openai-base-url", base, "--openai-api-key", "sk-wrong"])
        job = api.submit("llm.generate", {"prompt": "x", "backend": "openai"}, max_attempts=3)
        done = api.wait_state(job["id"], ["succeeded", "failed"])
        self.assertEqual(done["state"], "failed")
        self.assertEqual(done["attempt"], 1)  # 401 is not worth retrying
        self.assertIn("401", done["error"])

    @staticmethod
    def free_fake_port():
        from harness import free_port
        return free_port()

    @staticmethod
    def wait_http(url):
        from harness import wait_until

        def up():
            try:
                urllib.request.urlopen(url, timeout=1).read()
                return True
            except OSError:
                return False
        wait_until(up, timeout=20, what=url)


if __name__ == "__main__":
    unittest.main()
