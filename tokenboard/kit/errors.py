"""Errors carry their HTTP status; one handler renders them as JSON or HTML by what was asked."""

from __future__ import annotations

from typing import Any


class TokenboardError(Exception):
    status_code = 500
    type = "internal_error"

    def __init__(self, message: str, *, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"type": self.type, "message": self.message, "status": self.status_code}
        if self.details is not None:
            body["details"] = self.details
        return {"error": body}


class BadRequest(TokenboardError):
    status_code = 400
    type = "bad_request"


class NotAuthenticated(TokenboardError):
    status_code = 401
    type = "not_authenticated"

    def __init__(self, message: str = "Log in to continue.", **kw: Any) -> None:
        super().__init__(message, **kw)


class PermissionDenied(TokenboardError):
    status_code = 403
    type = "permission_denied"


class CSRFFailed(TokenboardError):
    status_code = 403
    type = "csrf_failed"

    def __init__(
        self, message: str = "The form expired or did not come from this site. Reload and try again."
    ) -> None:
        super().__init__(message)


class NotFound(TokenboardError):
    status_code = 404
    type = "not_found"

    def __init__(self, message: str = "Not found.", **kw: Any) -> None:
        super().__init__(message, **kw)


class Conflict(TokenboardError):
    status_code = 409
    type = "conflict"


class Gone(TokenboardError):
    status_code = 410
    type = "gone"


class PayloadTooLarge(TokenboardError):
    status_code = 413
    type = "payload_too_large"


class ValidationFailed(TokenboardError):
    status_code = 422
    type = "validation_error"


class TooManyRequests(TokenboardError):
    status_code = 429
    type = "rate_limited"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message, details={"retry_after": retry_after})
        self.retry_after = retry_after
