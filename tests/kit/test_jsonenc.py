"""The shared compact encoder writes what ``json.dumps(..., separators=(",", ":"))`` writes."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tokenboard.kit.jsonenc import compact_dumps, dumps_bytes, strict_loads

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4),
    max_leaves=25,
)


@given(_JSON)
def test_same_text_as_json_dumps(value: Any) -> None:
    assert compact_dumps(value) == json.dumps(value, separators=(",", ":"))


def test_non_ascii_is_escaped_and_nan_written_as_json_dumps_does() -> None:
    assert compact_dumps({"a": "é ☃", "b": [1, 2.5]}) == '{"a":"\\u00e9 \\u2603","b":[1,2.5]}'
    assert compact_dumps(math.inf) == json.dumps(math.inf)
    with pytest.raises(TypeError):
        compact_dumps({"a": object()})


# Any value ``json.loads`` can produce from a JSON document: big integers and lone surrogates included.
_PARSED = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=2**64, max_value=2**200)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(alphabet=st.characters(exclude_categories=())),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4),
    max_leaves=25,
)


@given(_PARSED)
def test_dumps_bytes_reads_back_as_the_same_value(value: Any) -> None:
    written = dumps_bytes(value)
    assert isinstance(written, bytes)
    assert strict_loads(written) == value
    assert json.loads(written) == json.loads(compact_dumps(value))


def test_dumps_bytes_falls_back_for_what_orjson_cannot_write() -> None:
    assert dumps_bytes({"seed": 2**70}) == b'{"seed":1180591620717411303424}'
    assert dumps_bytes({"a": "\ud800"}) == b'{"a":"\\ud800"}'
    assert dumps_bytes({"a": "é"}) == '{"a":"é"}'.encode()


@pytest.mark.parametrize(
    "document", [b'{"a": NaN}', b'{"a": Infinity}', b'{"a": -Infinity}', b'{"a": 1', b"\xff"]
)
def test_strict_loads_refuses_what_is_not_json(document: bytes) -> None:
    with pytest.raises(ValueError):
        strict_loads(document)


def test_strict_loads_keeps_big_integers_exact() -> None:
    assert strict_loads(b'{"seed": 123456789012345678901234567890}') == {
        "seed": 123456789012345678901234567890
    }
