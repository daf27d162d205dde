"""The services a room server may call agents in from, and where it may send webhooks.

A room never posts to a URL a participant names: ``room.call`` names a service in this
registry, and the registry says where it lives. Entries come from ``services.json`` in
the server's data folder (written by the operator, or by a participant holding the
``services.admin`` grant through ``services.register``). A service whose host is a name
is reached only at public addresses unless its entry says ``allow_private``; one listed
by a loopback or private IP literal is private on purpose, so it is reached as listed.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import re
import socket
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from taskroom.host.protocol import ErrorCode, RoomError

logger = logging.getLogger(__name__)

REGISTRY_FILE = "services.json"
SERVICE_NAME = r"^[A-Za-z0-9_.\-]{1,64}$"
AGENT_PATH = re.compile(r"^/[A-Za-z0-9_.\-/]{1,200}$")
MAX_SERVICES = 256


class ServiceEntry(BaseModel):
    """One service: its name in the room, its base URL, and the identities it may take."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=SERVICE_NAME)
    url: str = Field(min_length=1, max_length=2048)
    identities: list[str] | None = Field(default=None, max_length=256)
    """If set, the only identities the service's agents may join as."""
    allow_private: bool = False
    """Reach a service named by host name even where the name resolves to a loopback,
    link-local or private address (a service in the same private network)."""

    @field_validator("url")
    @classmethod
    def _base_url(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http(s) URL with a host")
        if parts.username or parts.password or parts.query or parts.fragment:
            raise ValueError("must carry no user, password, query or fragment")
        try:
            parts.port  # noqa: B018 - raises on a port out of range
        except ValueError as exc:
            raise ValueError(f"has an invalid port: {exc}") from None
        if _ip(parts.hostname) is None and re.fullmatch(r"[0-9.]+", parts.hostname):
            raise ValueError("names its host by a number that is not a plain IP address")
        return url.rstrip("/")

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or ""

    def private_by_listing(self) -> bool:
        """An IP literal in the URL is the operator's explicit choice of address."""
        ip = _ip(self.host)
        return ip is not None and not _is_public(ip)

    def may_reach(self, address: str) -> bool:
        ip = _ip(address)
        if ip is None:
            return False
        return _is_public(ip) or self.allow_private or self.private_by_listing()

    def public_view(self) -> dict[str, Any]:
        return {"name": self.name, "identities": self.identities}


class ServiceRegistry:
    """The server-wide registry, kept in ``<data_dir>/services.json``."""

    def __init__(self, data_dir: Path) -> None:
        self.path = Path(data_dir) / REGISTRY_FILE
        self._entries: dict[str, ServiceEntry] | None = None
        self._loaded_mtime: float | None = None

    def _mtime(self) -> float | None:
        try:
            return self.path.stat().st_mtime
        except OSError:
            return None

    def _load(self) -> dict[str, ServiceEntry]:
        """The entries, read again whenever the operator has changed the file."""
        mtime = self._mtime()
        if self._entries is not None and mtime == self._loaded_mtime:
            return self._entries
        entries: dict[str, ServiceEntry] = {}
        if self.path.exists():
            try:
                raw = json.loads(self.path.read_text())
                items = raw["services"] if isinstance(raw, dict) else None
                if not isinstance(items, list):
                    raise ValueError('expected {"services": [...]}')
                for item in items:
                    entry = ServiceEntry.model_validate(item)
                    entries[entry.name] = entry
            except (OSError, ValueError, KeyError, ValidationError) as exc:
                logger.error("the service registry %s is invalid: %s", self.path, exc)
                raise RoomError(
                    ErrorCode.UNAVAILABLE,
                    "the room server's service registry is invalid; its log says why",
                ) from None
        self._entries, self._loaded_mtime = entries, mtime
        return entries

    def get(self, name: str) -> ServiceEntry:
        entry = self._load().get(name)
        if entry is None:
            raise RoomError(
                ErrorCode.NOT_FOUND,
                f"no service {name!r} is registered with this room server",
                {"service": name},
            )
        return entry

    def entries(self) -> list[ServiceEntry]:
        return sorted(self._load().values(), key=lambda e: e.name)

    def register(self, entry: ServiceEntry) -> str:
        """Add or replace ``entry``; returns ``created`` or ``replaced``."""
        entries = dict(self._load())
        action = "replaced" if entry.name in entries else "created"
        if action == "created" and len(entries) >= MAX_SERVICES:
            raise RoomError(
                ErrorCode.INVALID_REQUEST, f"the registry holds {MAX_SERVICES} services at most"
            )
        entries[entry.name] = entry
        self._save(entries)
        return action

    def remove(self, name: str) -> None:
        entries = dict(self._load())
        if entries.pop(name, None) is None:
            raise RoomError(ErrorCode.NOT_FOUND, f"no service {name!r} is registered")
        self._save(entries)

    def _save(self, entries: dict[str, ServiceEntry]) -> None:
        """Write atomically, then adopt: a failed write changes nothing."""
        payload = {"services": [e.model_dump(exclude_defaults=True) for e in entries.values()]}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".json.tmp")
        try:
            tmp.write_text(json.dumps(payload, indent=2) + "\n")
            os.replace(tmp, self.path)
        except OSError as exc:
            logger.error("cannot write the service registry %s: %s", self.path, exc)
            raise RoomError(
                ErrorCode.UNAVAILABLE, "the room server cannot store its service registry"
            ) from None
        self._entries, self._loaded_mtime = entries, self._mtime()


def check_agent_path(path: object) -> str:
    """A path a service declares for an agent, refused unless it is a plain absolute path."""
    if not isinstance(path, str) or not AGENT_PATH.match(path) or ".." in path or "//" in path:
        raise RoomError(ErrorCode.FAILED, "the service declares an invalid path for the agent")
    return path


class GuardedResolver(AbstractResolver):
    """Resolves a service's host name, keeping only addresses its entry may reach, so the
    connection goes to an address that was checked (no second lookup to rebind)."""

    def __init__(self, entry: ServiceEntry) -> None:
        self.entry = entry
        self._inner = DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await self._inner.resolve(host, port, family)
        allowed = [r for r in found if self.entry.may_reach(r["host"])]
        if not allowed:
            raise OSError(f"{host} resolves only to addresses this service may not use")
        return allowed

    async def close(self) -> None:
        await self._inner.close()


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        ip = ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _is_public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return ip.is_global and not ip.is_multicast
