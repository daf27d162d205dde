"""Signed webhooks between a room and the services it calls agents in from.

The room signs each webhook with a secret it shares with the service: the
``Taskroom-Signature`` header is a short-lived HS256 JWT that binds the HTTP method, the
request path, the SHA-256 of the raw body, the time it was made and a random id
(``jti``). A service that checks it with a :class:`ReplayGuard` knows the call came from
a room holding the secret, for this path, unchanged and recent, and that it has not
accepted this very webhook before: a captured webhook cannot be replayed, nor sent to
another path.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time

import jwt

from taskroom.host.auth.tokens import SECRET_ENV
from taskroom.host.protocol.errors import TaskroomError

WEBHOOK_SECRET_ENV = "TASKROOM_WEBHOOK_SECRET"
SIGNATURE_HEADER = "Taskroom-Signature"
ROOM_CALL_EVENT = "room.call"
SIGNATURE_TTL = 300.0
"""How long a signature stays valid: long enough for clock skew, short against replays."""
CLOCK_SKEW = 30.0
"""How far in the future a signature's ``iat`` may be before it is refused."""
MAX_REMEMBERED = 100_000
"""Webhook ids a service remembers at once; beyond that it refuses webhooks until some
expire, rather than forgetting ids that could then be replayed."""


class WebhookError(TaskroomError):
    """A webhook that must be refused, or no secret to check one with; the message says why."""


def sign_webhook(
    method: str, path: str, body: bytes, secret: str, *, ttl: float = SIGNATURE_TTL
) -> str:
    """The ``Taskroom-Signature`` header value for ``method path`` carrying ``body``."""
    now = int(time.time())
    claims = {
        "method": method.upper(),
        "path": path,
        "sha256": hashlib.sha256(body).hexdigest(),
        "iat": now,
        "exp": now + int(ttl),
        "jti": secrets.token_urlsafe(18),
    }
    return jwt.encode(claims, secret, algorithm="HS256")


class ReplayGuard:
    """The ids of webhooks already accepted, each kept until its signature expires."""

    def __init__(self, max_remembered: int = MAX_REMEMBERED) -> None:
        self.max_remembered = max_remembered
        self._seen: dict[str, float] = {}

    def __len__(self) -> int:
        return len(self._seen)

    def claim(self, jti: str, expires_at: float) -> None:
        """Remember ``jti``; raise :class:`WebhookError` if it was seen before."""
        now = time.time()
        if jti in self._seen and self._seen[jti] >= now:
            raise WebhookError("the webhook was already delivered once (a replay?)")
        if len(self._seen) >= self.max_remembered:
            self._seen = {k: exp for k, exp in self._seen.items() if exp >= now}
            if len(self._seen) >= self.max_remembered:
                raise WebhookError("too many recent webhooks; try again in a few minutes")
        self._seen[jti] = expires_at


def verify_webhook(
    method: str,
    path: str,
    body: bytes,
    header: str | None,
    secret: str,
    guard: ReplayGuard,
) -> None:
    """Raise :class:`WebhookError` unless ``header`` signs exactly this request, once."""
    if not header:
        raise WebhookError(f"the webhook is not signed: no {SIGNATURE_HEADER} header")
    try:
        claims = jwt.decode(
            header,
            secret,
            algorithms=["HS256"],
            options={"require": ["method", "path", "sha256", "iat", "exp", "jti"]},
        )
    except jwt.ExpiredSignatureError:
        raise WebhookError("the webhook signature has expired") from None
    except jwt.InvalidSignatureError:
        raise WebhookError(
            "the webhook signature does not match this service's webhook secret"
        ) from None
    except jwt.PyJWTError as exc:
        raise WebhookError(f"the webhook signature is invalid: {exc}") from None
    if claims["method"] != method.upper() or claims["path"] != path:
        raise WebhookError(
            f"the webhook was signed for {claims['method']} {claims['path']}, "
            f"not {method.upper()} {path}"
        )
    digest = claims["sha256"]
    if not isinstance(digest, str) or not hmac.compare_digest(
        digest, hashlib.sha256(body).hexdigest()
    ):
        raise WebhookError("the webhook body does not match its signature (changed in transit?)")
    issued, expires, jti = claims["iat"], claims["exp"], claims["jti"]
    if not isinstance(issued, int | float) or issued > time.time() + CLOCK_SKEW:
        raise WebhookError("the webhook signature was issued in the future (clock skew?)")
    if not isinstance(jti, str) or not 8 <= len(jti) <= 128:
        raise WebhookError("the webhook signature has no valid id")
    guard.claim(jti, float(expires))


def service_webhook_secret(secret: str | None = None) -> str:
    """A service's webhook secret: ``secret``, else TASKROOM_WEBHOOK_SECRET, else TASKROOM_SECRET."""
    value = secret or os.environ.get(WEBHOOK_SECRET_ENV) or os.environ.get(SECRET_ENV)
    if not value:
        raise WebhookError(
            f"no webhook secret: pass webhook_secret or set {WEBHOOK_SECRET_ENV} "
            f"(or {SECRET_ENV}) to the secret the room signs its webhooks with"
        )
    return value
