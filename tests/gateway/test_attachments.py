"""Attachments: sizes from base64 lengths, image sizes from their first bytes, tokens by provider rules."""

from __future__ import annotations

import base64
import struct
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tokenboard.gateway.attachments import (
    _decoded_size,
    find_attachments,
    image_size,
    image_tokens,
    share_of_prompt,
)


def png(width: int, height: int) -> bytes:
    """A valid PNG header (signature and IHDR) and some image data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return (
        b"\x89PNG\r\n\x1a\n"
        + struct.pack(">I", len(ihdr))
        + chunk
        + struct.pack(">I", zlib.crc32(chunk))
        + b"\x00" * 5000
    )


def jpeg(width: int, height: int, exif: int = 3000) -> bytes:
    """SOI, an APP1 segment of ``exif`` bytes before the frame, then SOF0 with the size."""
    app1 = b"\xff\xe1" + struct.pack(">H", exif + 2) + b"E" * exif
    sof0 = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, height, width, 1) + b"\x01\x11\x00"
    return b"\xff\xd8" + app1 + sof0 + b"\xff\xda" + b"\x00" * 100


def gif(width: int, height: int) -> bytes:
    return b"GIF89a" + struct.pack("<HH", width, height) + b"\x00" * 50


def webp(width: int, height: int) -> bytes:
    vp8x = b"VP8X" + struct.pack("<I", 10) + b"\x00" * 4 + (width - 1).to_bytes(3, "little")
    vp8x += (height - 1).to_bytes(3, "little")
    return b"RIFF" + struct.pack("<I", len(vp8x) + 4) + b"WEBP" + vp8x


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.mark.parametrize("make", [png, jpeg, gif, webp])
def test_the_pixel_size_is_read_from_the_head(make: object) -> None:
    assert image_size(b64(make(1234, 567))) == (1234, 567)  # type: ignore[operator]


def test_unreadable_images_have_no_size() -> None:
    assert image_size(b64(b"not an image at all")) is None
    assert image_size("%%%% not base64") is None
    assert image_size(b64(b"\xff\xd8\xff\xe1")) is None  # a JPEG cut before its frame


@given(st.binary(max_size=300))
def test_the_decoded_size_is_worked_out_from_the_length(data: bytes) -> None:
    assert _decoded_size(b64(data)) == len(data)


def test_image_tokens_follow_each_providers_rule() -> None:
    # OpenAI's published examples: 1024 x 1024 high detail 765 tokens; 2048 x 4096 1105; low detail 85.
    assert image_tokens(1024, 1024, api_format="openai") == 765
    assert image_tokens(2048, 4096, api_format="openai") == 1105
    assert image_tokens(4096, 8192, api_format="openai", detail="low") == 85
    # Anthropic: width x height / 750, after fitting within 1568 px and about 1.15 megapixels.
    assert image_tokens(1000, 1000, api_format="anthropic") == 1334
    assert image_tokens(200, 200, api_format="anthropic") == 54
    assert image_tokens(5000, 5000, api_format="anthropic") <= 1_150_000 // 750 + 1


def test_openai_and_anthropic_parts_are_described_without_their_payloads() -> None:
    image, report = png(1024, 1024), b"%PDF-1.7 " + b"x" * 30_000
    body = {
        "messages": [
            {"role": "system", "content": "plain text"},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Look"},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{b64(image)}"}},
                    {
                        "type": "image_url",
                        "image_url": {"url": "https://example.com/cat.png", "detail": "low"},
                    },
                    {
                        "type": "file",
                        "file": {
                            "filename": "report.pdf",
                            "file_data": f"data:application/pdf;base64,{b64(report)}",
                        },
                    },
                ],
            },
        ]
    }
    found, payload_chars = find_attachments(body, "openai")
    assert found == [
        {"type": "image_url", "bytes": len(image), "estimated_tokens": 765},
        {"type": "image_url", "estimated_tokens": 85},  # a link: no size, low detail is 85 whatever it is
        {"type": "file", "name": "report.pdf", "bytes": len(report)},
    ]
    assert payload_chars == len(b64(image)) + len(b64(report))
    anthropic = {
        "messages": [
            {
                "role": "user",
                "content": [
                    {
                        "type": "image",
                        "source": {
                            "type": "base64",
                            "media_type": "image/jpeg",
                            "data": b64(jpeg(1000, 1000)),
                        },
                    },
                    {
                        "type": "document",
                        "title": "Q3 numbers",
                        "source": {"type": "base64", "media_type": "application/pdf", "data": b64(report)},
                    },
                ],
            }
        ]
    }
    found, _ = find_attachments(anthropic, "anthropic")
    assert found == [
        {"type": "image", "bytes": len(jpeg(1000, 1000)), "estimated_tokens": 1334},
        {"type": "document", "name": "Q3 numbers", "bytes": len(report)},
    ]
    assert find_attachments({"messages": "not a list"}, "openai") == (None, 0)


def test_files_share_what_the_prompt_leaves_and_never_more_than_it() -> None:
    image = {"type": "image_url", "bytes": 100, "estimated_tokens": 765}
    files = [
        {"type": "file", "name": "a.pdf", "bytes": 3000},
        {"type": "file", "name": "b.pdf", "bytes": 1000},
    ]
    shared = share_of_prompt([image, *files], input_tokens=5_000, text_chars=400)
    # 5,000 input tokens: 100 for the text (400 characters), 765 for the image, 4,135 for the files by size.
    assert [a["estimated_tokens"] for a in shared] == [765, 3101, 1033]
    assert sum(a["estimated_tokens"] for a in shared) <= 5_000
    # Images counted beyond the prompt (an estimate that was wrong) are scaled down to it; files get nothing.
    shared = share_of_prompt([image, image, *files], input_tokens=1_000, text_chars=0)
    assert [a["estimated_tokens"] for a in shared] == [500, 500, 0, 0]


@given(
    st.lists(st.one_of(st.none(), st.integers(0, 10_000)), min_size=1, max_size=6),
    st.integers(0, 50_000),
    st.integers(0, 100_000),
)
def test_the_shares_never_exceed_the_prompt(
    known: list[int | None], input_tokens: int, text_chars: int
) -> None:
    attachments = [
        {"type": "file", "bytes": 10} if tokens is None else {"type": "image", "estimated_tokens": tokens}
        for tokens in known
    ]
    shared = share_of_prompt(attachments, input_tokens, text_chars)
    assert all(a["estimated_tokens"] >= 0 for a in shared)
    if input_tokens > 0:  # no count from the provider (0): the images keep their own estimate
        assert sum(a["estimated_tokens"] for a in shared) <= input_tokens
