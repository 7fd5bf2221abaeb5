"""Realistic synthetic usage for the demo and the benchmarks: deterministic for a seed and an end time.

A year of conversations (several messages each) over working hours, quiet weekends and a slow upward trend;
a few heavy users; a model mix across providers with per-user preferences; streaming, errors and
cancellations; features, tools and integrations. Costs are priced from the catalog like any event.
"""

from __future__ import annotations

import itertools
import random
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from tokenboard.catalog.pricing import Prices, TokenUsage, cost_nanousd
from tokenboard.catalog.service import CatalogCache

# Preferred demo models (those present and priced in the catalog are used), with their popularity.
MODEL_MIX: tuple[tuple[str, float], ...] = (
    ("anthropic/claude-sonnet-4-5", 26),
    ("openai/gpt-4o-mini", 18),
    ("openai/gpt-4.1", 12),
    ("google/gemini-2.5-flash", 10),
    ("openai/gpt-5-mini", 8),
    ("anthropic/claude-opus-4-1", 4),
    ("google/gemini-2.5-pro", 5),
    ("mistral/codestral-2508", 6),
    ("deepseek/deepseek-chat", 5),
    ("openai/gpt-4o", 6),
)
FEATURES = (("chat", 55), ("agents", 25), ("search", 12), ("analysis", 8))
TOOLS = ((None, 50), ("web_search", 15), ("code_generation", 20), ("document_analysis", 10), ("image", 5))
INTEGRATIONS = ((None, 60), ("slack", 18), ("gmail", 10), ("notion", 7), ("salesforce", 5))
# Share of a weekday's requests in each UTC hour: office hours, a lunch dip, a little at night.
HOUR_WEIGHTS = (1, 1, 1, 1, 1, 2, 4, 10, 22, 30, 32, 30, 18, 26, 31, 30, 26, 18, 10, 7, 5, 4, 2, 1)
WEEKDAY_WEIGHTS = (1.0, 1.05, 1.05, 1.0, 0.85, 0.14, 0.08)


@dataclass(frozen=True, slots=True)
class Person:
    user_id: uuid.UUID | None
    team_id: uuid.UUID | None = None
    workspace_id: uuid.UUID | None = None


# Weight of each model beyond the mix (``models=``): a long tail, each about a sixth as popular as the
# least used model of the mix.
TAIL_WEIGHT = 0.7


def priced_models(
    catalog: CatalogCache, when: datetime, count: int | None = None
) -> list[tuple[str, str, float]]:
    """(model, provider, weight) of the mix that the catalog has and prices; any priced models otherwise.

    With ``count``, exactly that many models when the catalog prices enough: the mix first, then a long tail
    of other priced chat models of the mix's providers (taken in turn), then of any provider.
    """
    found = []
    for model_id, weight in MODEL_MIX:
        entry = catalog.get(model_id)
        if entry is not None and entry.price_at(when) is not None:
            found.append((model_id, entry.provider_id, weight))
    if count is not None:
        found = found[:count]
        if len(found) < count:
            providers = {provider for _, provider, _ in found}
            taken = {model for model, _, _ in found}
            per_provider: dict[str, list[str]] = {}
            for e in catalog.entries():
                if e.model_id not in taken and _priced_per_token(e.price_at(when)):
                    per_provider.setdefault(e.provider_id, []).append(e.model_id)
            # Round robin over the providers (by name), each provider's models by name.
            others = sorted(
                (provider not in providers, rank, provider, model)
                for provider, models in per_provider.items()
                for rank, model in enumerate(sorted(models))
            )
            found += [(model, provider, TAIL_WEIGHT) for *_, provider, model in others[: count - len(found)]]
    if not found:
        entries = [e for e in catalog.entries() if e.price_at(when) is not None][:8]
        found = [(e.model_id, e.provider_id, 1.0) for e in entries]
    if not found:
        raise ValueError("the catalog has no priced model: run `tokenboard catalog sync` first")
    return found


def _priced_per_token(prices: Prices | None) -> bool:
    """A chat model's prices: input and output tokens both cost something (no embedding or image model)."""
    return prices is not None and prices.input > 0 and prices.output > 0


class _Choice:
    """Weighted options with their cumulative weights computed once: ``pick`` draws exactly what
    ``rnd.choices(options, weights=...)`` would, without summing the weights on every draw."""

    __slots__ = ("cumulative", "options")

    def __init__(self, options: Sequence[Any], weights: Sequence[float]) -> None:
        self.options = list(options)
        self.cumulative = list(itertools.accumulate(weights))

    def pick(self, rnd: random.Random) -> Any:
        return rnd.choices(self.options, cum_weights=self.cumulative)[0]


def _choice(options: Sequence[tuple[Any, float]]) -> _Choice:
    return _Choice([o for o, _ in options], [w for _, w in options])


_HOURS = _Choice(range(24), HOUR_WEIGHTS)
_FEATURES, _TOOLS, _INTEGRATIONS = _choice(FEATURES), _choice(TOOLS), _choice(INTEGRATIONS)


class UsageGenerator:
    """Yields usage-event rows in time order, in batches, for one organization.

    ``models``: how many distinct models the events use (the benchmarks ask for 40); the mix by default.
    """

    def __init__(
        self,
        organization_id: uuid.UUID,
        people: Sequence[Person],
        catalog: CatalogCache,
        *,
        events: int,
        end: datetime,
        days: int = 365,
        seed: int = 7,
        source: str = "demo",
        models: int | None = None,
    ) -> None:
        self.organization_id = organization_id
        self.people = list(people)
        self.catalog = catalog
        self.events = events
        # Whole UTC days, the last one ending at the midnight before ``end``: no event is in the future.
        midnight = end.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        self.start = midnight - timedelta(days=days)
        self.end = midnight
        self.days = days
        self.seed = seed
        self.source = source
        self.models = priced_models(catalog, self.end, models)
        rnd = random.Random(seed)
        # A few heavy users: weights fall off like a power law over a shuffled order.
        order = list(range(len(self.people)))
        rnd.shuffle(order)
        self.person_weights = [0.0] * len(self.people)
        for rank, index in enumerate(order):
            self.person_weights[index] = 1.0 / (rank + 1) ** 1.1
        self._persons = _Choice(range(len(self.people)), self.person_weights)
        self._models = _Choice(self.models, [w for _, _, w in self.models])
        # Each person's favourite model, as popular as the model: the long tail is nobody's favourite often.
        self.favourites = [self._models.pick(rnd) for _ in self.people]
        self._prices: dict[tuple[str, int], Prices | None] = {}

    def _day_counts(self, rnd: random.Random) -> list[int]:
        weights = []
        for d in range(self.days):
            day = self.start + timedelta(days=d)
            trend = 0.6 + 0.6 * d / max(1, self.days - 1)
            weights.append(WEEKDAY_WEIGHTS[day.weekday()] * trend * rnd.uniform(0.8, 1.2))
        total = sum(weights)
        counts = [int(self.events * w / total) for w in weights]
        busiest = sorted(range(self.days), key=lambda d: -weights[d])
        for i in range(self.events - sum(counts)):  # hand out the remainder to the busiest days
            counts[busiest[i % self.days]] += 1
        return counts

    def batches(self, size: int = 5_000) -> Iterator[list[dict[str, Any]]]:
        rnd = random.Random(self.seed)
        batch: list[dict[str, Any]] = []
        number = 0
        for d, count in enumerate(self._day_counts(rnd)):
            day = self.start + timedelta(days=d)
            made = 0
            conversations: list[list[dict[str, Any]]] = []
            while made < count:
                messages = self._conversation(rnd, day, number, min(count - made, rnd.randint(1, 8)))
                conversations.append(messages)
                made += len(messages)
                number += len(messages)
            day_events = sorted((e for c in conversations for e in c), key=lambda e: e["created_at"])
            for event in day_events:
                batch.append(event)
                if len(batch) >= size:
                    yield batch
                    batch = []
        if batch:
            yield batch

    def _conversation(
        self, rnd: random.Random, day: datetime, number: int, length: int
    ) -> list[dict[str, Any]]:
        index = self._persons.pick(rnd)
        person = self.people[index]
        model_id, provider_id, _ = self.favourites[index] if rnd.random() < 0.6 else self._models.pick(rnd)
        at = day + timedelta(hours=_HOURS.pick(rnd), seconds=rnd.randrange(3600))
        attribution = {
            "feature": _FEATURES.pick(rnd),
            "tool": _TOOLS.pick(rnd),
            "integration": _INTEGRATIONS.pick(rnd),
        }
        conversation_id = f"conv-{self.seed}-{number}"
        messages = []
        context = 0
        for m in range(length):
            context += int(rnd.lognormvariate(6.5, 0.9))
            event = self._event(
                rnd, person, model_id, provider_id, at, number + m, context, conversation_id, m
            )
            event.update(attribution)
            messages.append(event)
            at += timedelta(seconds=rnd.randint(20, 240))
        return messages

    def _event(
        self,
        rnd: random.Random,
        person: Person,
        model_id: str,
        provider_id: str,
        at: datetime,
        number: int,
        context: int,
        conversation_id: str,
        message: int,
    ) -> dict[str, Any]:
        failed = rnd.random() < 0.02
        stream = rnd.random() < 0.6
        cancelled = stream and not failed and rnd.random() < 0.015
        cached = int(context * rnd.uniform(0.3, 0.8)) if message and provider_id != "deepseek" else 0
        output = 0 if failed else int(rnd.lognormvariate(5.8, 0.8))
        reasoning = int(output * rnd.uniform(0.2, 1.5)) if not failed and "gpt-5" in model_id else 0
        if cancelled:
            output //= 3
        # One Claude request in 17 used the web search tool (1 to 3 searches); decided from the request's
        # number, not the random stream, so every other value of the demo stays as it was.
        searches = 1 + number % 3 if provider_id == "anthropic" and not failed and number % 17 == 0 else 0
        usage = TokenUsage(
            input_tokens=context - cached,
            cached_input_tokens=cached,
            output_tokens=output,
            reasoning_tokens=reasoning,
            web_searches=searches,
        )
        prices = self._price(model_id, at)
        cost = 0 if failed or prices is None else cost_nanousd(prices, usage)
        latency = int(250 + (output + reasoning) * rnd.uniform(8, 25) * (0.3 if failed else 1))
        return {
            "organization_id": self.organization_id,
            "request_id": f"{self.source}-{self.seed}-{number}",
            "created_at": at,
            "source": self.source,
            "route": "chat",
            "user_id": person.user_id,
            "team_id": person.team_id,
            "workspace_id": person.workspace_id,
            "provider_id": provider_id,
            "model_id": model_id,
            "stream": stream,
            "status_code": rnd.choice((500, 429, 503)) if failed else 200,
            "error_type": "upstream_error" if failed else None,
            "input_tokens": usage.input_tokens,
            "cached_input_tokens": cached,
            "output_tokens": output,
            "reasoning_tokens": reasoning,
            "web_searches": searches,
            "cost_nanousd": cost,
            "cancelled": cancelled,
            "latency_ms": latency,
            "time_to_first_token_ms": int(latency * 0.2) if stream else None,
            "conversation_id": conversation_id,
            "message_id": f"{conversation_id}-{message}",
        }

    def _price(self, model_id: str, at: datetime) -> Prices | None:
        key = (model_id, at.toordinal())
        if key not in self._prices:
            entry = self.catalog.get(model_id)
            self._prices[key] = entry.price_at(at) if entry is not None else None
        return self._prices[key]
