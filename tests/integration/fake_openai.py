#!/usr/bin/env python3
"""A fake OpenAI-compatible chat completions endpoint for tests (stdlib only).

POST /v1/chat/completions with {"stream": true} answers with Server-Sent Events:
one `data: {chat.completion.chunk}` per piece of REPLY (a role-only delta first,
like the real API), then `data: [DONE]`. Without "stream" it answers one JSON
completion. Other paths: 404.

    python3 fake_openai.py [--port 0] [--delay-ms 0] [--api-key KEY] [--status 200]

Prints "listening http://127.0.0.1:PORT" (flushed) once it serves, so a test can
start it with port 0 and read the address. The last request is kept and served
at GET /last-request ({"headers": {...}, "body": {...}}) for assertions, and
GET /stats counts the streams served to the end and those the client closed
early ({"streams_completed": N, "streams_aborted": M}).
--status answers every completion with that HTTP status and an OpenAI-style
error body; --api-key makes a wrong or missing bearer token a 401.
"""
import argparse
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# The reply streamed by default; a test can compare the job's result.text to
# "".join(REPLY).
REPLY = ["Hello", "!", " I", " am", " a", " fake", " model", ",", " streaming", " for",
         " jobcast", " \u2014", " caf\u00e9", " \U0001F600", "."]


class State:
    lock = threading.Lock()
    last_request = None
    streams_completed = 0
    streams_aborted = 0


def make_handler(options):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args):  # keep test output quiet
            if options.verbose:
                sys.stderr.write("fake_openai: " + (fmt % args) + "\n")

        def send_json(self, status, payload):
            body = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            if self.path == "/last-request":
                with State.lock:
                    self.send_json(200, State.last_request or {})
            elif self.path == "/stats":
                with State.lock:
                    self.send_json(200, {"streams_completed": State.streams_completed,
                                         "streams_aborted": State.streams_aborted})
            else:
                self.send_json(404, {"error": {"message": "not found", "type": "invalid_request_error"}})

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw or b"{}")
            except ValueError:
                self.send_json(400, {"error": {"message": "invalid JSON body", "type": "invalid_request_error"}})
                return
            with State.lock:
                State.last_request = {"path": self.path, "headers": dict(self.headers.items()), "body": body}
            if self.path.rstrip("/") != "/v1/chat/completions":
                self.send_json(404, {"error": {"message": "unknown path " + self.path, "type": "invalid_request_error"}})
                return
            if options.api_key and self.headers.get("Authorization") != "Bearer " + options.api_key:
                self.send_json(401, {"error": {"message": "Incorrect API key provided", "type": "invalid_request_error"}})
                return
            if options.status != 200:
                self.send_json(options.status, {"error": {"message": "fake error %d" % options.status, "type": "server_error"}})
                return

            model = body.get("model", "fake-model")
            reply = REPLY
            max_tokens = body.get("max_tokens")
            if isinstance(max_tokens, int) and max_tokens >= 0:
                reply = reply[:max_tokens]
            created = int(time.time())

            if not body.get("stream"):
                self.send_json(200, {
                    "id": "chatcmpl-fake", "object": "chat.completion", "created": created, "model": model,
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": "".join(reply)},
                                 "finish_reason": "stop"}]})
                return

            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()

            def chunk(delta, finish=None):
                return {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": created,
                        "model": model,
                        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

            def send_event(text):
                data = text.encode()
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()

            try:
                send_event("data: " + json.dumps(chunk({"role": "assistant", "content": ""})) + "\n\n")
                for piece in reply:
                    if options.delay_ms:
                        time.sleep(options.delay_ms / 1000.0)
                    send_event("data: " + json.dumps(chunk({"content": piece})) + "\n\n")
                send_event("data: " + json.dumps(chunk({}, "stop")) + "\n\n")
                send_event("data: [DONE]\n\n")
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()
                with State.lock:
                    State.streams_completed += 1
            except (BrokenPipeError, ConnectionResetError):
                with State.lock:  # the client went away (e.g. the job was cancelled)
                    State.streams_aborted += 1

    return Handler


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--delay-ms", type=int, default=0, help="pause before each streamed piece")
    parser.add_argument("--api-key", default="", help="require this bearer token")
    parser.add_argument("--status", type=int, default=200, help="answer completions with this status")
    parser.add_argument("--verbose", action="store_true")
    options = parser.parse_args()
    server = ThreadingHTTPServer((options.host, options.port), make_handler(options))
    server.daemon_threads = True
    print("listening http://%s:%d" % server.server_address[:2], flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
