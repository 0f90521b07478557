"""Shared by the Python SDK tests: the integration harness (real broker
binaries on loopback, from JOBCAST_BIN), the SDK on sys.path, and ways to run
a Python worker as a process or inside the test."""

import asyncio
import os
import sys
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
SDK = os.path.dirname(HERE)
EXAMPLES = os.path.join(SDK, "examples")
REPO = os.path.dirname(os.path.dirname(SDK))
sys.path.insert(0, SDK)
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))

import harness  # noqa: E402
import jobcast  # noqa: E402

FAKE_OPENAI = os.path.join(REPO, "tests", "integration", "fake_openai.py")


class PyWorker(harness.Process):
    """An example script of the SDK run as a worker process (its log on stderr)."""

    def __init__(self, script, args=(), env=None, name=None):
        full_env = {"PYTHONPATH": SDK, "PYTHONUNBUFFERED": "1"}
        full_env.update(env or {})
        super().__init__([sys.executable, os.path.join(EXAMPLES, script), *args], env=full_env,
                         name=name or script)


class InProcess:
    """A jobcast.Worker serving on its own thread and event loop, so a test
    can read its stats and its handlers' state."""

    def __init__(self, worker):
        self.worker = worker
        self.error = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        try:
            asyncio.run(self.worker.serve())
        except BaseException as e:  # reported by stop()
            self.error = e

    def stop(self):
        self.worker.stop()
        self.thread.join(30)
        assert not self.thread.is_alive(), "worker did not stop"
        if self.error:
            raise self.error


class SdkTest(harness.JobcastTest, harness.ZmqPeers):
    def start_py_worker(self, script, args=(), env=None, name=None):
        w = PyWorker(script, args, env, name)
        self.processes.append(w)
        self.addCleanup(w.kill)
        return w

    def conformance_worker(self, broker, name, capacity=1, extra=()):
        endpoint = getattr(broker, "zmq", broker)
        return self.start_py_worker("conformance_worker.py", ["--broker", endpoint, "--name", name,
                                                             "--capacity", str(capacity),
                                                             *extra], name=name)

    def in_process(self, worker):
        running = InProcess(worker)
        self.addCleanup(lambda: running.thread.is_alive() and running.stop())
        return running

    def tokens(self, api, job_id):
        return [e["data"]["text"] for e in api.events(job_id) if e["kind"] == "token"]


def counted(start, count):
    """The conformance worker's tokens for i in start..count-1."""
    return [f"{i} " for i in range(start, count)]
