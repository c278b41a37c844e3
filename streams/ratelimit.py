"""Per-user request-rate limit: a token bucket kept in the user's state.

The clock is the record timestamp, not the wall clock, and the bucket lives in the users table,
so a replay after a crash, or a consumer catching up on a backlog, makes the same decisions the
first pass made (a wall clock would refuse a whole backlog at once). Set the behaviour topic to
``message.timestamp.type=LogAppendTime`` if producers cannot be trusted with their timestamps.
"""

from __future__ import annotations

from dataclasses import dataclass

from inference.interest import UserState


@dataclass(frozen=True)
class UserRateLimit:
    """``per_s`` events per second sustained, ``burst`` at once; ``per_s`` 0 turns it off."""

    per_s: float
    burst: int

    def admit(self, state: UserState, at: float) -> bool:
        """Take one token from the user's bucket at time ``at``; False when it is empty.

        Only reads and refills the bucket fields, so calling it on a state that is then thrown
        away (nothing applied for the user in this batch) and reloaded gives the same answer.
        """
        if self.per_s <= 0:
            return True
        if state.rate_tokens is None:
            tokens = float(self.burst)
        else:
            elapsed = max(0.0, at - state.rate_at)
            tokens = min(float(self.burst), state.rate_tokens + elapsed * self.per_s)
        state.rate_at = max(state.rate_at, at)
        if tokens < 1.0:
            state.rate_tokens = tokens
            return False
        state.rate_tokens = tokens - 1.0
        return True
