"""The ten-line jobcast worker: python3 hello.py, then submit a "hello" job."""
import os
from jobcast import Worker

w = Worker(brokers=[os.environ.get("JOBCAST_BROKER", "tcp://127.0.0.1:5555")], types=["hello"])

@w.handler("hello")
async def hello(job):
    for word in ("hello", ", ", job.params.get("name", "world"), "!"):
        await job.token(word)
    return {"greeted": job.params.get("name", "world")}

w.run()
