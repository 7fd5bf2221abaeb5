"""Facts about the caller that audit rows and throttles need."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request


@dataclass(frozen=True, slots=True)
class ClientInfo:
    ip_address: str | None
    user_agent: str | None

    @classmethod
    def from_request(cls, request: Request) -> ClientInfo:
        ua = request.headers.get("user-agent")
        return cls(
            ip_address=request.client.host if request.client else None,
            user_agent=ua[:400] if ua else None,
        )


SYSTEM_CLIENT = ClientInfo(ip_address=None, user_agent="tokenboard-cli")
