"""Without REDIS_URL hsgate starts its own Redis, shared by its processes and kept across restarts."""

from __future__ import annotations

from pathlib import Path

from redis import Redis

from app.redis_server import embedded_url, start_embedded


def test_a_second_process_reuses_the_running_embedded_server(tmp_path: Path) -> None:
    first = embedded_url(tmp_path)
    Redis.from_url(first).set("hsgate:test", "kept")

    second = embedded_url(tmp_path)

    assert second == first
    assert (tmp_path / "redis.url").read_text() == first
    assert Redis.from_url(second).get("hsgate:test") == b"kept"


def test_embedded_data_survives_a_restart(tmp_path: Path) -> None:
    server = start_embedded(tmp_path)
    client = Redis.from_url(server.connection_url)
    client.set("hsgate:proposal:x", "stored")
    client.execute_command("BGREWRITEAOF")
    client.close()
    server.stop()

    restarted = start_embedded(tmp_path)
    try:
        assert Redis.from_url(restarted.connection_url).get("hsgate:proposal:x") == b"stored"
    finally:
        restarted.stop()


def test_the_embedded_server_is_new_enough_for_rq(tmp_path: Path) -> None:
    server = start_embedded(tmp_path)
    try:
        major, minor = (
            int(part) for part in Redis.from_url(server.connection_url).info("server")["redis_version"].split(".")[:2]
        )
    finally:
        server.stop()

    assert (major, minor) >= (6, 2)
