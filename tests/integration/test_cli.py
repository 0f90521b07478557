"""The `jobcast` command line client against a real broker and real workers:
what a user sees on stdout, stderr and in the exit code, including a broker
killed and restarted in the middle of `jobcast watch`."""

import json
import os
import pty
import re
import select
import signal
import subprocess
import threading
import time
import unittest

from harness import BIN, JobcastTest, free_port, sim_text, wait_until

CLI = os.path.join(BIN, "jobcast")


class Streaming:
    """A running `jobcast` whose stdout and stderr are collected as they come."""

    def __init__(self, argv, env):
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                                     start_new_session=True)
        self._lock = threading.Lock()
        self._out = bytearray()
        self._err = bytearray()
        self._threads = [threading.Thread(target=self._pump, args=(self.proc.stdout, self._out),
                                          daemon=True),
                         threading.Thread(target=self._pump, args=(self.proc.stderr, self._err),
                                          daemon=True)]
        for t in self._threads:
            t.start()

    def _pump(self, stream, sink):
        while True:
            chunk = stream.read1(65536)
            if not chunk:
                return
            with self._lock:
                sink.extend(chunk)

    def out(self):
        with self._lock:
            return self._out.decode("utf-8")

    def err(self):
        with self._lock:
            return self._err.decode("utf-8")

    def wait(self, timeout):
        code = self.proc.wait(timeout=timeout)
        self._drain()
        return code

    def kill(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        self._drain()

    def _drain(self):
        for t in self._threads:
            t.join(timeout=5)
        if not any(t.is_alive() for t in self._threads):
            self.proc.stdout.close()
            self.proc.stderr.close()


class CliTest(JobcastTest):
    def env(self, broker):
        env = dict(os.environ)
        env.pop("JOBCAST_TOKEN", None)
        env["JOBCAST_URL"] = f"http://{broker.http}"
        return env

    def jobcast(self, broker, *args, timeout=60):
        """Runs jobcast to the end: (exit code, stdout, stderr)."""
        done = subprocess.run([CLI, *args], capture_output=True, env=self.env(broker),
                              timeout=timeout)
        return done.returncode, done.stdout.decode("utf-8"), done.stderr.decode("utf-8")

    def start_jobcast(self, broker, *args):
        running = Streaming([CLI, *args], self.env(broker))
        self.addCleanup(running.kill)
        return running

    @staticmethod
    def submitted_id(stderr):
        m = re.search(r"^\[submitted (\S+)\]$", stderr, re.M)
        assert m, stderr
        return m.group(1)


class SubmitAndWatchTest(CliTest):
    def test_submit_follow_prints_exactly_the_generated_text(self):
        broker = self.start_broker()
        self.start_worker(broker, ["llm.generate"], name="llm-cli")
        code, out, err = self.jobcast(
            broker, "submit", "llm.generate", "prompt=the cli follows", "max_tokens=120",
            "tokens_per_second=600", "seed=11", "--follow")
        self.assertEqual(code, 0, err)
        expected = sim_text("the cli follows", 11, 120)
        self.assertEqual(out, expected)
        # The same text the broker stored as the job's result.
        job = self.client(broker).job(self.submitted_id(err))
        self.assertEqual(job["params"], {"prompt": "the cli follows", "max_tokens": 120,
                                         "tokens_per_second": 600, "seed": 11})
        self.assertEqual(job["result"]["text"], out)
        # State lines go to stderr, never into the output.
        self.assertIn("[running attempt 1 on llm-cli]", err)
        self.assertTrue(err.rstrip().endswith("[succeeded]"), err)

    def test_watch_json_prints_every_event_in_order(self):
        broker = self.start_broker()
        self.start_worker(broker, ["llm.generate"])
        api = self.client(broker)
        job = api.submit("llm.generate", {"prompt": "json", "max_tokens": 20,
                                          "tokens_per_second": 500, "seed": 2})
        code, out, err = self.jobcast(broker, "watch", job["id"], "--json")
        self.assertEqual(code, 0, err)
        events = [json.loads(line) for line in out.splitlines()]
        self.assertEqual([e["seq"] for e in events], list(range(1, len(events) + 1)))
        self.assertEqual(events, [dict(e, job=job["id"]) for e in api.events(job["id"])])
        self.assertEqual(events[-1]["data"]["state"], "succeeded")

    def test_watch_after_resumes_where_a_previous_watch_stopped(self):
        broker = self.start_broker()
        self.start_worker(broker, ["llm.generate"])
        api = self.client(broker)
        job = api.submit("llm.generate", {"prompt": "after", "max_tokens": 30,
                                          "tokens_per_second": 1000, "seed": 4})
        api.wait_state(job["id"], "succeeded")
        events = api.events(job["id"])
        cut = 12  # tokens start at seq 3
        code, out, _ = self.jobcast(broker, "watch", job["id"], "--after", str(cut))
        self.assertEqual(code, 0)
        self.assertEqual(out, "".join(e["data"]["text"] for e in events
                                      if e["kind"] == "token" and e["seq"] > cut))
        # After the very last event there is nothing to show, only the outcome.
        code, out, _ = self.jobcast(broker, "watch", job["id"], "--after", str(len(events)))
        self.assertEqual((code, out), (0, ""))


class BrokerRestartTest(CliTest):
    def test_watch_continues_through_a_broker_sigkill_with_no_gap_or_duplicate(self):
        http, zport = free_port(), free_port()
        args = dict(http=f"127.0.0.1:{http}", zmq=f"tcp://127.0.0.1:{zport}")
        broker = self.start_broker(**args)
        api = self.client(broker)
        self.start_worker(broker, ["llm.generate"], name="llm-restart")
        n_tokens = 400
        params = {"prompt": "through the restart", "max_tokens": n_tokens,
                  "tokens_per_second": 100, "seed": 21}
        job = api.submit("llm.generate", params)
        watch = self.start_jobcast(broker, "watch", job["id"], "--retry-for", "60s")

        # The user has seen part of the text when the broker dies.
        wait_until(lambda: len(watch.out()) > 150, timeout=30, what="text on the CLI's stdout")
        broker.kill(signal.SIGKILL)
        seen_before_kill = watch.out()
        expected = sim_text("through the restart", 21, n_tokens)
        self.assertLess(len(seen_before_kill), len(expected), "the job ended before the kill")
        wait_until(lambda: "connection lost" in watch.err(), timeout=10,
                   what="the CLI to notice the drop")
        time.sleep(0.5)  # a few reconnect attempts meet a closed port
        broker = self.start_broker(**args)

        code = watch.wait(timeout=120)
        self.assertEqual(code, 0, watch.err())
        self.assertEqual(watch.out(), expected)
        self.assertTrue(expected.startswith(seen_before_kill))
        self.assertIn("[reconnected; resuming after seq", watch.err())
        self.assertEqual(self.client(broker).job(job["id"])["result"]["text"], expected)

    def test_watch_gives_up_when_the_broker_stays_away(self):
        broker = self.start_broker()
        api = self.client(broker)
        job = api.submit("nobody.runs", {})
        watch = self.start_jobcast(broker, "watch", job["id"], "--retry-for", "2s")
        wait_until(lambda: "[queued]" in watch.err(), what="the subscription")
        started = time.monotonic()
        broker.kill(signal.SIGKILL)
        code = watch.wait(timeout=30)
        self.assertEqual(code, 4, watch.err())
        self.assertLess(time.monotonic() - started, 10)
        self.assertIn("giving up after 2 s", watch.err())


class JobOutcomesTest(CliTest):
    def test_failed_job_exits_1_with_the_error_on_stderr(self):
        broker = self.start_broker()
        self.start_worker(broker, ["exec"], args=["--exec-allow", "echo"])
        code, out, err = self.jobcast(broker, "submit", "exec", "command=rm",
                                      'args=["-rf","/tmp/nothing-here"]', "--follow")
        self.assertEqual(code, 1, err)
        self.assertEqual(out, "")
        self.assertIn("error: command 'rm' is not allowed on this worker", err)
        self.assertTrue(err.rstrip().endswith("[failed]"), err)

    def test_exec_output_lines_go_to_stdout(self):
        broker = self.start_broker()
        self.start_worker(broker, ["exec"], args=["--exec-allow", "sh"])
        code, out, err = self.jobcast(broker, "submit", "exec", "command=sh",
                                      'args=["-c","echo hello; echo world"]', "--follow")
        self.assertEqual(code, 0, err)
        self.assertRegex(out, r"^started sh pid=\d+\nhello\nworld\n")

    def test_research_shows_progress_lines_when_not_a_terminal(self):
        broker = self.start_broker()
        self.start_worker(broker, ["research"])
        code, out, err = self.jobcast(broker, "submit", "research", "topic=streaming CLIs",
                                      "stage_ms=40", "--follow")
        self.assertEqual(code, 0, err)
        progress = [line for line in out.splitlines() if line.startswith("progress ")]
        expected = []
        for i, stage in enumerate(["plan", "gather", "read", "write"]):
            expected += [f"progress {25 * i}% stage={stage}",
                         f"progress {25 * (i + 1)}% stage={stage}"]
        self.assertEqual(progress, expected)
        self.assertNotIn("\r", out)
        # the stages' log lines are there too
        self.assertGreater(len(out.splitlines()), len(progress))

    def test_research_on_a_terminal_draws_a_progress_bar(self):
        broker = self.start_broker()
        self.start_worker(broker, ["research"])
        master, slave = pty.openpty()
        proc = subprocess.Popen([CLI, "submit", "research", "topic=tty", "stage_ms=40",
                                 "--follow", "--quiet"],
                                stdout=slave, stderr=subprocess.PIPE, env=self.env(broker))
        os.close(slave)
        screen = bytearray()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the terminal's other side is closed
                break
            if not chunk:
                break
            screen.extend(chunk)
        os.close(master)
        self.assertEqual(proc.wait(timeout=30), 0, proc.stderr.read())
        proc.stderr.close()
        text = screen.decode("utf-8")
        self.assertRegex(text, r"\[#{12}-{12}\]  50% gather")
        self.assertIn("\r\x1b[K", text)  # the bar is redrawn in place
        self.assertNotIn("progress 50%", text)

    def test_cancelled_job_exits_3(self):
        broker = self.start_broker()
        api = self.client(broker)
        job = api.submit("nobody.runs", {})
        watch = self.start_jobcast(broker, "watch", job["id"])
        wait_until(lambda: "[queued]" in watch.err(), what="the subscription")
        code, out, err = self.jobcast(broker, "cancel", job["id"])
        self.assertEqual(code, 0, err)
        self.assertEqual(watch.wait(timeout=30), 3, watch.err())
        self.assertIn("[cancelled", watch.err())


class StopIsNotDisconnectTest(CliTest):
    """Issue 21 §5 in the CLI: Ctrl-C detaches, `jobcast cancel` stops."""

    def test_ctrl_c_detaches_and_jobcast_cancel_stops_with_the_partial_text_kept(self):
        broker = self.start_broker()
        self.start_worker(broker, ["llm.generate"], name="llm-stop")
        api = self.client(broker)

        # Ctrl-C (SIGINT to the foreground process group) while following:
        # the CLI goes, saying how to stop the job, and the job runs on to its end.
        follow = self.start_jobcast(broker, "submit", "llm.generate", "prompt=ctrl c",
                                    "max_tokens=200", "tokens_per_second=40", "seed=3", "--follow")
        wait_until(lambda: len(follow.out()) > 20, what="some streamed text")
        left = self.submitted_id(follow.err())
        os.killpg(follow.proc.pid, signal.SIGINT)
        self.assertEqual(follow.wait(timeout=10), 130, follow.err())
        self.assertTrue(follow.err().endswith(
            f"[detached: {left} goes on; jobcast cancel {left} stops it, "
            f"jobcast watch {left} follows it again]\n"), follow.err())
        self.assertTrue(sim_text("ctrl c", 3, 200).startswith(follow.out()))
        self.assertEqual(api.job(left)["state"], "running")
        # The same for `jobcast watch`.
        watch = self.start_jobcast(broker, "watch", left)
        wait_until(lambda: "[running attempt 1 on llm-stop]" in watch.err(), what="the watch")
        os.killpg(watch.proc.pid, signal.SIGINT)
        self.assertEqual(watch.wait(timeout=10), 130, watch.err())
        self.assertIn(f"[detached: {left} goes on; jobcast cancel {left} stops it", watch.err())
        self.assertEqual(api.job(left)["state"], "running")
        done = api.wait_state(left, "succeeded", timeout=30)
        self.assertEqual(done["result"]["text"], sim_text("ctrl c", 3, 200))
        self.assertFalse(done["cancel_requested"])

        # `jobcast cancel` stops a followed job: the follower exits 3 with the
        # partial text, which a later watch and the snapshot still give.
        follow = self.start_jobcast(broker, "submit", "llm.generate", "prompt=cancel me",
                                    "max_tokens=5000", "tokens_per_second=40", "--follow")
        wait_until(lambda: len(follow.out()) > 20, what="some streamed text")
        stopped = self.submitted_id(follow.err())
        code, out, err = self.jobcast(broker, "cancel", stopped)
        self.assertEqual(code, 0, err)
        self.assertEqual(follow.wait(timeout=30), 3, follow.err())
        partial = follow.out()
        tokens = "".join(e["data"]["text"] for e in api.events(stopped) if e["kind"] == "token")
        self.assertEqual(partial, tokens)
        self.assertTrue(0 < len(partial) < len(sim_text("cancel me", 0, 5000)))
        code, out, err = self.jobcast(broker, "watch", stopped)
        self.assertEqual((code, out), (3, partial), err)
        status, snapshot, _ = api.request("GET", f"/v1/jobs/{stopped}/snapshot")
        self.assertEqual((status, snapshot["state"], snapshot["text"]), (200, "cancelled", partial))

    def test_jobcast_cancel_while_the_broker_restarts_lands_when_it_is_back(self):
        http, zport = free_port(), free_port()
        args = dict(http=f"127.0.0.1:{http}", zmq=f"tcp://127.0.0.1:{zport}")
        broker = self.start_broker(**args)
        self.start_worker(broker, ["llm.generate"], name="llm-restart-cancel")
        job = self.client(broker).submit("llm.generate", {"prompt": "stop me", "max_tokens": 5000,
                                                          "tokens_per_second": 40})
        wait_until(lambda: self.client(broker).job(job["id"])["last_seq"] > 10,
                   what="the job under way")
        broker.kill(signal.SIGKILL)
        cancel = self.start_jobcast(broker, "cancel", job["id"], "--retry-for", "60s")
        wait_until(lambda: "[cannot cancel yet: " in cancel.err(), what="a first try refused")
        time.sleep(1.0)  # more tries meet a closed port
        self.assertIsNone(cancel.proc.poll(), cancel.err())
        self.assertIn("; retrying for up to 60 s]\n", cancel.err())
        broker = self.start_broker(**args)
        self.assertEqual(cancel.wait(timeout=60), 0, cancel.err())
        self.assertEqual(cancel.out(), f"cancel requested: {job['id']}\n")

        # The cancel reached the worker: the job ends cancelled, not by a lost
        # lease, and what it wrote stays readable in its log and its snapshot.
        api = self.client(broker)
        done = api.wait_state(job["id"], "cancelled", timeout=30)
        self.assertEqual(done["attempt"], 1)
        events = api.events(job["id"])
        self.assertEqual([e["data"]["state"] for e in events if e["kind"] == "state"],
                         ["queued", "running", "cancelled"])
        tokens = "".join(e["data"]["text"] for e in events if e["kind"] == "token")
        self.assertTrue(0 < len(tokens) < len(sim_text("stop me", 0, 5000)))
        self.assertTrue(sim_text("stop me", 0, 5000).startswith(tokens))
        status, snapshot, _ = api.request("GET", f"/v1/jobs/{job['id']}/snapshot")
        self.assertEqual((status, snapshot["state"], snapshot["text"]), (200, "cancelled", tokens))

    def test_jobcast_cancel_gives_up_after_retry_for(self):
        broker = self.start_broker()
        job = self.client(broker).submit("nobody.runs", {})
        broker.kill(signal.SIGKILL)
        started = time.monotonic()
        code, out, err = self.jobcast(broker, "cancel", job["id"], "--retry-for", "2s")
        self.assertEqual((code, out), (4, ""), err)
        self.assertLess(time.monotonic() - started, 10)
        self.assertIn(f"jobcast: cancel {job['id']}: giving up after 2 s: ", err)


class JobCommandsTest(CliTest):
    def test_get_list_and_cancel(self):
        broker = self.start_broker()
        api = self.client(broker)
        code, out, err = self.jobcast(broker, "submit", "nobody.runs", "n=1", "label=first job",
                                      "tags=[\"a\",\"b\"]", "--priority", "2")
        self.assertEqual(code, 0, err)
        job_id = out.strip()
        self.assertRegex(job_id, r"^[0-9A-Z]{26}$")

        code, out, err = self.jobcast(broker, "get", job_id)
        self.assertEqual(code, 0, err)
        self.assertIn('\n  "state": "queued",\n', out)  # pretty-printed
        job = json.loads(out)
        self.assertEqual(job["params"], {"n": 1, "label": "first job", "tags": ["a", "b"]})
        self.assertEqual(job["priority"], 2)

        other = api.submit("other.type", {})
        code, out, err = self.jobcast(broker, "list")
        self.assertEqual(code, 0, err)
        lines = out.splitlines()
        self.assertEqual(lines[0].split(), ["ID", "TYPE", "STATE", "PROGRESS", "CREATED"])
        self.assertEqual({line.split()[0] for line in lines[1:]}, {job_id, other["id"]})
        self.assertIn("nobody.runs", out)

        code, out, err = self.jobcast(broker, "list", "--type", "other.type", "--json")
        self.assertEqual(code, 0, err)
        self.assertEqual([j["id"] for j in json.loads(out)["jobs"]], [other["id"]])

        code, out, err = self.jobcast(broker, "cancel", job_id)
        self.assertEqual(code, 0, err)
        self.assertEqual(api.wait_state(job_id, "cancelled")["state"], "cancelled")
        code, out, err = self.jobcast(broker, "list", "--state", "cancelled")
        self.assertEqual([line.split()[0] for line in out.splitlines()[1:]], [job_id])

        # A finished job cannot be cancelled: the server's reason, exit 1.
        code, out, err = self.jobcast(broker, "cancel", job_id)
        self.assertEqual(code, 1)
        self.assertIn("job already finished", err)

    def test_unknown_jobs_exit_5(self):
        broker = self.start_broker()
        for command in ("get", "cancel", "watch"):
            code, out, err = self.jobcast(broker, command, "01NOSUCHJOB0000000000000000")
            self.assertEqual(code, 5, (command, err))
            self.assertIn("no such job", err)
            self.assertEqual(out, "")

    def test_usage_and_connection_errors(self):
        broker = self.start_broker()
        code, _, err = self.jobcast(broker)
        self.assertEqual(code, 2)
        self.assertIn("missing COMMAND", err)
        code, _, err = self.jobcast(broker, "submit", "llm.generate", "prompt")
        self.assertEqual(code, 2)
        self.assertIn("expected key=value", err)
        code, out, _ = self.jobcast(broker, "--help")
        self.assertEqual(code, 0)
        self.assertIn("Exit codes", out)

        dead = f"http://127.0.0.1:{free_port()}"
        code, _, err = self.jobcast(broker, "--url", dead, "list")
        self.assertEqual(code, 4)
        self.assertIn("refused", err)
        code, _, err = self.jobcast(broker, "--url", dead, "watch", "01X", "--retry-for", "500ms")
        self.assertEqual(code, 4)
        self.assertIn("giving up", err)

    def test_server_errors_are_shown(self):
        broker = self.start_broker()
        code, _, err = self.jobcast(broker, "submit", "bad type!", "x=1")
        self.assertEqual(code, 4)
        self.assertRegex(err, r"submit failed: .*\(HTTP 400\)")


if __name__ == "__main__":
    unittest.main()
