"""Request inspection for the gateway: refuse smuggled upstream targets or credentials, bound the output.

Pure functions over the parsed JSON body; no I/O. The gateway alone decides where a request goes and with
which credentials, so any field that could name an upstream or carry a secret is refused, at any depth.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# Compared after lower-casing and removing "-" and "_": "base_url", "baseURL" and "base-url" all match.
FORBIDDEN_KEYS = frozenset(
    {
        "baseurl",
        "apibase",
        "apiurl",
        "upstream",
        "upstreamurl",
        "endpoint",
        "endpointurl",
        "host",
        "proxy",
        "apikey",
        "xapikey",
        "authorization",
        "credentials",
        "accesstoken",
        "bearertoken",
        "secret",
        "password",
        "headers",
        "extraheaders",
        "defaultheaders",
    }
)
# Parts that make any name a credential or an upstream ("openai_api_key", "azure_api_base", "aws_secret_key"),
# as some OpenAI-compatible servers (proxies) read such fields from the body.
FORBIDDEN_PARTS = (
    "apikey",
    "apibase",
    "baseurl",
    "accesskey",
    "secretkey",
    "credential",
    "accesstoken",
    "password",
)
# JSON Schemas (tool parameters, structured output) describe data, they configure nothing: a tool may well
# take a "password" or "headers" argument, so their subtrees are not searched.
SCHEMA_KEYS = frozenset({"parameters", "inputschema", "jsonschema", "schema", "properties"})
MAX_DEPTH = 64
MAX_N = 8


class InspectionError(ValueError):
    """The body is refused; ``field`` says where."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


def _normalise(key: str) -> str:
    return key.lower().replace("-", "").replace("_", "")


def _forbidden(name: str) -> bool:
    """Whether a normalised field name chooses an upstream or carries a credential."""
    return name in FORBIDDEN_KEYS or any(part in name for part in FORBIDDEN_PARTS)


# Bodies repeat the same few keys ("model", "messages", "role", "content"...): their normalised forms are
# kept, up to a bound, so a hostile body with many distinct keys cannot grow the table.
_NORMALISED: dict[str, str] = {}
_NORMALISED_MAX = 4096
_VERDICTS: dict[str, bool] = {}  # normalised name -> forbidden, bounded the same way
_CONTAINERS = (dict, list)
_LEAVES = (str, int, float, bool, type(None))


def find_forbidden_field(body: Any) -> str | None:
    """The dotted path of the first field that tries to choose an upstream or carry a credential.

    A first pass over the JSON containers only says whether there is anything to report (a forbidden key,
    or nesting at the limit); only then does :func:`_locate` walk again to build the path or the error.
    Anything that is not plain JSON goes to :func:`_locate` too, which is the definition.
    """
    normalised, verdicts = _NORMALISED, _VERDICTS
    stack: list[tuple[Any, int]] = [(body, 0)]
    pop, push = stack.pop, stack.append
    while stack:
        value, depth = pop()
        if value and depth >= MAX_DEPTH:  # its children would be past the limit
            return _locate(body)
        kind = type(value)
        if kind is dict:
            for key, child in value.items():
                name = normalised.get(key) if type(key) is str else None
                if name is None:
                    name = _normalise(str(key))
                    if type(key) is str and len(normalised) < _NORMALISED_MAX:
                        normalised[key] = name
                forbidden = verdicts.get(name)
                if forbidden is None:
                    forbidden = _forbidden(name)
                    if len(verdicts) < _NORMALISED_MAX:
                        verdicts[name] = forbidden
                if forbidden:
                    return _locate(body)
                if depth and name in SCHEMA_KEYS:  # a schema inside the body; the body's own fields are read
                    continue
                if type(child) in _CONTAINERS:
                    push((child, depth + 1))
                elif type(child) not in _LEAVES:
                    return _locate(body)
        elif kind is list:
            for child in value:
                if type(child) in _CONTAINERS:
                    push((child, depth + 1))
                elif type(child) not in _LEAVES:
                    return _locate(body)
        elif kind not in _LEAVES:
            return _locate(body)
    return None


def _locate(body: Any) -> str | None:
    """The definition: walk every value, with its path; refuse nesting deeper than ``MAX_DEPTH``."""
    stack: list[tuple[Any, str, int]] = [(body, "", 0)]
    while stack:
        value, path, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise InspectionError(f"The request body nests deeper than {MAX_DEPTH} levels.", path or None)
        if isinstance(value, Mapping):
            for key, child in value.items():
                child_path = f"{path}.{key}" if path else str(key)
                normalised = _normalise(str(key))
                if _forbidden(normalised):
                    return child_path
                if not depth or normalised not in SCHEMA_KEYS:
                    stack.append((child, child_path, depth + 1))
        elif isinstance(value, list):
            for index, child in enumerate(value):
                stack.append((child, f"{path}[{index}]", depth + 1))
    return None


# Fields the gateway itself reads, and the JSON types they must have when present (the provider checks
# the rest): a wrong type is the client's mistake, a 400, never an error inside the gateway.
_SHAPES: tuple[tuple[str, type, str], ...] = (
    ("messages", list, "a list of messages"),
    ("stream", bool, "true or false"),
    ("stream_options", dict, "an object"),
)


def check_shapes(body: Mapping[str, Any]) -> None:
    """Refuse a field the gateway reads when it has the wrong JSON type."""
    for key, kind, described in _SHAPES:
        value = body.get(key)
        if value is not None and type(value) is not kind:
            raise InspectionError(f"{key} must be {described}.", key)


@dataclass(frozen=True, slots=True)
class OutputLimits:
    max_output_tokens: int
    n: int
    clamped: bool


def _positive_int(body: Mapping[str, Any], key: str) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InspectionError(f"{key} must be a whole number.", key)
    if value < 1:
        raise InspectionError(f"{key} must be at least 1.", key)
    return value


def bound_output(
    body: dict[str, Any], *, model_max_output: int, token_keys: tuple[str, ...], default_output: int
) -> OutputLimits:
    """Clamp the requested output tokens to the model's maximum (rewriting the body) and refuse hostile ``n``.

    The result bounds the request's maximum cost, which is what credits are reserved against.
    """
    # A body may carry several of the route's names for the bound (``max_tokens`` and
    # ``max_completion_tokens``): the upstream obeys whichever it prefers, so each is clamped and the
    # largest is what the request may cost.
    requested = None
    clamped = False
    for key in token_keys:
        value = _positive_int(body, key)
        if value is None:
            continue
        if value > model_max_output:
            value, clamped = model_max_output, True
            body[key] = value
        requested = value if requested is None else max(requested, value)
    limit = min(default_output, model_max_output) if requested is None else requested
    n = _positive_int(body, "n") or 1
    if n > MAX_N:
        raise InspectionError(f"n may be at most {MAX_N}.", "n")
    return OutputLimits(max_output_tokens=limit, n=n, clamped=clamped)
