"""jobcast worker SDK: stream job output to a jobcast broker (worker protocol v1).

    from jobcast import Worker, JobFailed

    w = Worker(brokers=["tcp://127.0.0.1:5555"], types=["hello"], capacity=4)

    @w.handler("hello")
    async def hello(job):
        await job.token("hi " + job.params.get("name", "there"))
        return {"ok": True}

    w.run()
"""

from .job import Job, JobFailed, SyncJob
from .worker import Backoff, Worker, WorkerStats

__version__ = "1.0.0"
__all__ = ["Backoff", "Job", "JobFailed", "SyncJob", "Worker", "WorkerStats", "__version__"]
