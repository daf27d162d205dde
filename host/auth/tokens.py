"""Participant tokens: HS256 JWTs naming the room, identity, role, grants and expiry."""

from __future__ import annotations

import os
import secrets
import time
from pathlib import Path
from typing import Any

import jwt
from pydantic import BaseModel, Field, ValidationError

from taskroom.host.protocol.errors import TaskroomError

SECRET_ENV = "TASKROOM_SECRET"
SECRET_FILE = "secret.key"
ISSUER = "taskroom"
DEFAULT_DATA_DIR = Path(".taskroom")
ALL_ROOMS = "*"

ROLES = ("user", "agent", "tool", "admin", "observer")

DEFAULT_GRANTS: dict[str, list[str]] = {
    "user": ["tools.call", "toolkits.register", "schemas.write", "room.call", "tasks.start"],
    "agent": ["tools.call", "toolkits.register", "schemas.write", "room.call", "tasks.start"],
    "tool": ["tools.call", "toolkits.register", "schemas.write"],
    "admin": ["*"],
    "observer": [],
}
"""Grants a role gets when a token names none. ``tasks.all`` lets a participant see and
cancel every task in the room, not only its own; ``*`` grants everything."""

SERVICES_ADMIN_GRANT = "services.admin"
"""Lets a participant add services to, and remove them from, the room server's registry."""
TOKEN_REFRESH_GRANT = "token.refresh"
"""Lets a participant swap its token for a fresh one with the same claims."""
AGENT_TOKEN_TTL = 300.0
"""Lifetime of a token the room mints for an agent it calls in: long enough to join, and
refreshed over the live connection (``token.refresh``) so reconnects keep working."""
AGENT_GRANTS = ["tools.call", "toolkits.register", "schemas.write", TOKEN_REFRESH_GRANT]
"""What a called-in agent needs: host its toolkit, call tools, publish the schemas it
requires, and refresh its token. It cannot call more agents in, nor start tasks."""


class TokenError(TaskroomError):
    """A token the room will not accept; the message says why."""


class ParticipantToken(BaseModel):
    room: str
    identity: str = Field(min_length=1, max_length=128)
    role: str = "user"
    grants: list[str] = Field(default_factory=list)
    expires_at: float | None = None

    def allows(self, grant: str) -> bool:
        return "*" in self.grants or grant in self.grants

    def to_jwt(self, secret: str) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": ISSUER,
            "iat": now,
            "room": self.room,
            "sub": self.identity,
            "role": self.role,
            "grants": self.grants,
        }
        if self.expires_at is not None:
            claims["exp"] = int(self.expires_at)
        return jwt.encode(claims, secret, algorithm="HS256")

    @classmethod
    def from_jwt(cls, token: str, secret: str) -> ParticipantToken:
        try:
            claims = jwt.decode(
                token,
                secret,
                algorithms=["HS256"],
                issuer=ISSUER,
                options={"require": ["sub", "room", "iss"]},
            )
        except jwt.ExpiredSignatureError:
            raise TokenError("token has expired") from None
        except jwt.InvalidSignatureError:
            raise TokenError("token signature is invalid (signed with another secret?)") from None
        except jwt.PyJWTError as exc:
            raise TokenError(f"token is invalid: {exc}") from None
        role = claims.get("role", "user")
        if role not in ROLES:
            raise TokenError(f"token names unknown role {role!r}")
        grants = claims.get("grants")
        if not isinstance(grants, list):
            raise TokenError("token grants must be a list")
        try:
            return cls(
                room=str(claims["room"]),
                identity=str(claims["sub"]),
                role=role,
                grants=[str(g) for g in grants],
                expires_at=claims.get("exp"),
            )
        except ValidationError as exc:
            # Signed by the room's secret but not a token this room issues (an empty or
            # overlong identity): refused like any other bad token, never a server error.
            names = {"identity": "sub"}
            problems = [
                f"{names.get(str(err['loc'][0]), err['loc'][0])}: {err['msg']}"
                for err in exc.errors()[:3]
            ]
            raise TokenError(f"token claims are invalid: {'; '.join(problems)}") from None


def create_token(
    secret: str,
    *,
    room: str,
    identity: str,
    role: str = "user",
    grants: list[str] | None = None,
    ttl: float | None = 24 * 3600,
) -> str:
    """Mint a token; with no grants given, the role's defaults apply."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; choose one of {', '.join(ROLES)}")
    token = ParticipantToken(
        room=room,
        identity=identity,
        role=role,
        grants=list(DEFAULT_GRANTS[role] if grants is None else grants),
        expires_at=time.time() + ttl if ttl else None,
    )
    return token.to_jwt(secret)


def load_secret(data_dir: Path | str | None = None, *, create: bool = True) -> str:
    """The signing secret: TASKROOM_SECRET, else ``<data_dir>/secret.key``.

    The file is created owner-only on first use so a local room and the CLI that mints
    its tokens agree without configuration.
    """
    env = os.environ.get(SECRET_ENV)
    if env:
        return env
    path = Path(data_dir or DEFAULT_DATA_DIR) / SECRET_FILE
    if path.exists():
        try:
            value = path.read_text().strip()
        except OSError as exc:
            raise TokenError(f"cannot read the secret file {path}: {exc}") from None
        if not value:
            raise TokenError(f"the secret file {path} is empty")
        return value
    if not create:
        raise TokenError(f"no {SECRET_ENV} and no secret file at {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(value)
    return value
