"""The ``speed`` limit of block jobs: a token bucket over bytes copied.

QEMU accounts bytes a job has *copied* (skipped ranges are free) and makes the
job sleep once it has used its quota for the current 100 ms slice. A token bucket
with a capacity of one slice gives the same long-run rate and the same burst
behaviour: the first chunk goes out at once, later ones wait for tokens.
"""

from __future__ import annotations

SLICE_SECONDS = 0.1


class RateLimiter:
    """Bytes-per-second limit; ``speed`` 0 means unlimited (QEMU's default)."""

    def __init__(self, speed: int = 0, now: float = 0.0) -> None:
        self._speed = 0
        self._tokens = 0.0
        self._stamp = now
        self.set_speed(speed, now)

    @property
    def speed(self) -> int:
        return self._speed

    def set_speed(self, speed: int, now: float) -> None:
        """Change the limit; the bucket starts full so a new limit applies from the next chunk."""
        self._speed = speed
        self._tokens = speed * SLICE_SECONDS
        self._stamp = now

    def _refill(self, now: float) -> None:
        if self._speed:
            elapsed = max(0.0, now - self._stamp)
            self._tokens = min(self._speed * SLICE_SECONDS, self._tokens + elapsed * self._speed)
        self._stamp = now

    def account(self, nbytes: int, now: float) -> None:
        """Record ``nbytes`` copied."""
        if not self._speed:
            return
        self._refill(now)
        self._tokens -= nbytes

    def delay(self, now: float) -> float:
        """Seconds to sleep before the next chunk may be copied (0 when allowed now)."""
        if not self._speed:
            return 0.0
        self._refill(now)
        return 0.0 if self._tokens >= 0 else -self._tokens / self._speed
