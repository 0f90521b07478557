"""Graceful shutdown: SIGTERM stops accepting, tells WebSocket clients to
reconnect (1012), ends SSE streams, flushes the writer, acknowledges and tells
the workers, and exits within --shutdown-timeout. Against the restarted broker
(same database, same ports) every client resumes and nothing is lost or doubled.
"""

import signal
import socket
import threading
import time
import unittest

from harness import JobcastTest, check_contiguous, free_port, sim_text, wait_until
import test_streaming as streaming

TOKENS = 600


class GracefulShutdownTest(JobcastTest):
    def test_sigterm_flushes_tells_everyone_and_clients_resume(self):
        args = dict(http=f"127.0.0.1:{free_port()}", zmq=f"tcp://127.0.0.1:{free_port()}",
                    args=["--shutdown-timeout", "8s"])
        broker = self.start_broker(**args)
        api = self.client(broker)
        workers = [self.start_worker(broker, ["llm.generate"], name=f"w{i}") for i in range(2)]
        jobs = []
        for seed in range(4):
            params = {"prompt": "shutdown", "max_tokens": TOKENS, "tokens_per_second": 150,
                      "seed": seed}
            jobs.append((api.submit("llm.generate", params)["id"], seed))

        # One WebSocket client following every job, one SSE stream on the first.
        ws = streaming.WsClient(broker)
        for job, _ in jobs:
            ws.send({"op": "subscribe", "job": job, "after": 0})
        sse_got = []
        sse = threading.Thread(
            target=lambda: sse_got.extend(streaming.follow_sse(broker, jobs[0][0], after=0)))
        sse.start()
        got = {job: [] for job, _ in jobs}
        for job, event in ws.frames():
            if job:
                got[job].append(event)
                if all(len(events) >= 40 for events in got.values()):
                    break

        started = time.monotonic()
        broker.proc.send_signal(signal.SIGTERM)
        close = None
        for job, item in ws.frames():
            if job:
                got[job].append(item)
            elif item["type"] == "close":
                close = item
        self.assertEqual(close, {"type": "close", "code": 1012})  # reconnect and resume
        sse.join(timeout=30)
        self.assertFalse(sse.is_alive(), "the SSE stream ends at shutdown")
        self.assertEqual(broker.proc.wait(timeout=20), 0)
        self.assertLess(time.monotonic() - started, 8, "exits within --shutdown-timeout")
        broker.wait_for_line(r"event=workers_told_to_reconnect workers=2")
        self.assertFalse(any("shutdown_forced" in line for line in broker.lines))
        for worker in workers:  # told, rather than finding out from silence
            worker.wait_for_line(r"broker is shutting down; reconnecting")
        with self.assertRaises(OSError):  # no longer accepting
            socket.create_connection((broker.host, broker.port), timeout=2).close()

        broker = self.start_broker(**args)
        api = self.client(broker)
        for job, seed in jobs:
            # What clients saw before the stop was committed: it is all still
            # there, and the rest follows with no gap and no duplicate.
            events = got[job]
            events += streaming.follow_ws(broker, job, after=events[-1]["seq"])
            check_contiguous(self, events)
            self.assertEqual(events, api.events(job))
            self.assertEqual("".join(e["data"]["text"] for e in events if e["kind"] == "token"),
                             sim_text("shutdown", seed, TOKENS))
            final = api.job(job)
            self.assertEqual(final["state"], "succeeded")
            self.assertEqual(final["attempt"], 1, "workers kept their leases across the restart")
        resumed = sse_got + streaming.follow_sse(broker, jobs[0][0],
                                                 last_event_id=sse_got[-1]["seq"])
        self.assertEqual(resumed, api.events(jobs[0][0]))


if __name__ == "__main__":
    unittest.main()
