"""The ten-line jobcast worker: python3 hello.py, then submit a "hello" job."""
from jobcast import Worker

w = Worker(brokers=["tcp://127.0.0.1:5555"], types=["hello"], capacity=4)

@w.handler("hello")
async def hello(job):
    for word in ("hello", ", ", job.params.get("name", "world"), "!"):
        await job.token(word)
    return {"greeted": job.params.get("name", "world")}

w.run()
