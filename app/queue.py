"""The job queue: RQ over Redis, JSON-serialized, each job carrying only a proposal id."""

from __future__ import annotations

from redis import Redis
from rq import Queue, Retry
from rq.exceptions import DuplicateJobError
from rq.serializers import JSONSerializer

QUEUE_NAME = "hsgate"
# Retries wait for the RQ scheduler (workers run with it); each job is safe to run twice.
RETRY = Retry(max=3, interval=[5, 30, 120])
RESULT_TTL_S = 600


class JobQueue:
    def __init__(self, redis: Redis, name: str = QUEUE_NAME) -> None:
        self.rq = Queue(name, connection=redis, serializer=JSONSerializer)

    def enqueue(self, job: str, proposal_id: str, step: str) -> None:
        """Queue `workers.jobs.<job>(proposal_id)` once per (job, proposal, step): a repeat is dropped."""
        try:
            self.rq.enqueue(
                f"workers.jobs.{job}",
                proposal_id,
                job_id=f"{job}-{proposal_id}-{step}",
                unique=True,
                retry=RETRY,
                result_ttl=RESULT_TTL_S,
                failure_ttl=7 * 24 * 3600,
            )
        except DuplicateJobError:
            pass
