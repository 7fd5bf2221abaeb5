"""The JSON API and the page: everyone reads, owners and admins switch, filters as query parameters."""

from __future__ import annotations

import re

import pytest

from tests.support.factories import Factory, OrgSetup
from tokenboard.members.roles import Role
from tokenboard.model_access.cache import TRAINING_OPTED_OUT, ModelAccessCache

GPT4O = "openai/gpt-4o"
HTML = {"accept": "text/html"}


def api(setup: OrgSetup, path: str = "") -> str:
    return f"/api/v1/organizations/{setup.id}/model-access{path}"


async def test_members_read_the_catalog_with_effective_state_and_filters(
    factory: Factory, setup: OrgSetup
) -> None:
    async with await factory.client_for(setup.users[Role.member]) as client:
        body = (await client.get(api(setup), params={"limit": 500})).json()
        assert body["total"] == len(body["models"]) > 100 and body["opt_out_training_providers"] is True
        models = {m["id"]: m for m in body["models"]}
        gpt = models[GPT4O]
        assert gpt["allowed"] and gpt["enabled"] and gpt["blocked_reason"] is None
        assert gpt["prices"]["input_per_mtok"] == "2.5" and gpt["context_length"] == 128000
        assert (
            gpt["max_output_tokens"] == 16_384 and models["openai/gpt-3.5-turbo"]["max_output_tokens"] is None
        )
        assert gpt["input_modalities"] == ["text", "image"] and gpt["headquarters_country"] == "US"
        deepseek = models["deepseek/deepseek-chat"]
        assert not deepseek["allowed"] and deepseek["blocked_reason"] == TRAINING_OPTED_OUT
        assert deepseek["data_policy"]["trains_on_prompts"] is True
        assert {p["id"] for p in body["providers"]} == {"openai", "deepseek", "simulated"}

        async def ids(**params: object) -> set[str]:
            response = await client.get(api(setup), params={"limit": 500, **params})
            assert response.status_code == 200, response.text
            return {m["id"] for m in response.json()["models"]}

        assert all(m.startswith("deepseek/") for m in await ids(trains_on_prompts="true"))
        assert all(m.startswith("deepseek/") for m in await ids(state="blocked"))
        assert await ids(location="cn") == await ids(provider="deepseek")
        assert await ids(may_publish="true") == set()
        assert "openai/text-embedding-3-small" in await ids(output_modality="embedding")
        assert GPT4O not in await ids(max_input_price="1") and GPT4O in await ids(max_input_price="2.5")
        assert "simulated/reasoning" in await ids(min_context_length=1_000_000, q="reason")
        # Empty values mean "any": the page's filter form sends every field.
        assert await ids(trains_on_prompts="", location="", min_context_length="") == set(models)
        paged = (await client.get(api(setup), params={"offset": 5, "limit": 5})).json()
        assert [m["id"] for m in paged["models"]] == [m["id"] for m in body["models"][5:10]]
        assert (await client.get(api(setup), params={"limit": 501})).status_code == 422
        assert (await client.get(api(setup), params={"state": "maybe"})).status_code == 422
        # Members cannot switch anything.
        refused = await client.put(api(setup, "/providers/openai"), json={"enabled": False})
        assert refused.status_code == 403


async def test_admins_switch_providers_models_and_the_default(factory: Factory, setup: OrgSetup) -> None:
    cache: ModelAccessCache = factory.app.state.model_access_cache
    async with await factory.client_for(setup.users[Role.admin]) as client:
        provider = await client.put(api(setup, "/providers/simulated"), json={"enabled": False})
        assert provider.status_code == 200, provider.text
        assert (
            provider.json()["enabled"] is False and provider.json()["blocked_reason"] == "provider disabled"
        )
        model = await client.put(api(setup, f"/models/{GPT4O}"), json={"enabled": False})
        assert model.status_code == 200, model.text
        assert model.json()["id"] == GPT4O and model.json()["blocked_reason"] == "model disabled"
        refused = await client.put(api(setup, "/default-model"), json={"model_id": GPT4O})
        assert refused.status_code == 409 and "model disabled" in refused.json()["error"]["message"]
        unknown = await client.put(api(setup, "/default-model"), json={"model_id": "openai/nope"})
        assert unknown.status_code == 400
        assert (
            await client.put(api(setup, "/models/openai/nope"), json={"enabled": False})
        ).status_code == 404
        assert (await client.put(api(setup, "/providers/nope"), json={"enabled": False})).status_code == 404

        chosen = await client.put(api(setup, "/default-model"), json={"model_id": "openai/gpt-4o-mini"})
        assert chosen.json() == {"default_model_id": "openai/gpt-4o-mini"}
        body = (await client.get(api(setup), params={"q": "gpt-4o-mini"})).json()
        assert body["default_model_id"] == "openai/gpt-4o-mini"
        assert any(m["is_default"] for m in body["models"])

        async with factory.app.state.sessionmaker() as session:
            await cache.ensure_org(session, setup.id)
        assert cache.default_model(setup.id) == "openai/gpt-4o-mini"
        refusal = cache.decide(setup.id, "simulated/echo")
        assert refusal is not None and "provider disabled" in refusal.message
        activity = (await client.get(f"/api/v1/organizations/{setup.id}/activity")).json()["items"]
        assert {e["action"] for e in activity} >= {
            "model_access.provider_disabled",
            "model_access.model_disabled",
            "model_access.default_model_changed",
        }


async def test_the_page_is_read_only_for_members(factory: Factory, setup: OrgSetup) -> None:
    async with await factory.client_for(setup.users[Role.member]) as client:
        page = await client.get(f"/organizations/{setup.id}/models", headers=HTML)
        assert page.status_code == 200
        assert "Model access" in page.text and 'data-model="openai/gpt-4o"' in page.text
        assert TRAINING_OPTED_OUT in page.text
        assert "/model-access/" not in page.text  # no switches, no default model form
        assert 'class="responsive"' in page.text and 'data-label="Input $/M"' in page.text
        row = page.text[page.text.index('data-model="openai/gpt-4o"') :]
        row = row[: row.index("</tr>")]
        assert (
            '<td data-label="Context">128,000</td>' in row
            and '<td data-label="Max output">16,384</td>' in row
        )
        assert 'data-value="input-audio"' not in row  # gpt-4o has no audio price of its own
        # A model with audio prices shows them under its text prices (gpt-audio: $32 and $64 per million).
        audio = await client.get(f"/organizations/{setup.id}/models", params={"q": "gpt-audio"}, headers=HTML)
        row = audio.text[audio.text.index('data-model="openai/gpt-audio"') :]
        row = row[: row.index("</tr>")]
        assert '<small class="muted" data-value="input-audio">audio 32</small>' in row
        assert '<small class="muted" data-value="output-audio">audio 64</small>' in row
        filtered = await client.get(
            f"/organizations/{setup.id}/models", params={"provider": "simulated", "q": ""}, headers=HTML
        )
        rows = re.findall(r'data-model="([^"]+)"', filtered.text)
        assert rows and all(r.startswith("simulated/") for r in rows)
        select = page.text[page.text.index('name="location"') :]
        locations = re.findall(r'<option value="([^"]+)"', select[: select.index("</select>")])
        assert "US" in locations and len(locations) == len({x.lower() for x in locations})  # "US" once
        chosen = await client.get(
            f"/organizations/{setup.id}/models", params={"location": "us"}, headers=HTML
        )
        assert '<option value="US" selected>' in chosen.text
        forbidden = await client.post(
            f"/organizations/{setup.id}/model-access/providers/openai", data={"enabled": "false"}
        )
        assert forbidden.status_code == 403


async def test_admins_switch_from_the_page_and_keep_their_filters(factory: Factory, setup: OrgSetup) -> None:
    base = f"/organizations/{setup.id}/models"
    async with await factory.client_for(setup.users[Role.admin]) as client:
        page = await client.get(base, params={"provider": "openai"}, headers=HTML)
        assert f'action="/organizations/{setup.id}/model-access/models/openai/gpt-4o"' in page.text
        assert f'action="/organizations/{setup.id}/model-access/default-model"' in page.text
        back = f"{base}?provider=openai"
        switched = await client.post(
            f"/organizations/{setup.id}/model-access/models/{GPT4O}", data={"enabled": "false", "next": back}
        )
        assert switched.status_code == 303
        assert switched.headers["location"].startswith(back + "&notice=")
        after = await client.get(switched.headers["location"], headers=HTML)
        row = after.text.split('data-model="openai/gpt-4o"', 1)[1].split("</tr>", 1)[0]
        assert "model disabled" in row and ">Enable<" in row

        elsewhere = await client.post(
            f"/organizations/{setup.id}/model-access/providers/openai",
            data={"enabled": "false", "next": "https://evil.example/"},
        )
        assert elsewhere.headers["location"].startswith(base + "?notice=")
        refused = await client.post(
            f"/organizations/{setup.id}/model-access/default-model", data={"model_id": GPT4O, "next": back}
        )
        assert refused.status_code == 303 and "error=" in refused.headers["location"]
        cleared = await client.post(
            f"/organizations/{setup.id}/model-access/default-model", data={"model_id": ""}
        )
        assert cleared.status_code == 303 and "Default+model+cleared" in cleared.headers["location"]


async def test_the_page_pages_through_the_catalog(factory: Factory, setup: OrgSetup) -> None:
    async with await factory.client_for(setup.users[Role.member]) as client:
        first = await client.get(f"/organizations/{setup.id}/models", params={"limit": 20}, headers=HTML)
        assert "Showing 1\u201320 of" in first.text
        next_link = re.search(r'href="([^"]+)" rel="next"', first.text)
        assert next_link
        second = await client.get(next_link.group(1).replace("&amp;", "&"), headers=HTML)
        assert "Showing 21\u201340 of" in second.text and 'rel="prev"' in second.text


async def test_models_of_providers_this_gateway_cannot_reach_are_not_allowed(
    factory: Factory, setup: OrgSetup, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever the organization allows, a provider without an upstream here cannot be called: its models
    say so, and none of them can be the default model (the gateway would refuse it with a 404)."""
    from tokenboard.config import UpstreamConfig, UpstreamKind
    from tokenboard.model_access.service import NOT_CONFIGURED

    state = factory.app.state
    only_simulated = {"simulated": UpstreamConfig(kind=UpstreamKind.simulated)}
    monkeypatch.setattr(state, "settings", state.settings.model_copy(update={"upstreams": only_simulated}))
    async with await factory.client_for(setup.users[Role.admin]) as client:
        body = (await client.get(api(setup), params={"limit": 500})).json()
        models = {m["id"]: m for m in body["models"]}
        assert not models[GPT4O]["allowed"] and models[GPT4O]["blocked_reason"] == NOT_CONFIGURED
        assert models["simulated/fast"]["allowed"]
        providers = {p["id"]: p for p in body["providers"]}
        assert providers["openai"]["blocked_reason"] == NOT_CONFIGURED and providers["simulated"]["allowed"]
        refused = await client.put(api(setup, "/default-model"), json={"model_id": GPT4O})
        assert refused.status_code == 409 and NOT_CONFIGURED in refused.json()["error"]["message"]
        chosen = await client.put(api(setup, "/default-model"), json={"model_id": "simulated/fast"})
        assert chosen.status_code == 200
        page = await client.get(f"/organizations/{setup.id}/models", headers=HTML)
        assert NOT_CONFIGURED in page.text
