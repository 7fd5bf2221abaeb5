from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tokenboard.gateway.inspect import (
    MAX_DEPTH,
    InspectionError,
    _locate,
    bound_output,
    find_forbidden_field,
)


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({"model": "m", "base_url": "http://evil"}, "base_url"),
        ({"model": "m", "extra_body": {"apiBase": "http://evil"}}, "extra_body.apiBase"),
        (
            {"messages": [{"role": "user", "content": "hi", "metadata": {"x": [{"API-KEY": "sk"}]}}]},
            "messages[0].metadata.x[0].API-KEY",
        ),
        ({"provider": {"order": ["a"], "Authorization": "Bearer x"}}, "provider.Authorization"),
        ({"extra_headers": {"x": "y"}}, "extra_headers"),
        # Any name holding a credential's or an upstream's part, as proxies read them from bodies.
        ({"model": "m", "openai_api_key": "sk"}, "openai_api_key"),
        ({"model": "m", "extra_body": {"azure_api_base": "http://evil"}}, "extra_body.azure_api_base"),
        ({"metadata": {"aws_secret_key": "x"}}, "metadata.aws_secret_key"),
        # A schema's field names are data only inside the body: the body's own "parameters" is read.
        ({"parameters": {"base_url": "http://evil"}}, "parameters.base_url"),
    ],
)
def test_smuggled_upstreams_and_credentials_are_found_at_any_depth(body: dict[str, Any], path: str) -> None:
    assert find_forbidden_field(body) == path


def test_ordinary_content_passes_even_with_urls_in_it() -> None:
    body = {
        "model": "openai/gpt-4o",
        "messages": [
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}
        ],
        "max_tokens": 10,
    }
    assert find_forbidden_field(body) is None


def test_tool_schemas_may_name_any_argument() -> None:
    body = {
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "login",
                    "parameters": {
                        "type": "object",
                        "properties": {"password": {"type": "string"}, "headers": {"type": "object"}},
                    },
                },
            }
        ]
    }
    assert find_forbidden_field(body) is None


def test_deep_nesting_is_refused_not_crashed() -> None:
    body: Any = "leaf"
    for _ in range(200):
        body = {"a": body}
    with pytest.raises(InspectionError):
        find_forbidden_field(body)


KEYS = st.sampled_from(
    [
        "model",
        "messages",
        "role",
        "content",
        "text",
        "base_url",
        "API-Key",
        "parameters",
        "properties",
        "x",
        "n",
    ]
)
JSON_LEAVES = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=3)


def _outcome(find: Any, body: Any) -> tuple[str, Any]:
    try:
        return ("found", find(body))
    except InspectionError as exc:
        return ("refused", (str(exc), exc.field))


@given(
    st.recursive(
        JSON_LEAVES | st.tuples(st.integers()),
        lambda children: st.lists(children, max_size=3) | st.dictionaries(KEYS, children, max_size=3),
        max_leaves=30,
    )
)
def test_the_quick_scan_answers_exactly_as_the_full_walk(body: Any) -> None:
    assert _outcome(find_forbidden_field, body) == _outcome(_locate, body)


@pytest.mark.parametrize("depth", [MAX_DEPTH - 1, MAX_DEPTH, MAX_DEPTH + 1])
@pytest.mark.parametrize("leaf", ["x", {}, [], {"parameters": {"api_key": 1}}, {"base_url": 1}])
def test_the_quick_scan_agrees_at_the_depth_limit(depth: int, leaf: Any) -> None:
    body: Any = leaf
    for level in range(depth):
        body = {"a": body} if level % 2 else [body]
    assert _outcome(find_forbidden_field, body) == _outcome(_locate, body)


def test_output_is_clamped_to_the_model_and_n_is_bounded() -> None:
    body: dict[str, Any] = {"max_tokens": 10**9}
    limits = bound_output(body, model_max_output=4096, token_keys=("max_tokens",), default_output=1024)
    assert (limits.max_output_tokens, limits.clamped, body["max_tokens"]) == (4096, True, 4096)
    assert (
        bound_output(
            {}, model_max_output=4096, token_keys=("max_tokens",), default_output=1024
        ).max_output_tokens
        == 1024
    )
    for hostile in ({"max_tokens": -1}, {"max_tokens": "10"}, {"max_tokens": True}, {"n": 1000}, {"n": 0}):
        with pytest.raises(InspectionError):
            bound_output(
                dict(hostile), model_max_output=4096, token_keys=("max_tokens",), default_output=1024
            )


@pytest.mark.parametrize(
    ("given", "limit", "sent"),
    [
        # The upstream obeys either name: the request may cost the larger, and each is clamped.
        (
            {"max_tokens": 1, "max_completion_tokens": 100_000},
            4096,
            {"max_tokens": 1, "max_completion_tokens": 4096},
        ),
        (
            {"max_tokens": 10**12, "max_completion_tokens": 5},
            4096,
            {"max_tokens": 4096, "max_completion_tokens": 5},
        ),
        (
            {"max_tokens": 300, "max_completion_tokens": 200},
            300,
            {"max_tokens": 300, "max_completion_tokens": 200},
        ),
    ],
)
def test_every_name_of_the_output_bound_is_bounded(
    given: dict[str, int], limit: int, sent: dict[str, int]
) -> None:
    body: dict[str, Any] = dict(given)
    limits = bound_output(
        body, model_max_output=4096, token_keys=("max_completion_tokens", "max_tokens"), default_output=1024
    )
    assert limits.max_output_tokens == limit
    assert body == sent


@given(
    st.recursive(
        st.none() | st.integers() | st.text(max_size=5),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
        max_leaves=30,
    )
)
def test_inspection_never_crashes(body: Any) -> None:
    try:
        find_forbidden_field(body)
    except InspectionError:
        pass
