"""The SDK conformance worker (tests/conformance): serves `conformance.count`.

    conformance_worker.py --broker tcp://127.0.0.1:P1[,tcp://...] --name NAME --capacity K
                          [--heartbeat-ms MS] [--max-unacked N]

Prints "ready" once its worker has started, exits 0 on SIGTERM after a
graceful stop (running jobs are handed back). --heartbeat-ms is the broker's
to choose (welcome.heartbeat_ms); it is accepted for the common command line.
"""
import argparse
import logging
import sys

from jobcast import JobFailed, Worker

MAX_COUNT = 1_000_000


def integer(value):
    return isinstance(value, int) and not isinstance(value, bool)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--broker", required=True, help="endpoints, comma-separated")
    parser.add_argument("--name", required=True)
    parser.add_argument("--capacity", type=int, default=1)
    parser.add_argument("--heartbeat-ms", type=int)
    parser.add_argument("--max-unacked", type=int, default=8 << 20, help="bytes")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(message)s")

    w = Worker(brokers=args.broker.split(","), types=["conformance.count"],
               capacity=args.capacity, name=args.name, max_unacked_bytes=args.max_unacked)

    @w.handler("conformance.count")
    async def count(job):
        p = job.params
        n = p.get("count") if isinstance(p, dict) else None
        if not integer(n) or not 0 <= n <= MAX_COUNT:
            raise JobFailed(f'param "count" must be an integer 0..{MAX_COUNT}')
        every_ms = p.get("every_ms", 0)
        checkpoint_every = p.get("checkpoint_every", 0)
        progress_every = p.get("progress_every", 0)
        fail_at = p.get("fail_at")
        start = int(job.checkpoint.decode()) if job.checkpoint else 0
        for i in range(start, n):
            if job.cancelled:
                break
            if fail_at == i:
                raise JobFailed(p.get("message", f"failed at {fail_at}"),
                                retryable=bool(p.get("retryable", False)))
            await job.token(f"{i} ")
            if progress_every and (i + 1) % progress_every == 0:
                await job.progress((i + 1) / n)
            if checkpoint_every and (i + 1) % checkpoint_every == 0:
                await job.save_checkpoint(str(i + 1).encode())
            if every_ms:
                await job.wait_cancelled(every_ms / 1000)
        return {"count": n, "start": start}

    print("ready", flush=True)
    w.run()  # until SIGTERM

if __name__ == "__main__":
    main()
