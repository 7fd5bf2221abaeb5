"""The shared compact encoder writes what ``json.dumps(..., separators=(",", ":"))`` writes."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tokenboard.kit.jsonenc import compact_dumps

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
