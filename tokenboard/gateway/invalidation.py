"""Admission caches are dropped right after a change that affects them commits."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from tokenboard.kit.jobs import after_commit


def forget_keys(session: AsyncSession) -> None:
    """After this unit of work commits, the gateway re-reads keys (revocations, suspensions, removals)."""
    state: Any = session.info.get("app_state")
    if state is None or not hasattr(state, "key_cache"):
        return

    async def clear() -> None:
        state.key_cache.clear()
        # Reloaded keys carry their spend from the database, which includes what this process counted.
        if hasattr(state, "gateway"):
            state.gateway.forget_key_spend()
        if hasattr(state, "cache_bus"):
            await state.cache_bus.announce("keys")

    after_commit(session, clear)
