"""examples/llm_chat.py against the project's fake OpenAI-compatible server:
it streams the server's tokens, and cancel closes the upstream request."""
import json
import subprocess
import sys
import unittest
import urllib.request

from support import FAKE_OPENAI, SdkTest, harness

REPLY = ["Hello", "!", " I", " am", " a", " fake", " model", ",", " streaming", " for",
         " jobcast", " \u2014", " caf\u00e9", " \U0001F600", "."]  # fake_openai.REPLY


class LlmChatTest(SdkTest):
    def fake_openai(self, *args):
        proc = subprocess.Popen([sys.executable, FAKE_OPENAI, "--port", "0", *args],
                                stdout=subprocess.PIPE, text=True)
        self.addCleanup(lambda: (proc.kill(), proc.wait(), proc.stdout.close()))
        return proc.stdout.readline().split()[1]  # "listening http://127.0.0.1:PORT"

    def get(self, url):
        with urllib.request.urlopen(url, timeout=10) as r:
            return json.load(r)

    def start(self, base_url):
        broker = self.start_broker()
        self.start_py_worker("llm_chat.py", ["--broker", broker.zmq, "--name", "py-llm"], env={
            "JOBCAST_OPENAI_BASE_URL": base_url, "JOBCAST_OPENAI_MODEL": "fake-1",
            "JOBCAST_OPENAI_API_KEY": "sk-test"}, name="llm_chat")
        return self.client(broker)

    def test_streams_the_completion_as_tokens(self):
        base = self.fake_openai("--api-key", "sk-test")
        api = self.start(base + "/v1")  # a base that ends in /v1, as OPENAI_BASE_URL often does
        messages = [{"role": "user", "content": "hi"}]
        job = api.submit("llm.chat", {"messages": messages, "max_tokens": 100})
        final = api.wait_state(job["id"], ("succeeded", "failed"))
        self.assertEqual(final["state"], "succeeded", final)
        self.assertEqual(self.tokens(api, job["id"]), REPLY)
        self.assertEqual(final["result"], {"text": "".join(REPLY), "tokens": len(REPLY)})
        sent = self.get(base + "/last-request")
        self.assertEqual(sent["path"], "/v1/chat/completions")
        self.assertEqual((sent["body"]["model"], sent["body"]["messages"], sent["body"]["stream"],
                          sent["body"]["max_tokens"]), ("fake-1", messages, True, 100))
        # Missing messages: a clear, final failure.
        bad = api.wait_state(api.submit("llm.chat", {})["id"], ("succeeded", "failed"))
        self.assertEqual((bad["state"], bad["attempt"]), ("failed", 1))
        self.assertIn('"messages"', bad["error"])

    def test_cancel_closes_the_upstream_request(self):
        base = self.fake_openai("--delay-ms", "150")
        api = self.start(base)
        job = api.submit("llm.chat", {"messages": [{"role": "user", "content": "hi"}]})
        harness.wait_until(lambda: self.tokens(api, job["id"]), what="the first token")
        status, _, _ = api.request("POST", f"/v1/jobs/{job['id']}/cancel")
        self.assertEqual(status, 202)
        self.assertEqual(api.wait_state(job["id"], ("cancelled", "failed"))["state"], "cancelled")
        # The server notices at its next write, well before its stream would end.
        harness.wait_until(lambda: self.get(base + "/stats")["streams_aborted"] == 1,
                           timeout=1.5, what="the fake server to see the request closed")
        self.assertEqual(self.get(base + "/stats")["streams_completed"], 0)
        self.assertLess(len(self.tokens(api, job["id"])), len(REPLY))


if __name__ == "__main__":
    unittest.main()
