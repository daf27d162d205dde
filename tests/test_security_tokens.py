"""Tokens signed with the room's secret but with claims the room never issues are refused
with a reason (HTTP 401), never an internal error."""

from __future__ import annotations

import time

import aiohttp
import jwt
import pytest

from taskroom.host.auth.tokens import ISSUER, ParticipantToken, TokenError
from taskroom.host.client.room_client import RoomClient
from taskroom.host.protocol import ErrorCode, RoomError


def signed(secret: str, **claims: object) -> str:
    base: dict[str, object] = {
        "iss": ISSUER,
        "iat": int(time.time()),
        "room": "test",
        "sub": "alice",
        "role": "user",
        "grants": ["tools.call"],
    }
    base.update(claims)
    return jwt.encode(base, secret, algorithm="HS256")


BAD_CLAIMS = [
    ({"sub": ""}, "sub"),
    ({"sub": "x" * 200}, "sub"),
    ({"role": "king"}, "unknown role"),
    ({"grants": "tools.call"}, "grants must be a list"),
    ({"exp": "tomorrow"}, "invalid"),
]


@pytest.mark.parametrize(("claims", "reason"), BAD_CLAIMS)
def test_bad_claims_raise_token_error(secret, claims, reason):
    with pytest.raises(TokenError, match=reason):
        ParticipantToken.from_jwt(signed(secret, **claims), secret)


@pytest.mark.parametrize(("claims", "reason"), BAD_CLAIMS)
async def test_the_room_refuses_bad_claims_with_401(room_server, secret, claims, reason):
    token = signed(secret, **claims)
    url = f"{room_server.base_url}/rooms/test"
    async with aiohttp.ClientSession() as session:
        async with session.get(url, headers={"Authorization": f"Bearer {token}"}) as answer:
            assert answer.status == 401
            assert reason in (await answer.json())["error"]
    client = RoomClient(room_server.base_url, "test", token, reconnect=False)
    with pytest.raises(RoomError) as refused:
        await client.connect()
    assert refused.value.code is ErrorCode.PERMISSION_DENIED
    assert "(401)" in refused.value.message and reason in refused.value.message


async def test_the_room_keeps_serving_after_bad_tokens(room_server, secret, make_token):
    for claims, _ in BAD_CLAIMS:
        client = RoomClient(room_server.base_url, "test", signed(secret, **claims))
        with pytest.raises(RoomError):
            await client.connect()
    async with RoomClient(room_server.base_url, "test", make_token()) as alice:
        assert (await alice.request("ping"))["pong"] is True
