"""Room leases in Redis: which node owns a room, for how long, under which fencing token.

A lease is one key, ``taskroom:lease:<room>`` = ``"<fence>|<node url>"``, set with a TTL.
Every acquisition increments ``taskroom:fence:<room>``, so a later owner always holds a
larger fencing token than an earlier one. Acquire, renew and release are Lua scripts:
each reads and writes in one atomic step, so two nodes racing for a room cannot both win
and a node whose lease was taken over cannot extend the new owner's.
"""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

LEASE_KEY = "taskroom:lease:{room}"
FENCE_KEY = "taskroom:fence:{room}"

# Take the room when nobody holds it, or when the holder is this node's own address (a
# node restarted on the same URL must not wait out its previous life's lease).
_ACQUIRE = """
local cur = redis.call('GET', KEYS[1])
if cur then
  local sep = string.find(cur, '|', 1, true)
  if string.sub(cur, sep + 1) ~= ARGV[1] then return {0, cur} end
end
local fence = redis.call('INCR', KEYS[2])
local value = fence .. '|' .. ARGV[1]
redis.call('SET', KEYS[1], value, 'PX', ARGV[2])
return {1, value}
"""

# Extend our own lease. If it lapsed (Redis was unreachable for a while) and nobody has
# acquired the room since (the fence counter is still ours), take it back as it was.
_RENEW = """
local cur = redis.call('GET', KEYS[1])
if cur == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not cur and redis.call('GET', KEYS[2]) == ARGV[3] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


@dataclass(frozen=True)
class Holder:
    """Who holds a room's lease: the node's URL and the fencing token it acquired."""

    node_url: str
    fence: int

    @property
    def value(self) -> str:
        return f"{self.fence}|{self.node_url}"

    @classmethod
    def parse(cls, value: str | bytes) -> Holder:
        text = value.decode() if isinstance(value, bytes) else value
        fence, _, url = text.partition("|")
        return cls(url, int(fence))


class LeaseTable:
    """The Redis operations on room leases; no timing or policy of its own."""

    def __init__(self, redis: Redis, ttl: float) -> None:
        self.redis = redis
        self.ttl_ms = int(ttl * 1000)
        self._acquire = redis.register_script(_ACQUIRE)
        self._renew = redis.register_script(_RENEW)
        self._release = redis.register_script(_RELEASE)

    @staticmethod
    def keys(room: str) -> list[str]:
        return [LEASE_KEY.format(room=room), FENCE_KEY.format(room=room)]

    async def acquire(self, room: str, node_url: str) -> tuple[bool, Holder]:
        """Try to take ``room``: (True, our holder) or (False, the current holder)."""
        won, value = await self._acquire(keys=self.keys(room), args=[node_url, self.ttl_ms])
        return bool(won), Holder.parse(value)

    async def renew(self, leases: dict[str, Holder]) -> dict[str, bool]:
        """Extend several leases in one round trip; False for each one this node lost."""
        if not leases:
            return {}
        pipe = self.redis.pipeline(transaction=False)
        for room, holder in leases.items():
            await self._renew(
                keys=self.keys(room), args=[holder.value, self.ttl_ms, holder.fence], client=pipe
            )
        answers = await pipe.execute()
        return {room: bool(ok) for room, ok in zip(leases, answers, strict=True)}

    async def release(self, room: str, holder: Holder) -> None:
        """Give the room up at once (a clean shutdown), if the lease is still ours."""
        await self._release(keys=self.keys(room), args=[holder.value])

    async def holder(self, room: str) -> Holder | None:
        value = await self.redis.get(LEASE_KEY.format(room=room))
        return Holder.parse(value) if value is not None else None
