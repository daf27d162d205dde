"""Assemble a room server with every capability the project ships."""

from __future__ import annotations

import os
from pathlib import Path

from taskroom.host.server.agent_calls import install_agent_calls
from taskroom.host.server.app import RoomServer
from taskroom.host.server.cluster.errors import ClusterError
from taskroom.host.server.studio_routes import install_studio
from taskroom.host.server.tasks import OnDamage, install_tasks, store_from_url
from taskroom.host.server.tasks.selection import POSTGRES_SCHEMES


def build_room_server(
    *,
    data_dir: Path | str,
    secret: str | None = None,
    public_url: str | None = None,
    on_damage: OnDamage = "refuse",
    store: str | None = None,
    cluster: str | None = None,
    node_url: str | None = None,
) -> RoomServer:
    """The full room server: core routing, tasks, agent calls and the Studio.

    ``on_damage`` says what to do with an empty or damaged task store (see ``OnDamage``).
    ``store`` (else ``TASKROOM_STORE``) names the task store: see ``store_from_url``. With
    ``cluster`` (a ``redis://`` URL) and ``node_url`` the server is one node of a
    cluster: it serves the rooms whose Redis lease it holds and sends other joins on.
    """
    server = RoomServer(data_dir=data_dir, secret=secret, public_url=public_url)
    store = store or os.environ.get("TASKROOM_STORE")
    tasks = store_from_url(store, data_dir, on_damage=on_damage)
    if cluster:
        if not store or not store.startswith(POSTGRES_SCHEMES):
            raise ClusterError(
                "--cluster needs a task store every node shares: --store postgresql://..."
            )
        if not node_url:
            raise ClusterError(
                "--cluster needs --node-url: the address other nodes send clients to"
            )
        try:
            from taskroom.host.server.cluster.install import FencedStore, install_cluster
        except ImportError as exc:
            raise ClusterError(
                f"--cluster needs the cluster extra ({exc}): pip install 'taskroom[cluster]'"
            ) from None
        node = install_cluster(server, redis_url=cluster, node_url=node_url)
        install_tasks(server, store=FencedStore(tasks, node), recover_at_start=False)
    else:
        install_tasks(server, store=tasks)
    server.room_setup.append(install_agent_calls)
    install_studio(server)
    return server
