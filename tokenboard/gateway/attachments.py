"""Files and images in a request: what each is, its size, and its share of the prompt's tokens.

At admission (:func:`find_attachments`) each part is described without reading it whole: its size is the
decoded size of its base64 payload (worked out from the text's length), its name is the one the client gave
(``filename``, ``title``), and an image's tokens come from its pixel size, read from the first bytes of the
payload, by the provider's published rule:

- OpenAI: an image at ``low`` detail costs 85 tokens; otherwise it is fitted within 2048 x 2048, its shorter
  side brought down to 768, and it costs 85 plus 170 per 512-pixel tile.
- Anthropic: an image is fitted within 1568 pixels on its long side and about 1.15 megapixels, and costs
  width x height / 750 tokens.

A file's (or audio's) tokens are not known before the provider reads it, so they are worked out once the
request's input tokens are (:func:`share_of_prompt`): what the prompt cost beyond its text (about four
characters a token) and its images, shared among the files by size, never more than the prompt in all.
"""

from __future__ import annotations

import base64
import binascii
import math
import struct
from collections.abc import Mapping
from typing import Any

ATTACHMENT_TYPES = frozenset(
    {"image_url", "input_image", "image", "document", "file", "input_file", "input_audio"}
)
IMAGE_TYPES = frozenset({"image_url", "input_image", "image"})
# The head of a base64 payload decoded to find an image's pixel size: JPEG may put EXIF data before it.
HEAD_CHARS = 96 * 1024
CHARS_PER_TOKEN = 4


def find_attachments(body: Mapping[str, Any], api_format: str) -> tuple[list[dict[str, Any]] | None, int]:
    """The attachments of a chat or messages body, and the characters of their payloads in the body."""
    found: list[dict[str, Any]] = []
    payload_chars = 0
    messages = body.get("messages")
    for message in messages if isinstance(messages, list) else ():
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, list):
            continue
        for part in content:
            if not isinstance(part, dict) or part.get("type") not in ATTACHMENT_TYPES:
                continue
            kind = part["type"]
            payload, name, detail = _payload(part)
            attachment: dict[str, Any] = {"type": kind}
            if name:
                attachment["name"] = name[:200]
            if payload is not None:
                payload_chars += len(payload)
                attachment["bytes"] = _decoded_size(payload)
            if kind in IMAGE_TYPES:
                size = image_size(payload) if payload is not None else None
                if size is not None:
                    attachment["estimated_tokens"] = image_tokens(*size, api_format=api_format, detail=detail)
                elif detail == "low" and api_format == "openai":
                    attachment["estimated_tokens"] = 85
            found.append(attachment)
    return found or None, payload_chars


def share_of_prompt(
    attachments: list[dict[str, Any]], input_tokens: int, text_chars: int
) -> list[dict[str, Any]]:
    """The attachments with every one's tokens known: those without (files, audio, images of unknown size)
    share what the prompt's ``input_tokens`` leave after its text and the images counted, by size."""
    known = sum(a["estimated_tokens"] for a in attachments if "estimated_tokens" in a)
    unknown = [a for a in attachments if "estimated_tokens" not in a]
    scale = 1.0
    if known > input_tokens > 0:  # never more than the prompt: the images are scaled down to it
        scale = input_tokens / known
    out = [
        {**a, "estimated_tokens": math.floor(a["estimated_tokens"] * scale)} if "estimated_tokens" in a else a
        for a in attachments
    ]
    if not unknown:
        return out
    left = max(0, input_tokens - min(known, input_tokens) - text_chars // CHARS_PER_TOKEN)
    weights = [a.get("bytes") or 1 for a in unknown]
    total = sum(weights)
    shares = iter(left * w // total for w in weights)
    return [a if "estimated_tokens" in a else {**a, "estimated_tokens": next(shares)} for a in out]


def _payload(part: Mapping[str, Any]) -> tuple[str | None, str | None, str | None]:
    """The part's base64 payload (``None`` for a URL or a file id), its name, and an image's detail."""
    kind = part["type"]
    nested = part.get(kind)
    inner: Mapping[str, Any] = nested if isinstance(nested, dict) else part
    given = part.get("source")
    source: Mapping[str, Any] | None = given if isinstance(given, dict) else None
    name = next(
        (
            v
            for v in (inner.get("filename"), part.get("filename"), part.get("title"))
            if isinstance(v, str) and v
        ),
        None,
    )
    detail = inner.get("detail") if isinstance(inner.get("detail"), str) else None
    candidates = (
        inner.get("url"),  # OpenAI image_url: a data URL, or a link
        part.get("image_url") if isinstance(part.get("image_url"), str) else None,  # Responses input_image
        inner.get("file_data"),  # OpenAI file: a data URL (or bare base64)
        inner.get("data"),  # OpenAI input_audio
        source.get("data") if source is not None and source.get("type") == "base64" else None,  # Anthropic
    )
    for value in candidates:
        if isinstance(value, str) and value:
            if value.startswith("data:"):
                _, comma, rest = value.partition(",")
                return (rest if comma else None), name, detail
            if kind == "image_url" or value.startswith(("http://", "https://")):
                return None, name, detail  # a link: the provider fetches it
            return value, name, detail
    return None, name, detail


def _decoded_size(payload: str) -> int:
    """The bytes a base64 text decodes to, from its length (no decoding)."""
    stripped = len(payload) - payload.count("=", max(0, len(payload) - 2))
    return stripped * 3 // 4


def image_size(payload: str) -> tuple[int, int] | None:
    """Width and height from the head of a base64 PNG, GIF, JPEG or WebP; ``None`` when unreadable."""
    head = payload[:HEAD_CHARS]
    head = head[: len(head) - len(head) % 4]
    try:
        data = base64.b64decode(head)
    except (binascii.Error, ValueError):
        return None
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
    elif data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        width, height = struct.unpack("<HH", data[6:10])
    elif data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        size = _webp_size(data)
        if size is None:
            return None
        width, height = size
    elif data[:2] == b"\xff\xd8":
        size = _jpeg_size(data)
        if size is None:
            return None
        width, height = size
    else:
        return None
    return (width, height) if width > 0 and height > 0 else None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # no length
            i += 2
            continue
        length = struct.unpack(">H", data[i + 2 : i + 4])[0]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # a start of frame
            height, width = struct.unpack(">HH", data[i + 5 : i + 9])
            return width, height
        i += 2 + length
    return None


def _webp_size(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8X" and len(data) >= 30:
        return 1 + int.from_bytes(data[24:27], "little"), 1 + int.from_bytes(data[27:30], "little")
    if chunk == b"VP8L" and len(data) >= 25:
        bits = int.from_bytes(data[21:25], "little")
        return 1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF)
    if chunk == b"VP8 " and len(data) >= 30:
        return int.from_bytes(data[26:28], "little") & 0x3FFF, int.from_bytes(data[28:30], "little") & 0x3FFF
    return None


def image_tokens(width: int, height: int, *, api_format: str, detail: str | None = None) -> int:
    """An image's input tokens by its provider's published rule (see the module's text)."""
    if api_format == "anthropic":
        scale = min(1.0, 1568 / max(width, height), math.sqrt(1_150_000 / (width * height)))
        return max(1, math.ceil(round(width * scale) * round(height * scale) / 750))
    if detail == "low":
        return 85
    scale = min(1.0, 2048 / max(width, height))
    w, h = width * scale, height * scale
    scale = min(1.0, 768 / min(w, h))
    w, h = w * scale, h * scale
    return 85 + 170 * math.ceil(w / 512) * math.ceil(h / 512)
