"""Jinja2 environment for the pages: filters for dates, numbers and the CSRF field."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.templating import Jinja2Templates
from markupsafe import Markup, escape

from tokenboard.kit.csrf import CSRF_FIELD, csrf_token
from tokenboard.kit.money import format_usd

TEMPLATE_DIR = Path(__file__).resolve().parent.parent / "web" / "templates"


def format_datetime(value: datetime | None) -> str:
    if value is None:
        return "—"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def format_date(value: datetime | None) -> str:
    return "—" if value is None else value.astimezone(UTC).strftime("%Y-%m-%d")


def time_ago(value: datetime | None) -> str:
    if value is None:
        return "never"
    seconds = int((datetime.now(UTC) - value).total_seconds())
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            n = seconds // size
            return f"{n} {unit}{'s' if n != 1 else ''} ago"
    return "just now"


def csrf_input(request: Request) -> Markup:
    token = escape(csrf_token(request))
    return Markup(f'<input type="hidden" name="{CSRF_FIELD}" value="{token}">')


def format_count(value: int | float | None) -> str:
    return "—" if value is None else f"{value:,.0f}"


def format_percent(value: float | None, digits: int = 0) -> str:
    return "—" if value is None else f"{value * 100:.{digits}f}%"


def format_money(nanousd: int | None) -> str:
    return "—" if nanousd is None else format_usd(nanousd)


def humanize_action(action: str) -> str:
    return action.replace(".", " ").replace("_", " ")


def _build() -> Jinja2Templates:
    templates = Jinja2Templates(directory=str(TEMPLATE_DIR))
    env = templates.env
    env.filters["datetime"] = format_datetime
    env.filters["date"] = format_date
    env.filters["ago"] = time_ago
    env.filters["humanize_action"] = humanize_action
    env.filters["usd"] = format_money
    env.filters["count"] = format_count
    env.filters["percent"] = format_percent
    env.globals["csrf_input"] = csrf_input
    env.globals["csrf_token"] = csrf_token
    return templates


templates = _build()


def render(request: Request, name: str, context: dict[str, Any], status_code: int = 200) -> Any:
    return templates.TemplateResponse(request, name, context, status_code=status_code)
