"""Assemble a room server with every capability the project ships."""

from __future__ import annotations

import os
from pathlib import Path

from taskroom.host.server.agent_calls import install_agent_calls
from taskroom.host.server.app import RoomServer
from taskroom.host.server.studio_routes import install_studio
from taskroom.host.server.tasks import OnDamage, install_tasks, store_from_url


def build_room_server(
    *,
    data_dir: Path | str,
    secret: str | None = None,
    public_url: str | None = None,
    on_damage: OnDamage = "refuse",
    store: str | None = None,
) -> RoomServer:
    """The full room server: core routing, tasks, agent calls and the Studio.

    ``on_damage`` says what to do with an empty or damaged SQLite task store (see
    ``OnDamage``); ``store`` (else ``TASKROOM_STORE``) names the task store: see
    ``store_from_url``.
    """
    server = RoomServer(data_dir=data_dir, secret=secret, public_url=public_url)
    url = store or os.environ.get("TASKROOM_STORE")
    install_tasks(server, store=store_from_url(url, data_dir, on_damage=on_damage))
    server.room_setup.append(install_agent_calls)
    install_studio(server)
    return server
