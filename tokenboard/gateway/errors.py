"""Gateway refusals, rendered in each API's own error format."""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse

OPENAI_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "insufficient_quota",
    403: "permission_error",
    404: "not_found_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
    502: "upstream_error",
    504: "timeout_error",
}
ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    502: "api_error",
    504: "timeout_error",
}


class GatewayError(Exception):
    def __init__(
        self, status: int, message: str, *, code: str | None = None, retry_after: int | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.retry_after = retry_after

    def response(self, api_format: str, headers: dict[str, str] | None = None) -> JSONResponse:
        extra = dict(headers or {})
        if self.retry_after is not None:
            extra["retry-after"] = str(self.retry_after)
        body: dict[str, Any]
        if api_format == "anthropic":
            kind = ANTHROPIC_TYPES.get(self.status, "api_error")
            body = {"type": "error", "error": {"type": kind, "message": self.message}}
        else:
            kind = OPENAI_TYPES.get(self.status, "api_error")
            body = {"error": {"message": self.message, "type": kind, "param": None, "code": self.code}}
        return JSONResponse(body, status_code=self.status, headers=extra)
