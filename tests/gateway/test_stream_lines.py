"""The stream relay's byte-level pieces: line splitting across chunks and the model-name rewrite."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from tokenboard.gateway.service import _ModelRewrite, _split_lines

EVENT_LINES = st.lists(
    st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"), max_size=30),
    max_size=8,
)


def relay(chunks: list[bytes]) -> list[bytes]:
    out: list[bytes] = []
    pending = b""
    for chunk in chunks:
        lines, pending = _split_lines(pending + chunk)
        out += lines
    if pending:  # as the relay does at the end of the stream
        last, _ = _split_lines(pending + b"\n")
        out += last
    return out


@given(EVENT_LINES, st.sampled_from([b"\n", b"\r\n", b"\r"]), st.lists(st.integers(0, 400), max_size=6))
def test_lines_are_the_same_however_the_stream_is_cut(
    lines: list[str], ending: bytes, cuts: list[int]
) -> None:
    data = b"".join(line.encode() + ending for line in lines)
    points = sorted({min(c, len(data)) for c in cuts})
    chunks = [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]
    assert relay(chunks) == [line.encode() for line in lines]


def test_a_last_line_without_its_break_is_kept_for_the_end() -> None:
    assert relay([b"data: 1\n\nda", b"ta: 2"]) == [b"data: 1", b"", b"data: 2"]


def test_the_model_name_is_replaced_in_place_in_compact_json() -> None:
    rewrite = _ModelRewrite("gpt-4o-mini", "openai/gpt-4o-mini")
    line = b'data: {"id":"c1","model":"gpt-4o-mini","choices":[{"delta":{"content":"model"}}]}'
    event = json.loads(line[6:])
    out = rewrite(line, event)
    assert out == line.replace(b'"gpt-4o-mini"', b'"openai/gpt-4o-mini"')
    assert json.loads(out[6:])["choices"] == event["choices"]


def test_other_shapes_are_re_serialized_from_the_parsed_event() -> None:
    rewrite = _ModelRewrite("gpt-4o-mini", "openai/gpt-4o-mini")
    spaced = b'data: {"id": "c1", "model": "gpt-4o-mini"}'
    out = json.loads(rewrite(spaced, json.loads(spaced[6:]))[6:])
    assert out == {"id": "c1", "model": "openai/gpt-4o-mini"}
    # a second "model" key deeper in the event: never a blind byte replacement
    nested = b'data: {"model":"gpt-4o-mini","tool":{"model":"gpt-4o-mini"}}'
    out = json.loads(rewrite(nested, json.loads(nested[6:]))[6:])
    assert out == {"model": "openai/gpt-4o-mini", "tool": {"model": "gpt-4o-mini"}}
    # the provider names another model (a fallback): still the gateway's name
    other = b'data: {"model":"gpt-4o-mini-2024-07-18"}'
    assert json.loads(rewrite(other, json.loads(other[6:]))[6:]) == {"model": "openai/gpt-4o-mini"}


async def test_a_compressed_answer_is_decoded_and_a_plain_one_passed_as_is() -> None:
    import gzip

    import httpx

    from tokenboard.gateway.service import _body_chunks

    text = b"data: {}\n\n" * 50
    plain = httpx.Response(200, stream=httpx.ByteStream(text))
    assert b"".join([c async for c in _body_chunks(plain)]) == text
    packed = httpx.Response(
        200, headers={"content-encoding": "gzip"}, stream=httpx.ByteStream(gzip.compress(text))
    )
    assert b"".join([c async for c in _body_chunks(packed)]) == text
