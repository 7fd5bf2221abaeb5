"""Dependencies for the process-wide objects the app holds: settings, mailer, throttle counters."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from tokenboard.config import Settings
from tokenboard.kit.context import ClientInfo
from tokenboard.kit.email import Mailer
from tokenboard.kit.ratelimit import FailureCounter
from tokenboard.kit.routing import get_db


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _mailer(request: Request) -> Mailer:
    mailer: Mailer = request.app.state.mailer
    return mailer


def _counter(request: Request) -> FailureCounter:
    counter: FailureCounter = request.app.state.failure_counter
    return counter


def _client(request: Request) -> ClientInfo:
    return ClientInfo.from_request(request)


DB = Annotated[AsyncSession, Depends(get_db)]
AppSettings = Annotated[Settings, Depends(_settings)]
AppMailer = Annotated[Mailer, Depends(_mailer)]
Counter = Annotated[FailureCounter, Depends(_counter)]
Client = Annotated[ClientInfo, Depends(_client)]
