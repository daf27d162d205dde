"""Assemble a room server with every capability the project ships."""

from __future__ import annotations

from pathlib import Path

from taskroom.host.server.agent_calls import install_agent_calls
from taskroom.host.server.app import RoomServer
from taskroom.host.server.cluster.errors import ClusterError
from taskroom.host.server.studio_routes import install_studio
from taskroom.host.server.tasks import STORE_FILE, SQLiteTaskStore, TaskStore, install_tasks


def build_room_server(
    *,
    data_dir: Path | str,
    secret: str | None = None,
    public_url: str | None = None,
    cluster: str | None = None,
    node_url: str | None = None,
) -> RoomServer:
    """The full room server: core routing, tasks, agent calls and the Studio.

    With ``cluster`` (a ``redis://`` URL) and ``node_url`` the server is one node of a
    cluster: it serves the rooms whose Redis lease it holds and sends other joins on.
    """
    server = RoomServer(data_dir=data_dir, secret=secret, public_url=public_url)
    if cluster:
        if not node_url:
            raise ClusterError(
                "--cluster needs --node-url: the address other nodes send clients to"
            )
        try:
            from taskroom.host.server.cluster import FencedStore, install_cluster
        except ImportError as exc:
            raise ClusterError(
                f"--cluster needs the cluster extra ({exc}): pip install 'taskroom[cluster]'"
            ) from None
        node = install_cluster(server, redis_url=cluster, node_url=node_url)
        store: TaskStore = FencedStore(SQLiteTaskStore(Path(data_dir) / STORE_FILE), node)
        install_tasks(server, store=store, recover_at_start=False)
    else:
        install_tasks(server)
    server.room_setup.append(install_agent_calls)
    install_studio(server)
    return server
