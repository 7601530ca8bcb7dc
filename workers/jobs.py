"""RQ jobs: each takes a proposal id and hands it to the plain function that does the work."""

from __future__ import annotations

from rq import get_current_job

from app import callbacks, digest, expiry, outcomes, preparation, writing
from app.runtime import current


def _final_attempt() -> bool:
    """Whether RQ will not retry this job again, so a passing HubSpot outage must now end in `failed`."""
    job = get_current_job()
    return job is None or not job.retries_left


def prepare_card(proposal_id: str) -> None:
    preparation.prepare_card(current(), proposal_id, _final_attempt())


def apply_proposal(proposal_id: str) -> None:
    writing.apply_proposal(current(), proposal_id, _final_attempt())


def undo_proposal(proposal_id: str) -> None:
    writing.undo_proposal(current(), proposal_id, _final_attempt())


def publish_outcome(proposal_id: str) -> None:
    outcomes.publish_outcome(current(), proposal_id)


def refresh_card(proposal_id: str) -> None:
    outcomes.refresh_card(current(), proposal_id)


def send_digest(channel: str) -> None:
    digest.send(current(), channel)


def deliver_callback(subject: str) -> None:
    callbacks.deliver(current(), subject, _final_attempt())


def remind_proposal(proposal_id: str) -> None:
    expiry.remind(current(), proposal_id)


def expire_proposal(proposal_id: str) -> None:
    expiry.expire(current(), proposal_id)
