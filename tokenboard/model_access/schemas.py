from __future__ import annotations

from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tokenboard.catalog.schemas import DataPolicy, PricesOut
from tokenboard.catalog.service import ModelFilters
from tokenboard.model_access.service import (
    AccessCatalog,
    AccessFilters,
    ModelAccessView,
    ProviderAccessView,
)

MAX_PAGE = 500


class Schema(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelAccessQuery(BaseModel):
    """Filters and paging for the organization's view of the catalog (query parameters, page and API).

    An empty value means "any", so the page's filter form can send every field.
    """

    trains_on_prompts: bool | None = Field(default=None, description="The provider trains on prompts.")
    retains_prompts: bool | None = Field(default=None, description="The provider retains prompts.")
    may_publish: bool | None = Field(default=None, description="The provider may publish prompts.")
    location: str | None = Field(
        default=None, max_length=40, description="Headquarters country (US) or region (eu)."
    )
    modality: str | None = Field(default=None, max_length=40, description="Input or output: text, image...")
    input_modality: str | None = Field(default=None, max_length=40)
    output_modality: str | None = Field(default=None, max_length=40)
    min_context_length: int | None = Field(default=None, ge=0, le=100_000_000)
    max_input_price: Decimal | None = Field(
        default=None, ge=0, le=1_000_000, description="USD per million input tokens."
    )
    max_output_price: Decimal | None = Field(
        default=None, ge=0, le=1_000_000, description="USD per million output tokens."
    )
    provider: str | None = Field(default=None, max_length=64)
    q: str | None = Field(default=None, max_length=200, description="Text in the model's id or name.")
    state: Literal["allowed", "blocked"] | None = Field(default=None, description="The effective state.")
    offset: int = Field(default=0, ge=0, le=1_000_000)
    limit: int = Field(default=100, ge=0, le=MAX_PAGE)

    @model_validator(mode="before")
    @classmethod
    def _blank_means_any(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if v != ""}
        return data

    def filters(self) -> AccessFilters:
        return AccessFilters(
            catalog=ModelFilters(
                trains_on_prompts=self.trains_on_prompts,
                retains_prompts=self.retains_prompts,
                may_publish=self.may_publish,
                location=self.location,
                modality=self.modality,
                min_context_length=self.min_context_length,
                max_input_price_per_mtok=self.max_input_price,
                max_output_price_per_mtok=self.max_output_price,
                provider=self.provider,
            ),
            search=self.q,
            input_modality=self.input_modality,
            output_modality=self.output_modality,
            state=self.state,
        )


class ProviderAccess(Schema):
    id: str
    name: str
    enabled: bool = Field(description="The organization's switch for the provider.")
    allowed: bool = Field(description="Whether its models can be used (also false when opted out).")
    blocked_reason: str | None
    headquarters_country: str | None
    regions: list[str]
    data_policy: DataPolicy
    model_count: int

    @classmethod
    def of(cls, state: ProviderAccessView) -> ProviderAccess:
        p = state.provider
        return cls(
            id=p.id,
            name=p.name,
            enabled=state.enabled,
            allowed=state.blocked_reason is None,
            blocked_reason=state.blocked_reason,
            headquarters_country=p.headquarters_country,
            regions=list(p.regions or []),
            data_policy=DataPolicy(
                trains_on_prompts=p.trains_on_prompts,
                retains_prompts=p.retains_prompts,
                may_publish=p.may_publish,
            ),
            model_count=state.model_count,
        )


class ModelAccess(Schema):
    id: str
    name: str
    provider_id: str
    provider_name: str
    context_length: int | None
    max_output_tokens: int | None = Field(description="The most tokens one reply may have; null: unknown.")
    input_modalities: list[str] | None
    output_modalities: list[str] | None
    prices: PricesOut | None = Field(description="The price in force now, USD per million tokens.")
    data_policy: DataPolicy
    headquarters_country: str | None
    regions: list[str]
    enabled: bool = Field(description="The organization's switch for the model.")
    provider_enabled: bool
    allowed: bool = Field(description="The effective state: what the gateway does.")
    blocked_reason: str | None = Field(
        description='"provider disabled", "model disabled", '
        '"provider trains on prompts and the organization opted out" or '
        '"provider not configured on this gateway".'
    )
    is_default: bool

    @classmethod
    def of(cls, state: ModelAccessView) -> ModelAccess:
        model, provider, prices = state.view.model, state.view.provider, state.view.prices
        return cls(
            id=model.id,
            name=model.name,
            provider_id=provider.id,
            provider_name=provider.name,
            context_length=model.context_length,
            max_output_tokens=model.max_output_tokens,
            input_modalities=model.input_modalities,
            output_modalities=model.output_modalities,
            prices=PricesOut.of(prices) if prices is not None else None,
            data_policy=DataPolicy(
                trains_on_prompts=provider.trains_on_prompts,
                retains_prompts=provider.retains_prompts,
                may_publish=provider.may_publish,
            ),
            headquarters_country=provider.headquarters_country,
            regions=list(provider.regions or []),
            enabled=state.enabled,
            provider_enabled=state.provider_enabled,
            allowed=state.allowed,
            blocked_reason=state.blocked_reason,
            is_default=state.is_default,
        )


class ModelAccessPage(Schema):
    opt_out_training_providers: bool = Field(description="The organization refuses training providers.")
    default_model_id: str | None
    default_model_blocked_reason: str | None = Field(
        description="Set when the default model can no longer be used."
    )
    providers: list[ProviderAccess]
    models: list[ModelAccess] = Field(description="One page of the models matching the filters.")
    total: int = Field(description="How many models match the filters.")
    offset: int
    limit: int

    @classmethod
    def of(cls, result: AccessCatalog) -> ModelAccessPage:
        return cls(
            opt_out_training_providers=result.opt_out_training_providers,
            default_model_id=result.default_model_id,
            default_model_blocked_reason=result.default_model_blocked_reason,
            providers=[ProviderAccess.of(p) for p in result.providers],
            models=[ModelAccess.of(m) for m in result.models],
            total=result.total,
            offset=result.offset,
            limit=result.limit,
        )


class AccessUpdate(Schema):
    enabled: bool


class DefaultModelUpdate(Schema):
    model_id: str | None = Field(
        max_length=200, description="A catalog model id such as openai/gpt-4o; null clears the default."
    )


class DefaultModel(Schema):
    default_model_id: str | None
