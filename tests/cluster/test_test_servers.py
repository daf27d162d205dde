"""The throwaway servers the cluster tests stand on: they start, answer, die and come back."""

from __future__ import annotations

import os

import asyncpg
import pytest
import redis.asyncio as aioredis

from tests.servers import PostgresServer, RedisServer


async def test_redis_answers_and_can_be_killed_and_restarted(redis_server: RedisServer):
    client = aioredis.from_url(redis_server.url)
    try:
        assert await client.ping() is True
        await client.set("k", "v")
        redis_server.kill()
        with pytest.raises(aioredis.ConnectionError):
            await client.get("k")
        redis_server.start()
        assert await client.get("k") is None  # nothing is saved to disk
    finally:
        await client.aclose()


async def test_postgres_runs_unprivileged_and_gives_each_test_a_database(
    postgres_server: PostgresServer, postgres_dsn: str
):
    conn = await asyncpg.connect(postgres_dsn)
    try:
        assert await conn.fetchval("SELECT current_user") == PostgresServer.USER
        assert (
            await conn.fetchval("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == 0
        )
        superuser = await conn.fetchval(
            "SELECT rolsuper FROM pg_roles WHERE rolname = current_user"
        )
        assert superuser is True  # initdb's user: it may create the test databases
    finally:
        await conn.close()
    assert postgres_server.proc is not None and postgres_server.proc.poll() is None
    assert os.stat(f"/proc/{postgres_server.proc.pid}").st_uid != 0, "PostgreSQL ran as root"
