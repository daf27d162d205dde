"""Rooms across nodes: each room owned by one node through a Redis lease.

The package itself imports nothing, so ``cluster.errors`` loads without the cluster extra
(redis, asyncpg); the parts that need it are imported from their modules: ``install``
(``install_cluster``), ``node``, ``lease``, ``fenced_store``, ``redirect``.
"""
