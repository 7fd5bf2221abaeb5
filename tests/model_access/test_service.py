"""Model access rules: effective state with its reason, switches, the training opt-out, the default model."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import select

from tests.model_access.conftest import as_role
from tests.support.factories import Factory, OrgSetup
from tokenboard.catalog.service import ModelFilters, catalog
from tokenboard.kit.errors import BadRequest, Conflict, NotFound
from tokenboard.members.roles import Role
from tokenboard.model_access.cache import MODEL_DISABLED, PROVIDER_DISABLED, TRAINING_OPTED_OUT
from tokenboard.model_access.service import AccessCatalog, AccessFilters, model_access
from tokenboard.models import AuditEvent
from tokenboard.organizations.service import organizations

GPT4O = "openai/gpt-4o"
DEEPSEEK = "deepseek/deepseek-chat"
ECHO = "simulated/echo"


async def listing(
    factory: Factory, setup: OrgSetup, filters: AccessFilters | None = None, **paging: int
) -> AccessCatalog:
    return await as_role(factory, setup, lambda s, ctx: model_access.list(s, ctx, filters, **paging))


async def states(factory: Factory, setup: OrgSetup) -> dict[str, str | None]:
    result = await listing(factory, setup, limit=500)
    return {m.view.model.id: m.blocked_reason for m in result.models}


async def audit_actions(factory: Factory, setup: OrgSetup) -> list[AuditEvent]:
    stmt = (
        select(AuditEvent)
        .where(AuditEvent.organization_id == setup.id, AuditEvent.action.like("model_access.%"))
        .order_by(AuditEvent.created_at, AuditEvent.id)
    )
    return list(await factory.run(lambda s: s.scalars(stmt)))  # type: ignore[arg-type]


async def test_everything_is_allowed_except_training_providers_for_an_opted_out_org(
    factory: Factory, setup: OrgSetup
) -> None:
    assert setup.organization.opt_out_training_providers  # the default
    reasons = await states(factory, setup)
    assert len(reasons) > 100
    assert {m for m, r in reasons.items() if r is not None} == {
        m for m in reasons if m.startswith("deepseek/")
    }
    assert reasons[DEEPSEEK] == TRAINING_OPTED_OUT
    assert reasons[GPT4O] is None and reasons[ECHO] is None
    providers = {p.provider.id: p for p in (await listing(factory, setup)).providers}
    assert providers["deepseek"].blocked_reason == TRAINING_OPTED_OUT and providers["deepseek"].enabled
    assert providers["openai"].blocked_reason is None and providers["openai"].model_count > 50


async def test_reasons_name_what_blocks_a_model(factory: Factory, setup: OrgSetup) -> None:
    await as_role(factory, setup, lambda s, ctx: model_access.set_provider(s, ctx, "openai", enabled=False))
    await as_role(factory, setup, lambda s, ctx: model_access.set_model(s, ctx, ECHO, enabled=False))
    # A model switched off under a switched-off provider: the provider is named first.
    await as_role(factory, setup, lambda s, ctx: model_access.set_model(s, ctx, GPT4O, enabled=False))
    reasons = await states(factory, setup)
    assert reasons[GPT4O] == PROVIDER_DISABLED
    assert all(r == PROVIDER_DISABLED for m, r in reasons.items() if m.startswith("openai/"))
    assert reasons[ECHO] == MODEL_DISABLED
    assert reasons["simulated/fast"] is None
    assert reasons[DEEPSEEK] == TRAINING_OPTED_OUT

    await as_role(factory, setup, lambda s, ctx: model_access.set_provider(s, ctx, "openai", enabled=True))
    reasons = await states(factory, setup)
    assert reasons[GPT4O] == MODEL_DISABLED  # its own switch is still off
    assert reasons["openai/gpt-4o-mini"] is None
    await as_role(factory, setup, lambda s, ctx: model_access.set_model(s, ctx, GPT4O, enabled=True))
    assert (await states(factory, setup))[GPT4O] is None


async def test_opting_in_and_out_of_training_providers(factory: Factory, setup: OrgSetup) -> None:
    await as_role(
        factory,
        setup,
        lambda s, ctx: organizations.update_settings(s, ctx, opt_out_training_providers=False),
    )
    assert (await states(factory, setup))[DEEPSEEK] is None
    await as_role(
        factory, setup, lambda s, ctx: organizations.update_settings(s, ctx, opt_out_training_providers=True)
    )
    assert (await states(factory, setup))[DEEPSEEK] == TRAINING_OPTED_OUT


async def test_switches_are_audited_with_before_and_after(factory: Factory, setup: OrgSetup) -> None:
    await as_role(factory, setup, lambda s, ctx: model_access.set_provider(s, ctx, "openai", enabled=False))
    await as_role(factory, setup, lambda s, ctx: model_access.set_provider(s, ctx, "openai", enabled=False))
    await as_role(factory, setup, lambda s, ctx: model_access.set_provider(s, ctx, "openai", enabled=True))
    await as_role(factory, setup, lambda s, ctx: model_access.set_model(s, ctx, ECHO, enabled=True))  # no-op
    await as_role(factory, setup, lambda s, ctx: model_access.set_model(s, ctx, ECHO, enabled=False))
    events = await audit_actions(factory, setup)
    assert [(e.action, e.target_id, e.before, e.after) for e in events] == [
        ("model_access.provider_disabled", "openai", {"enabled": True}, {"enabled": False}),
        ("model_access.provider_enabled", "openai", {"enabled": False}, {"enabled": True}),
        ("model_access.model_disabled", ECHO, {"enabled": True}, {"enabled": False}),
    ]
    assert {e.actor_user_id for e in events} == {setup.users[Role.admin].id}


async def test_unknown_providers_and_models_are_404(factory: Factory, setup: OrgSetup) -> None:
    with pytest.raises(NotFound):
        await as_role(factory, setup, lambda s, ctx: model_access.set_provider(s, ctx, "nope", enabled=False))
    with pytest.raises(NotFound):
        await as_role(
            factory, setup, lambda s, ctx: model_access.set_model(s, ctx, "openai/nope", enabled=False)
        )
    assert await audit_actions(factory, setup) == []


async def test_default_model_must_be_allowed_and_priced(factory: Factory, setup: OrgSetup) -> None:
    async def set_default(model_id: str | None) -> str | None:
        return await as_role(factory, setup, lambda s, ctx: model_access.set_default_model(s, ctx, model_id))

    with pytest.raises(BadRequest, match="No model"):
        await set_default("openai/not-a-model")
    with pytest.raises(Conflict, match=TRAINING_OPTED_OUT):
        await set_default(DEEPSEEK)
    await as_role(factory, setup, lambda s, ctx: model_access.set_model(s, ctx, ECHO, enabled=False))
    with pytest.raises(Conflict, match=MODEL_DISABLED):
        await set_default(ECHO)

    assert await set_default(GPT4O) == GPT4O
    assert await set_default(GPT4O) == GPT4O  # unchanged: not audited again
    result = await listing(factory, setup)
    assert result.default_model_id == GPT4O and result.default_model_blocked_reason is None
    # Switching the default's provider off later is allowed, and the listing says the default is blocked.
    await as_role(factory, setup, lambda s, ctx: model_access.set_provider(s, ctx, "openai", enabled=False))
    assert (await listing(factory, setup)).default_model_blocked_reason == PROVIDER_DISABLED
    assert await set_default(None) is None

    changes = [
        e for e in await audit_actions(factory, setup) if e.action == "model_access.default_model_changed"
    ]
    assert [(e.before, e.after) for e in changes] == [
        ({"default_model_id": None}, {"default_model_id": GPT4O}),
        ({"default_model_id": GPT4O}, {"default_model_id": None}),
    ]


async def test_an_unpriced_model_cannot_be_the_default(factory: Factory, setup: OrgSetup) -> None:
    await factory.run(lambda s: catalog.add_model(s, "local/llama-free"))
    with pytest.raises(BadRequest, match="no price"):
        await as_role(
            factory, setup, lambda s, ctx: model_access.set_default_model(s, ctx, "local/llama-free")
        )


async def test_filters_and_paging(factory: Factory, setup: OrgSetup) -> None:
    async def ids(filters: AccessFilters, **paging: int) -> list[str]:
        return [m.view.model.id for m in (await listing(factory, setup, filters, **paging)).models]

    assert set(await ids(AccessFilters(state="blocked"))) == {
        m for m in await ids(AccessFilters(), limit=500) if m.startswith("deepseek/")
    }
    found = await ids(AccessFilters(search="GPT-4O-MINI"))
    assert "openai/gpt-4o-mini" in found and all("gpt-4o-mini" in m for m in found)
    trains = await ids(AccessFilters(ModelFilters(trains_on_prompts=True)))
    assert trains and all(m.startswith("deepseek/") for m in trains)
    assert all(
        m.startswith("simulated/") for m in await ids(AccessFilters(ModelFilters(provider="simulated")))
    )
    embeddings = await ids(AccessFilters(output_modality="embedding"))
    assert "openai/text-embedding-3-small" in embeddings and GPT4O not in embeddings
    images_in = await ids(AccessFilters(input_modality="image"), limit=500)
    assert GPT4O in images_in and "openai/text-embedding-3-small" not in images_in
    big = await ids(AccessFilters(ModelFilters(min_context_length=1_000_000)), limit=500)
    assert "simulated/reasoning" in big and GPT4O not in big
    cheap = await ids(AccessFilters(ModelFilters(max_input_price_per_mtok=Decimal("0.2"))), limit=500)
    assert "openai/gpt-4o-mini" in cheap and GPT4O not in cheap

    everything = await ids(AccessFilters(), limit=500)
    first, second = await ids(AccessFilters(), limit=10), await ids(AccessFilters(), offset=10, limit=10)
    assert first + second == everything[:20]
    page = await listing(factory, setup, AccessFilters(), offset=10, limit=10)
    assert page.total == len(everything) and (page.offset, page.limit) == (10, 10)


async def test_the_modality_filters_find_the_model_families_of_every_provider(
    factory: Factory, setup: OrgSetup
) -> None:
    """Modalities come from the curated file's family rules, not only from the few models with an entry of
    their own: "takes images" lists the models of every provider that has them, and no text-only model."""
    others = ["anthropic", "google", "mistral", "openrouter"]
    await factory.run(lambda s: catalog.sync(s, provider_ids=others))

    async def ids(filters: AccessFilters) -> set[str]:
        found: set[str] = set()
        while True:  # every page
            page = await listing(factory, setup, filters, offset=len(found), limit=500)
            found |= {m.view.model.id for m in page.models}
            if len(found) >= page.total:
                return found

    images = await ids(AccessFilters(input_modality="image"))
    assert len(images) > 200
    assert {m.split("/", 1)[0] for m in images} == {
        "openai",
        "anthropic",
        "google",
        "mistral",
        "openrouter",
        "simulated",
    }
    assert {
        GPT4O,  # its own entry
        "openai/gpt-5.4-mini",
        "anthropic/claude-3-haiku",
        "anthropic/claude-sonnet-4-6",
        "google/gemini-3.5-flash",
        "google/claude-opus-4-5",
        "mistral/pixtral-large",
        "openrouter/anthropic/claude-opus-4.5",
        "openrouter/meta-llama/llama-3.2-11b-vision-instruct",
        "simulated/reasoning",
    } <= images
    text_only = {
        "openai/o3-mini",
        "openai/gpt-oss-120b",
        "openrouter/meta-llama/llama-3.2-3b-instruct",
        DEEPSEEK,
    }
    assert not text_only & images
    assert text_only <= await ids(AccessFilters(input_modality="text"))

    audio_in = await ids(AccessFilters(input_modality="audio"))
    assert {"openai/gpt-audio", "google/gemini-2.5-pro", "google/gemini-1.5-pro"} <= audio_in
    assert GPT4O not in audio_in
    embedders = {"openai/text-embedding-ada-002", "mistral/mistral-embed", "google/gemini-embedding-001"}
    assert embedders <= await ids(AccessFilters(output_modality="embedding"))
    # A model the curated file says nothing about has no modalities: no modality filter lists it.
    unknown = "openai/gpt-6-astra"
    assert unknown in await ids(AccessFilters(search="gpt-6-astra"))
    assert unknown not in images | await ids(AccessFilters(input_modality="text"))


async def test_unknown_state_filter_is_refused(factory: Factory, setup: OrgSetup) -> None:
    with pytest.raises(BadRequest):
        await listing(factory, setup, AccessFilters(state="maybe"))
