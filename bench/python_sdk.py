#!/usr/bin/env python3
"""Events/s one Python SDK worker process emits (64-byte tokens, committed and
acknowledged by the broker) and its CPU per event. By hand:

    bench/python_sdk.py [--bin build/release/bin] [--events 200000] [--jobs 4] [--sync]

Starts a broker (temp db) and one worker process serving `bench.tokens`,
submits --jobs jobs that together emit --events tokens as fast as the worker
can, and reports the rate from the first `running` to the last job settled
(every token acknowledged: the job's done is acked after all its tokens) and
the worker's (and the broker's) user+system CPU per event (from /proc). Results are printed, not
asserted.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import harness  # noqa: E402

WORKER = r"""
import sys
from jobcast import Worker
w = Worker(brokers=[sys.argv[1]], types=["bench.tokens", "bench.tokens.sync"],
           capacity=int(sys.argv[2]), name="bench")
TOKEN = "x" * 64

@w.handler("bench.tokens")
async def tokens(job):
    token = job.token
    for _ in range(job.params["count"]):
        await token(TOKEN)
    return {"count": job.params["count"]}

@w.handler("bench.tokens.sync")
def tokens_sync(job):
    for _ in range(job.params["count"]):
        job.token(TOKEN)
    return {"count": job.params["count"]}

print("ready", flush=True)
w.run()
"""


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bin", default=os.path.join(ROOT, "build", "release", "bin"))
    parser.add_argument("--events", type=int, default=200000)
    parser.add_argument("--jobs", type=int, default=4)
    parser.add_argument("--sync", action="store_true", help="plain (thread-run) handlers")
    parser.add_argument("--profile", help="run the worker under cProfile, stats to this file")
    args = parser.parse_args()

    tmp = tempfile.TemporaryDirectory(prefix="jobcast-bench-py-")
    harness.BIN = args.bin
    broker = harness.Broker(os.path.join(tmp.name, "jobcast.db"))
    client = harness.Client(broker.host, broker.port)
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "workers", "python"))
    argv = [sys.executable]
    if args.profile:
        argv += ["-m", "cProfile", "-o", args.profile]
    script = os.path.join(tmp.name, "bench_worker.py")
    with open(script, "w") as f:
        f.write(WORKER)
    worker = subprocess.Popen(argv + [script, broker.zmq, str(args.jobs)], env=env,
                              stdout=subprocess.PIPE)
    try:
        assert worker.stdout.readline().strip() == b"ready"
        job_type = "bench.tokens.sync" if args.sync else "bench.tokens"
        per_job = args.events // args.jobs
        cpu0, broker_cpu0 = cpu_seconds(worker.pid), cpu_seconds(broker.proc.pid)
        t0 = time.monotonic()
        jobs = [client.submit(job_type, {"count": per_job})["id"] for _ in range(args.jobs)]
        for job in jobs:
            state = client.wait_state(job, ("succeeded", "failed"), timeout=600)["state"]
            assert state == "succeeded", state
        elapsed = time.monotonic() - t0
        cpu = cpu_seconds(worker.pid) - cpu0
        broker_cpu = cpu_seconds(broker.proc.pid) - broker_cpu0
        events = per_job * args.jobs
        tokens = sum(1 for e in client.events(jobs[0]) if e["kind"] == "token")
        assert tokens == per_job, (tokens, per_job)
        print(json.dumps({
            "handlers": "sync" if args.sync else "async", "jobs": args.jobs, "events": events,
            "seconds": round(elapsed, 3), "events_per_s": round(events / elapsed),
            "worker_cpu_us_per_event": round(cpu / events * 1e6, 2),
            "broker_cpu_us_per_event": round(broker_cpu / events * 1e6, 2)}))
    finally:
        worker.terminate()
        worker.wait(timeout=30)
        broker.kill()
        tmp.cleanup()


if __name__ == "__main__":
    main()
