"""Catalog API: everyone signed in reads and filters it; only operators change it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from tests.support.factories import Factory
from tests.support.routes import API_BODIES, all_routes, fill
from tokenboard.catalog.service import catalog

VALUES = {"provider": "openai", "model": "gpt-4o"}


async def _synced(factory: Factory) -> None:
    await factory.run(lambda s: catalog.sync(s))


async def _ids(client: object, **params: object) -> set[str]:
    response = await client.get("/api/v1/catalog/models", params=params)  # type: ignore[attr-defined]
    assert response.status_code == 200, response.text
    return {m["id"] for m in response.json()}


async def test_signed_in_users_read_the_catalog_with_filters(factory: Factory) -> None:
    await _synced(factory)
    user = await factory.user()
    async with await factory.client_for(user) as client:
        everything = await _ids(client)
        assert {"openai/gpt-4o", "anthropic/claude-sonnet-4-0", "simulated/echo"} <= everything
        assert "mistral/mistral-ocr-2512" not in everything  # unpriced models are not offered

        no_training = await _ids(client, trains_on_prompts="false")
        assert "openai/gpt-4o" in no_training and not any(m.startswith("deepseek/") for m in no_training)
        assert {m.split("/")[0] for m in await _ids(client, location="FR")} == {"mistral"}
        in_eu = {m.split("/")[0] for m in await _ids(client, location="eu")}
        assert {"mistral", "openai", "google"} <= in_eu and "deepseek" not in in_eu
        audio = await _ids(client, modality="audio")
        assert "google/gemini-2.5-pro" in audio and "openai/gpt-4o" not in audio
        long = await _ids(client, min_context_length=1_000_000)
        assert "google/gemini-2.5-pro" in long and "openai/gpt-4o" not in long
        cheap = await _ids(client, max_input_price="0.15", provider="openai")
        assert "openai/gpt-4o-mini" in cheap and "openai/gpt-4o" not in cheap

        listed = (await client.get("/api/v1/catalog/models", params={"provider": "openai"})).json()
        gpt4o = next(m for m in listed if m["id"] == "openai/gpt-4o")
        assert gpt4o["prices"]["input_per_mtok"] == "2.5"
        assert gpt4o["prices"]["cached_input_read_per_mtok"] == "1.25"
        assert gpt4o["provider"]["data_policy"]["trains_on_prompts"] is False
        assert gpt4o["provider"]["facts"]["trains_on_prompts"]["source"]["url"].startswith("https://")
        assert gpt4o["price_source"] == "genai-prices"
        simulated = (await client.get("/api/v1/catalog/models", params={"provider": "simulated"})).json()
        assert simulated and all(m["provider"]["simulated"] for m in simulated)
        assert all("not a real model" in m["name"] for m in simulated)


async def test_anonymous_callers_get_401(factory: Factory) -> None:
    async with factory.anonymous() as client:
        assert (await client.get("/api/v1/catalog/models")).status_code == 401
        for case in all_routes(factory.app):
            if case.path.startswith("/api/v1/admin/catalog"):
                url = fill(case.path, VALUES)
                response = await client.request(case.method, url, json=API_BODIES.get(case.key))
                assert response.status_code == 401, (case.key, response.status_code)


async def test_admin_routes_are_for_operators_only(factory: Factory) -> None:
    await _synced(factory)
    user = await factory.user()
    admin_routes = [c for c in all_routes(factory.app) if c.path.startswith("/api/v1/admin/catalog")]
    assert len(admin_routes) == 6
    async with await factory.client_for(user) as client:
        for case in admin_routes:
            url = fill(case.path, VALUES)
            response = await client.request(case.method, url, json=API_BODIES.get(case.key))
            assert response.status_code == 403, (case.key, response.status_code, response.text[:200])
    history = await factory.run(lambda s: catalog.price_history(s, "openai/gpt-4o"))
    assert len(history) == 1  # nothing changed


async def test_operators_add_models_override_prices_and_disable(factory: Factory) -> None:
    await _synced(factory)
    operator = await factory.user(operator=True)
    member = await factory.user()
    async with await factory.client_for(operator) as admin:
        created = await admin.post(
            "/api/v1/admin/catalog/models",
            json={
                "id": "local/llama-3.3-70b",
                "context_length": 131072,
                "input_modalities": ["text"],
                "prices": {"input": "0.10", "output": "0.30"},
            },
        )
        assert created.status_code == 201, created.text
        assert created.json()["prices"]["input_per_mtok"] == "0.1"
        assert created.json()["price_source"] == "operator override"

        start = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()
        override = await admin.post(
            "/api/v1/admin/catalog/models/openrouter/openai/gpt-4o/prices",
            json={"input": "2.00", "output": "8.00", "cached_input_read": "1", "effective_from": start},
        )
        assert override.status_code == 201, override.text
        assert override.json()["source"] == "operator override"
        history = (await admin.get("/api/v1/admin/catalog/models/openrouter/openai/gpt-4o/prices")).json()
        assert [row["source"] for row in history][-1] == "operator override"
        assert history[-1]["prices"]["output_per_mtok"] == "8"
        # Kinds left out keep the price in force when the override starts: Sonnet 4.5's cache writes, tier.
        sonnet = "/api/v1/admin/catalog/models/anthropic/claude-sonnet-4-5/prices"
        reference = (await admin.get(sonnet)).json()[-1]["prices"]
        assert reference["tiers"] and reference["cache_write_1h_per_mtok"]
        kept = await admin.post(sonnet, json={"input": "2.4", "output": "12", "effective_from": start})
        assert kept.status_code == 201, kept.text
        assert kept.json()["prices"] == reference | {"input_per_mtok": "2.4", "output_per_mtok": "12"}
        later = (datetime.now(UTC) + timedelta(minutes=2)).isoformat()
        flat = await admin.post(
            sonnet, json={"input": "2.4", "output": "12", "tiers": [], "effective_from": later}
        )
        assert flat.status_code == 201 and flat.json()["prices"]["tiers"] == []
        # The web search fee: kept like the other kinds above (Sonnet's is Anthropic's $0.01), replaced when
        # given.
        assert (
            reference["per_web_search_usd"] == "0.01"
            and kept.json()["prices"]["per_web_search_usd"] == "0.01"
        )
        third = (datetime.now(UTC) + timedelta(minutes=3)).isoformat()
        searches = await admin.post(
            sonnet,
            json={"input": "2.4", "output": "12", "per_web_search_usd": "0.008", "effective_from": third},
        )
        assert searches.status_code == 201, searches.text
        assert searches.json()["prices"]["per_web_search_usd"] == "0.008"
        negative = await admin.post(sonnet, json={"input": "1", "output": "1", "per_web_search_usd": "-0.01"})
        assert negative.status_code == 422

        past = await admin.post(
            "/api/v1/admin/catalog/models/openai/gpt-4o/prices",
            json={"input": "1", "output": "1", "effective_from": "2020-01-01T00:00:00Z"},
        )
        assert past.status_code == 400
        missing = await admin.get("/api/v1/admin/catalog/models/nobody/nothing/prices")
        assert missing.status_code == 404

        disabled = await admin.patch("/api/v1/admin/catalog/models/openai/gpt-4o", json={"enabled": False})
        assert disabled.status_code == 200 and disabled.json()["enabled"] is False
        everything = {m["id"] for m in (await admin.get("/api/v1/admin/catalog/models")).json()}
        assert {"openai/gpt-4o", "mistral/mistral-ocr-2512", "local/llama-3.3-70b"} <= everything

        synced = await admin.post("/api/v1/admin/catalog/sync")
        assert synced.status_code == 200 and synced.json()["models_added"] == 0

    async with await factory.client_for(member) as client:
        visible = await _ids(client)
        assert "local/llama-3.3-70b" in visible and "openai/gpt-4o" not in visible
    prices = await factory.run(
        lambda s: catalog.prices_at(s, "openrouter/openai/gpt-4o", datetime.now(UTC) + timedelta(minutes=2))
    )
    assert prices is not None and prices.cached_input_read == Decimal("0.000001")


async def test_admin_changes_invalidate_the_app_cache(factory: Factory) -> None:
    await _synced(factory)
    cache = factory.app.state.catalog_cache
    await factory.run(cache.load)
    assert cache.get("local/new-model") is None
    operator = await factory.user(operator=True)
    async with await factory.client_for(operator) as admin:
        response = await admin.post(
            "/api/v1/admin/catalog/models",
            json={"id": "local/new-model", "prices": {"input": "1", "output": "2"}},
        )
        assert response.status_code == 201
    assert not cache.loaded
    await factory.run(cache.ensure_loaded)
    assert cache.prices_at("local/new-model", datetime.now(UTC)) is not None


async def test_operators_set_the_maximum_output_and_a_sync_keeps_it(factory: Factory) -> None:
    """Every reader sees the curated maximum; an operator sets one on a new model and on a reference model,
    and the admin sync keeps both; out-of-range values are refused."""
    await factory.run(lambda s: catalog.sync(s, provider_ids=["openai", "anthropic", "simulated"]))
    operator = await factory.user(operator=True)
    member = await factory.user()
    async with await factory.client_for(member) as client:
        listed = {m["id"]: m for m in (await client.get("/api/v1/catalog/models")).json()}
        assert (listed["openai/gpt-4o"]["context_length"], listed["openai/gpt-4o"]["max_output_tokens"]) == (
            128_000,
            16_384,
        )
        assert listed["anthropic/claude-opus-4-1"]["max_output_tokens"] == 32_000
        fact = listed["openai/gpt-4o"]["details"]["facts"]["max_output_tokens"]
        assert fact["source"]["url"] == "https://platform.openai.com/docs/models/gpt-4o"
        assert listed["openai/gpt-3.5-turbo"]["max_output_tokens"] is None
    async with await factory.client_for(operator) as admin:
        created = await admin.post(
            "/api/v1/admin/catalog/models",
            json={
                "id": "local/qwen-3-32b",
                "context_length": 32_768,
                "max_output_tokens": 8_192,
                "prices": {"input": "0.1", "output": "0.3"},
            },
        )
        assert created.status_code == 201, created.text
        assert created.json()["max_output_tokens"] == 8_192
        patched = await admin.patch(
            "/api/v1/admin/catalog/models/openai/gpt-4o", json={"max_output_tokens": 4_000}
        )
        assert patched.status_code == 200, patched.text
        assert patched.json()["max_output_tokens"] == 4_000 and patched.json()["context_length"] == 128_000
        for bad in (0, -1, 100_000_001, "many"):
            refused = await admin.patch(
                "/api/v1/admin/catalog/models/openai/gpt-4o", json={"max_output_tokens": bad}
            )
            assert refused.status_code == 422, (bad, refused.text)
        assert (await admin.post("/api/v1/admin/catalog/sync")).status_code == 200
        after = {m["id"]: m for m in (await admin.get("/api/v1/admin/catalog/models")).json()}
    assert after["openai/gpt-4o"]["max_output_tokens"] == 4_000
    assert after["local/qwen-3-32b"]["max_output_tokens"] == 8_192
    assert after["openai/gpt-4o-mini"]["max_output_tokens"] == 16_384
