"""The curated file's family rules: checked at load, each one in use, a model's own entry first, the first
rule that matches a model its only family."""

from __future__ import annotations

import copy
from functools import cache
from typing import Any

import pytest
from genai_prices import data_snapshot

from tokenboard.catalog import reference
from tokenboard.catalog.curated_file import (
    MODALITIES,
    CuratedFileError,
    family_of,
    family_rules,
    validate,
    with_family,
)
from tokenboard.catalog.reference import curated, families, load_reference
from tokenboard.web.pages.model_access import MODALITIES as PAGE_MODALITIES

TEXT_IMAGE = (["text", "image"], ["text"])
TEXT = (["text"], ["text"])
GEMINI = (["text", "image", "audio", "video"], ["text"])

# A known model of each kind of family, with the modalities its maker states.
EXAMPLES = {
    "anthropic/claude-3-haiku": TEXT_IMAGE,
    "anthropic/claude-sonnet-4-6": TEXT_IMAGE,
    "anthropic/claude-fable-5": TEXT_IMAGE,
    "anthropic/claude-2": TEXT,
    "openai/gpt-4o-2024-05-13": TEXT_IMAGE,
    "openai/gpt-4.1-nano": TEXT_IMAGE,
    "openai/gpt-5.4-mini": TEXT_IMAGE,
    "openai/o1": TEXT_IMAGE,
    "openai/o3-mini": TEXT,
    "openai/gpt-3.5-turbo": TEXT,
    "openai/gpt-oss-120b": TEXT,
    "openai/text-embedding-ada-002": (["text"], ["embedding"]),
    "openai/gpt-audio": (["text", "audio"], ["text", "audio"]),
    "openai/gpt-4o-transcribe": (["text", "audio"], ["text"]),
    "openai/whisper-1": (["audio"], ["text"]),
    "openai/tts-1": (["text"], ["audio"]),
    "openai/gpt-image-1": (["text", "image"], ["image"]),
    "google/gemini-1.5-pro": GEMINI,
    "google/gemini-3.5-flash": GEMINI,
    "google/gemini-2.5-flash-image": (["text", "image"], ["text", "image"]),
    "google/gemini-2.5-flash-tts": (["text"], ["audio"]),
    "google/gemini-embedding-001": (["text"], ["embedding"]),
    "google/claude-opus-4-5": TEXT_IMAGE,
    "mistral/pixtral-large": TEXT_IMAGE,
    "mistral/mistral-nemo": TEXT,
    "mistral/mistral-embed": (["text"], ["embedding"]),
    "mistral/voxtral-small-24b-2507": (["text", "audio"], ["text"]),
    "deepseek/deepseek-v3.2": TEXT,
    "openrouter/anthropic/claude-opus-4.5": TEXT_IMAGE,
    "openrouter/openai/gpt-5-mini": TEXT_IMAGE,
    "openrouter/google/gemini-3-flash-preview": GEMINI,
    "openrouter/mistralai/pixtral-12b": TEXT_IMAGE,
    "openrouter/deepseek/deepseek-r1": TEXT,
    "openrouter/meta-llama/llama-3.2-11b-vision-instruct": TEXT_IMAGE,
    "openrouter/meta-llama/llama-3.2-3b-instruct": TEXT,
    "openrouter/meta-llama/llama-4-scout": TEXT_IMAGE,
    "openrouter/qwen/qwen2.5-vl-72b-instruct": (["text", "image", "video"], ["text"]),
    "openrouter/amazon/nova-pro-v1": (["text", "image", "video"], ["text"]),
}


def installed() -> dict[str, list[str]]:
    """The genai-prices model ids of every provider the curated file covers."""
    covered = curated()["providers"]
    return {p.id: [m.id for m in p.models] for p in data_snapshot.get_snapshot().providers if p.id in covered}


def test_every_family_rule_is_the_family_of_an_installed_model() -> None:
    """A rule that matches nothing (a typo, a model genai-prices dropped), or only models an earlier rule has
    taken, states nothing: fix or remove it."""
    rules = families()
    assert len(rules) >= 40
    used: set[int] = set()
    for provider_id, model_ids in installed().items():
        for model_id in model_ids:
            rule = family_of(rules, provider_id, model_id)
            if rule is not None:
                used.add(rules.index(rule))
    unused = [f"{rules[i].provider}: {rules[i].pattern.pattern}" for i in range(len(rules)) if i not in used]
    assert unused == []


def test_every_family_rule_names_its_source_and_known_modalities() -> None:
    for rule in families():
        assert rule.source["title"] and rule.source["url"].startswith("https://"), rule.pattern.pattern
        for key in ("input_modalities", "output_modalities"):
            assert set(rule.facts[key]) <= set(MODALITIES), rule.pattern.pattern


def test_one_vocabulary_of_modalities() -> None:
    """The curated file, its model entries included, names modalities as the model-access page does."""
    assert MODALITIES == PAGE_MODALITIES
    data = curated()
    for spec in (*data["models"].values(), *data["simulated_models"].values()):
        for key in ("input_modalities", "output_modalities"):
            assert set(spec.get(key, [])) <= set(MODALITIES)


@pytest.mark.parametrize(("model_id", "expected"), sorted(EXAMPLES.items()))
def test_a_known_model_of_each_family_gets_the_stated_modalities(
    model_id: str, expected: tuple[list[str], list[str]]
) -> None:
    provider_id, upstream_id = model_id.split("/", 1)
    assert model_id not in curated()["models"]  # the family, not an entry of its own, gives them
    rule = family_of(families(), provider_id, upstream_id)
    assert rule is not None
    model = models()[model_id]
    assert (model.input_modalities, model.output_modalities) == expected
    fact = model.details["facts"]["modalities"]
    assert fact["value"] == {"input": expected[0], "output": expected[1]}
    assert fact["source"] == rule.source and fact["family"] == rule.pattern.pattern


def test_a_model_entry_wins_over_its_family() -> None:
    """Claude Opus 4.1 has an entry of its own (modalities and maximum output): its family matches it too, but
    the entry's values are the model's, and no family fact is recorded for it."""
    data = curated()
    own = data["models"]["anthropic/claude-opus-4-1"]
    assert family_of(families(), "anthropic", "claude-opus-4-1") is not None
    model = models()["anthropic/claude-opus-4-1"]
    assert model.input_modalities == own["input_modalities"]
    assert model.output_modalities == own["output_modalities"]
    assert model.max_output_tokens == own["max_output_tokens"]["value"]
    assert "modalities" not in model.details["facts"]


def test_the_entry_wins_field_by_field_and_the_first_matching_rule_is_the_family() -> None:
    rules = family_rules(
        {
            "families": [
                {
                    "provider": "acme",
                    "match": r"rocket-\d+",
                    "input_modalities": ["text", "image"],
                    "output_modalities": ["text"],
                    "max_output_tokens": {
                        "value": 4096,
                        "source": {"title": "Acme: limits", "url": "https://a"},
                    },
                    "source": {"title": "Acme: models", "url": "https://acme.example/models"},
                },
                {
                    "provider": "acme",
                    "match": r"rocket-.*",
                    "input_modalities": ["audio"],
                    "output_modalities": ["audio"],
                    "source": {"title": "Acme: audio", "url": "https://acme.example/audio"},
                },
            ]
        }
    )
    first, second = rules
    assert family_of(rules, "acme", "rocket-1") is first
    assert family_of(rules, "acme", "rocket-x") is second
    assert family_of(rules, "acme", "xrocket-1") is None  # matched as a whole, not searched
    assert family_of(rules, "other", "rocket-1") is None

    spec, taken = with_family({"context_length": 8000}, first)
    assert spec["input_modalities"] == ["text", "image"] and spec["max_output_tokens"]["value"] == 4096
    assert (
        spec["context_length"] == 8000
        and taken["modalities"]["source"]["url"] == "https://acme.example/models"
    )

    own = {"input_modalities": ["text"], "output_modalities": ["text"]}
    spec, taken = with_family(own, first)
    assert (spec["input_modalities"], spec["output_modalities"]) == (["text"], ["text"])
    assert spec["max_output_tokens"]["value"] == 4096 and taken == {}

    spec, taken = with_family(own, None)
    assert spec == own and taken == {}


def test_a_family_rule_applies_through_the_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    """A rule added ahead of the shipped ones takes the models it matches; the shipped entries still win."""
    data = copy.deepcopy(curated())
    data["families"].insert(
        0,
        {
            "provider": "openai",
            "match": r"gpt-4o.*",
            "input_modalities": ["text", "image", "audio"],
            "output_modalities": ["text", "audio"],
            "source": {"title": "test", "url": "https://example.test"},
        },
    )
    validate(data)
    monkeypatch.setattr(reference, "curated", lambda: data)
    monkeypatch.setattr(reference, "families", lambda: family_rules(data))
    by_id = {m.id: m for m in load_reference(["openai"]).models}
    assert by_id["openai/gpt-4o-2024-05-13"].input_modalities == ["text", "image", "audio"]
    assert by_id["openai/gpt-4o"].input_modalities == ["text", "image"]  # its own entry


def test_coverage_reaches_most_of_the_first_party_catalog() -> None:
    """The families give modalities to most of the makers' own models (a floor, so that a broken rule that
    silently matches nothing shows here too)."""
    known = [m for m in models().values() if m.input_modalities]
    by_provider = {p: sum(1 for m in known if m.provider_id == p) for p in ("anthropic", "openai", "google")}
    assert by_provider["anthropic"] == 27 and by_provider["openai"] >= 70 and by_provider["google"] >= 50
    assert len(known) >= 550


def bad(**change: Any) -> dict[str, Any]:
    """The curated file with its first family rule changed (a key set to None is removed)."""
    data = copy.deepcopy(curated())
    rule = data["families"][0]
    for key, value in change.items():
        if value is None:
            rule.pop(key, None)
        else:
            rule[key] = value
    return data


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"matches": "claude-.*"}, "unknown keys"),
        ({"match": "claude-(3"}, "not a regular expression"),
        ({"match": ""}, "must be a regular expression"),
        ({"input_modalities": []}, "non-empty list"),
        ({"output_modalities": ["pictures"]}, "not one of"),
        ({"input_modalities": ["text", "text"]}, "repeats"),
        ({"output_modalities": None}, "go together"),
        ({"provider": "nobody"}, "not one the file covers"),
        ({"source": None}, "missing"),
        ({"source": {"title": "Anthropic"}}, "'source' must be"),
        ({"max_output_tokens": {"value": 0, "source": {"title": "t", "url": "u"}}}, "positive whole number"),
        ({"input_modalities": None, "output_modalities": None}, "states no fact"),
    ],
)
def test_a_wrong_family_rule_is_refused_at_load(change: dict[str, Any], message: str) -> None:
    with pytest.raises(CuratedFileError, match=message):
        validate(bad(**change))


def test_wrong_model_entries_and_top_level_keys_are_refused() -> None:
    data = copy.deepcopy(curated())
    data["models"]["openai/gpt-4o"]["modalities"] = ["text"]
    with pytest.raises(CuratedFileError, match="unknown keys"):
        validate(data)
    data = copy.deepcopy(curated())
    data["models"]["openai/gpt-4o"]["input_modalities"] = []
    with pytest.raises(CuratedFileError, match="non-empty list"):
        validate(data)
    data = copy.deepcopy(curated())
    data["family"] = []
    with pytest.raises(CuratedFileError, match="unknown top-level keys"):
        validate(data)


@cache
def models() -> dict[str, reference.ReferenceModel]:
    """The shipped reference catalog by model id (read once)."""
    return {m.id: m for m in load_reference().models}
