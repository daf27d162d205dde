"""Fixtures for the cluster tests: a throwaway PostgreSQL and Redis for the session.

``postgres_dsn`` gives each test a fresh database on the session's PostgreSQL.
"""

from tests.servers import postgres_dsn, postgres_server, redis_server

__all__ = ["postgres_dsn", "postgres_server", "redis_server"]
