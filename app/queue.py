"""The job queue: RQ over Redis, JSON-serialized, each job carrying only a proposal id."""

from __future__ import annotations

from datetime import datetime

from redis import Redis
from rq import Queue, Retry
from rq.exceptions import DuplicateJobError
from rq.serializers import JSONSerializer

QUEUE_NAME = "hsgate"
# Retries wait for the RQ scheduler (workers run with it); each job is safe to run twice.
RETRY = Retry(max=3, interval=[5, 30, 120])
RESULT_TTL_S = 600
FAILURE_TTL_S = 7 * 24 * 3600


class JobQueue:
    def __init__(self, redis: Redis, name: str = QUEUE_NAME) -> None:
        self.rq = Queue(name, connection=redis, serializer=JSONSerializer)

    def enqueue(self, job: str, subject: str, step: str, at: datetime | None = None, retry: Retry = RETRY) -> None:
        """Queue `workers.jobs.<job>(subject)` once per (job, subject, step), at once or `at` a time.

        The subject is a proposal id (or a Slack channel, for digests); a repeat is dropped.
        """
        options = {
            "job_id": f"{job}-{subject}-{step}",
            "unique": True,
            "retry": retry,
            "result_ttl": RESULT_TTL_S,
            "failure_ttl": FAILURE_TTL_S,
        }
        try:
            if at is None:
                self.rq.enqueue(f"workers.jobs.{job}", subject, **options)
            else:
                self.rq.enqueue_at(at, f"workers.jobs.{job}", subject, **options)
        except DuplicateJobError:
            pass
