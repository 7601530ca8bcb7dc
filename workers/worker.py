"""The worker process: an RQ worker with its scheduler (for retries), jobs run in forks."""

from __future__ import annotations

from rq import SimpleWorker, Worker
from rq.serializers import JSONSerializer

from app.runtime import Runtime, install


def run_worker(runtime: Runtime, burst: bool = False, fork: bool = True) -> bool:
    """Work the hsgate queue; with `burst`, return once it is empty. The runtime is built before forking."""
    install(runtime)
    worker_class = Worker if fork else SimpleWorker
    worker = worker_class([runtime.queue.rq], connection=runtime.redis, serializer=JSONSerializer)
    return worker.work(burst=burst, with_scheduler=not burst, logging_level="WARNING")
