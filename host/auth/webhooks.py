"""Signed webhooks between a room and the services it calls agents in from.

The room signs each webhook body with a secret it shares with the service: the
``Taskroom-Signature`` header is a short-lived HS256 JWT whose ``sha256`` claim is the
hex digest of the raw body. A service that checks it knows the call came from a room
holding the secret, that the body was not changed on the way, and that it is recent.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import time

import jwt

from taskroom.host.auth.tokens import SECRET_ENV
from taskroom.host.protocol.errors import TaskroomError

WEBHOOK_SECRET_ENV = "TASKROOM_WEBHOOK_SECRET"
SIGNATURE_HEADER = "Taskroom-Signature"
ROOM_CALL_EVENT = "room.call"
SIGNATURE_TTL = 300.0
"""How long a signature stays valid: long enough for clock skew, short against replays."""


class WebhookError(TaskroomError):
    """A webhook that must be refused, or no secret to check one with; the message says why."""


def sign_webhook(body: bytes, secret: str, *, ttl: float = SIGNATURE_TTL) -> str:
    """The ``Taskroom-Signature`` header value for ``body``."""
    now = int(time.time())
    claims = {"sha256": hashlib.sha256(body).hexdigest(), "iat": now, "exp": now + int(ttl)}
    return jwt.encode(claims, secret, algorithm="HS256")


def verify_webhook(body: bytes, header: str | None, secret: str) -> None:
    """Raise :class:`WebhookError` unless ``header`` signs exactly ``body`` with ``secret``."""
    if not header:
        raise WebhookError(f"the webhook is not signed: no {SIGNATURE_HEADER} header")
    try:
        claims = jwt.decode(
            header, secret, algorithms=["HS256"], options={"require": ["sha256", "iat", "exp"]}
        )
    except jwt.ExpiredSignatureError:
        raise WebhookError("the webhook signature has expired") from None
    except jwt.InvalidSignatureError:
        raise WebhookError(
            "the webhook signature does not match this service's webhook secret"
        ) from None
    except jwt.PyJWTError as exc:
        raise WebhookError(f"the webhook signature is invalid: {exc}") from None
    digest = claims["sha256"]
    if not isinstance(digest, str) or not hmac.compare_digest(
        digest, hashlib.sha256(body).hexdigest()
    ):
        raise WebhookError("the webhook body does not match its signature (changed in transit?)")


def service_webhook_secret(secret: str | None = None) -> str:
    """A service's webhook secret: ``secret``, else TASKROOM_WEBHOOK_SECRET, else TASKROOM_SECRET."""
    value = secret or os.environ.get(WEBHOOK_SECRET_ENV) or os.environ.get(SECRET_ENV)
    if not value:
        raise WebhookError(
            f"no webhook secret: pass webhook_secret or set {WEBHOOK_SECRET_ENV} "
            f"(or {SECRET_ENV}) to the secret the room signs its webhooks with"
        )
    return value
