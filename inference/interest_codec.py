"""The users table's bytes for a :class:`~inference.interest.UserState`: a JSON header and the
raw float32 vectors after it (compact, and readable by versions that came before a field)."""

from __future__ import annotations

import json
import struct

import numpy as np

from inference.interest import DomainInterest, FoldedPairs, UserState

# Serialisation: a JSON header followed by the raw float32 vectors, so a 384-d user costs
# ~1.5 KB per domain in the table instead of ~8 KB of JSON floats.
_HEADER = struct.Struct("<I")


def dumps(state: UserState) -> bytes:
    """Serialise a state for the table (compact, versioned)."""
    meta: dict = {
        "v": 1,
        "space": state.space,
        "offsets": {str(k): v for k, v in state.offsets.items()},
        "ids": state.event_ids,
        "n": state.events_applied,
        "domains": {},
    }
    if state.rate_tokens is not None:
        meta["rl"] = [state.rate_tokens, state.rate_at]
    blobs: list[bytes] = []
    # after every domain's vectors, so that a reader from before it was kept skips it
    pending: list[bytes] = []
    for name, d in state.domains.items():
        has_short = d.short is not None
        meta["domains"][name] = {
            "w": d.long_weight,
            "count": d.count,
            "t": d.last_time,
            "recent": d.recent,
            "dim": int(d.long_sum.shape[0]),
            "short": has_short,
        }
        if d.drift_ph is not None:
            meta["domains"][name]["ph"] = d.drift_ph
            meta["domains"][name]["dl"] = d.drift_left
        if d.drift_pending is not None:
            meta["domains"][name]["pd"] = d.drift_pending
        if d.negative:
            meta["domains"][name]["neg"] = d.negative
        blobs.append(np.asarray(d.long_sum, np.float32).tobytes())
        if has_short:
            blobs.append(np.asarray(d.short, np.float32).tobytes())
        if d.drift_pending_short is not None:  # only while a detection awaits confirmation
            meta["domains"][name]["ps"] = True
            pending.append(np.asarray(d.drift_pending_short, np.float32).tobytes())
    folded: list[bytes] = []  # after the pending vectors, for the same reason
    if state.folded is not None:
        f = state.folded
        meta["fp"] = {
            "s": f.space,
            "p": f.partition,
            "a": f.ages,
            "d": {name: int(v.shape[0]) for name, v in f.means.items()},
        }
        if any(w != 1.0 for w in f.weights.values()):
            meta["fp"]["w"] = f.weights
        folded = [np.asarray(v, np.float32).tobytes() for v in f.means.values()]
    head = json.dumps(meta, separators=(",", ":")).encode()
    return _HEADER.pack(len(head)) + head + b"".join(blobs) + b"".join(pending) + b"".join(folded)


def loads(raw: bytes | None) -> UserState:
    """Inverse of :func:`dumps`; None or empty gives a fresh state."""
    if not raw:
        return UserState()
    (n,) = _HEADER.unpack_from(raw)
    meta = json.loads(raw[_HEADER.size : _HEADER.size + n])
    pos = _HEADER.size + n
    state = UserState(
        offsets={int(k): v for k, v in meta["offsets"].items()},
        event_ids=list(meta["ids"]),
        events_applied=meta["n"],
        space=meta.get("space", ""),
    )
    if "rl" in meta:
        state.rate_tokens, state.rate_at = meta["rl"]
    for name, m in meta["domains"].items():
        dim = m["dim"]
        long_sum = np.frombuffer(raw, np.float32, dim, pos).copy()
        pos += 4 * dim
        short = None
        if m["short"]:
            short = np.frombuffer(raw, np.float32, dim, pos).copy()
            pos += 4 * dim
        state.domains[name] = DomainInterest(
            long_sum,
            m["w"],
            short,
            m["count"],
            m["t"],
            list(m["recent"]),
            m.get("ph"),
            m.get("dl", 0),
            m.get("pd"),
            negative=list(m.get("neg", ())),
        )
    for name, m in meta["domains"].items():
        if m.get("ps"):
            d = state.domains[name]
            d.drift_pending_short = np.frombuffer(raw, np.float32, m["dim"], pos).copy()
            pos += 4 * m["dim"]
    if "fp" in meta:
        f = meta["fp"]
        means = {}
        for name, dim in f["d"].items():
            means[name] = np.frombuffer(raw, np.float32, dim, pos).copy()
            pos += 4 * dim
        state.folded = FoldedPairs(f["s"], f["p"], f["a"], means, f.get("w", {}))
    return state
