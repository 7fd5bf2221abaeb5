"""Compact JSON for the gateway's request path.

``compact_dumps``: ``json.dumps(value, separators=(",", ":"))`` by one shared encoder. ``json.dumps`` with any
argument builds a new ``JSONEncoder`` per call, which costs about as much again as the encoding of a small
body (7.0 us against 3.2 us for a chat request, measured 2026-12-03).

``dumps_bytes``: the same document as UTF-8 bytes, by orjson (a chat request's body in 0.4 us against 4.1 us,
measured 2026-12-06). What orjson cannot write goes through ``compact_dumps``: integers beyond 64 bits and
strings with lone surrogates, both of which ``json.loads`` accepts. Two differences remain, neither of which
changes what a reader parses: non-ASCII characters are written as UTF-8 rather than ``\\u`` escapes, and
floats keep their value but may be spelled differently (``1e+16`` for ``1e16``). Not-a-number and infinite
floats, which orjson would write as ``null``, never reach it from the gateway: its request parser refuses
them (``strict_loads``).
"""

from __future__ import annotations

import json
from typing import Any

import orjson

compact_dumps = json.JSONEncoder(separators=(",", ":")).encode


def dumps_bytes(value: Any) -> bytes:
    """Compact JSON of ``value`` as UTF-8 bytes."""
    try:
        return orjson.dumps(value)
    except TypeError:  # orjson.JSONEncodeError: a big integer, a lone surrogate
        return compact_dumps(value).encode()


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


_STRICT = json.JSONDecoder(parse_constant=_refuse_constant)


def strict_loads(raw: bytes) -> Any:
    """Parse a UTF-8 JSON document as ``json.loads`` does, but refuse ``NaN`` and ``Infinity`` (not JSON).

    Raises ``ValueError`` (undecodable bytes included). Integers of any size and lone surrogate escapes are
    kept exactly, as ``json.loads`` keeps them (orjson's parser would turn big integers into floats).
    """
    return _STRICT.decode(raw.decode("utf-8"))
