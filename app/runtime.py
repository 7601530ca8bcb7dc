"""The services one hsgate process shares: built once from settings, reached by jobs and handlers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from redis import Redis

from app.callbacks import notify
from app.config import Settings
from app.hubspot import HubSpotGateway
from app.messenger import SlackMessenger, build_web_client
from app.policy import Policy
from app.queue import JobQueue
from app.store import Clock, ProposalStore, utc_now


@dataclass
class Runtime:
    settings: Settings
    redis: Redis
    store: ProposalStore
    hubspot: HubSpotGateway
    messenger: SlackMessenger
    queue: JobQueue
    policy: Policy
    clock: Clock

    @property
    def admins(self) -> tuple[str, ...]:
        """Slack users who may decide anything: HSGATE_ADMINS and the policy's [approvers] admins."""
        return tuple(dict.fromkeys([*self.settings.hsgate_admins, *self.policy.admins]))

    @classmethod
    def build(
        cls,
        settings: Settings,
        redis: Redis,
        clock: Clock = utc_now,
        hubspot_retry_delays: Sequence[float] = (0.5, 1.0, 2.0, 4.0),
        policy: Policy | None = None,
    ) -> Runtime:
        """Raises PolicyError when the policy file is malformed."""
        web_client = build_web_client(settings.slack_bot_token.get_secret_value(), settings.slack_api_url)
        runtime = cls(
            settings=settings,
            redis=redis,
            store=ProposalStore(redis, clock),
            hubspot=HubSpotGateway(
                settings.hubspot_access_token.get_secret_value(),
                settings.hubspot_api_url,
                redis,
                rate_limit=settings.hubspot_rate_limit,
                retry_delays=hubspot_retry_delays,
                portal_id=settings.hubspot_portal_id,
                ui_domain=settings.hubspot_ui_domain,
            ),
            messenger=SlackMessenger(web_client, redis),
            queue=JobQueue(redis),
            policy=policy or Policy.load(settings.hsgate_policy),
            clock=clock,
        )
        runtime.store.on_status = lambda pid, status: notify(runtime, pid, status)
        return runtime


_current: Runtime | None = None


def install(runtime: Runtime) -> None:
    """Make `runtime` the one RQ jobs use in this process (and in the worker's forks)."""
    global _current
    _current = runtime


def current() -> Runtime:
    if _current is None:
        raise RuntimeError("no hsgate runtime installed in this process")
    return _current
