"""Assemble a room server with every capability the project ships."""

from __future__ import annotations

from pathlib import Path

from taskroom.host.server.agent_calls import install_agent_calls
from taskroom.host.server.app import RoomServer
from taskroom.host.server.studio_routes import install_studio
from taskroom.host.server.tasks import OnDamage, install_tasks


def build_room_server(
    *,
    data_dir: Path | str,
    secret: str | None = None,
    public_url: str | None = None,
    on_damage: OnDamage = "refuse",
) -> RoomServer:
    """The full room server: core routing, tasks, agent calls and the Studio.

    ``on_damage`` says what to do with an empty or damaged task store (see ``OnDamage``).
    """
    server = RoomServer(data_dir=data_dir, secret=secret, public_url=public_url)
    install_tasks(server, on_damage=on_damage)
    server.room_setup.append(install_agent_calls)
    install_studio(server)
    return server
