"""The curated file's rules: what its model entries and family rules may say, checked when it is loaded, and
which family rule a genai-prices model falls under.

A family rule states facts for every model of one provider whose genai-prices id matches a regular
expression (matched against the whole id). A model's own entry in ``models`` wins over its family field by
field (the two modality lists count as one field); among the family rules the first that matches a model is
its family, and the rules after it are not consulted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

# What a model takes and gives: one vocabulary for the curated file, the catalog and its filters.
MODALITIES = ("text", "image", "audio", "video", "embedding")

_TOP_KEYS = {"about", "reviewed", "providers", "families", "models", "simulated_models"}
_MODEL_KEYS = {"context_length", "input_modalities", "output_modalities", "max_output_tokens"}
_FAMILY_KEYS = {
    "provider",
    "match",
    "input_modalities",
    "output_modalities",
    "max_output_tokens",
    "source",
    "note",
}
_MODALITY_KEYS = ("input_modalities", "output_modalities")


class CuratedFileError(ValueError):
    """The curated file says something Tokenboard cannot apply; the message names where."""


@dataclass(frozen=True)
class FamilyRule:
    provider: str
    pattern: re.Pattern[str]
    # The facts the rule states, shaped as a model entry's: input/output_modalities, max_output_tokens.
    facts: dict[str, Any]
    source: dict[str, str]
    note: str | None = None

    def matches(self, provider_id: str, model_id: str) -> bool:
        """Whether the genai-prices model ``model_id`` (without the provider) is of this family."""
        return provider_id == self.provider and self.pattern.fullmatch(model_id) is not None


def validate(data: dict[str, Any]) -> None:
    """Raise :class:`CuratedFileError` unless every model entry and family rule can be applied as written."""
    unknown = set(data) - _TOP_KEYS
    if unknown:
        raise CuratedFileError(f"unknown top-level keys {sorted(unknown)}")
    providers = data.get("providers")
    if not isinstance(providers, dict) or not isinstance(data.get("models"), dict):
        raise CuratedFileError("'providers' and 'models' must be objects")
    for model_id, spec in data["models"].items():
        _check_model(f"models[{model_id!r}]", spec)
    families = data.get("families", [])
    if not isinstance(families, list):
        raise CuratedFileError("'families' must be a list of rules")
    for index, rule in enumerate(families):
        _check_family(f"families[{index}]", rule, providers)


def family_rules(data: dict[str, Any]) -> tuple[FamilyRule, ...]:
    """The file's family rules, in order (the file must have passed :func:`validate`)."""
    return tuple(
        FamilyRule(
            provider=rule["provider"],
            pattern=re.compile(rule["match"]),
            facts={k: rule[k] for k in (*_MODALITY_KEYS, "max_output_tokens") if k in rule},
            source=rule["source"],
            note=rule.get("note"),
        )
        for rule in data.get("families", [])
    )


def family_of(rules: tuple[FamilyRule, ...], provider_id: str, model_id: str) -> FamilyRule | None:
    """The first rule ``model_id`` (a genai-prices id, without the provider) matches, if any."""
    return next((rule for rule in rules if rule.matches(provider_id, model_id)), None)


def with_family(own: dict[str, Any], rule: FamilyRule | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """A model's curated spec: its own entry, with what it leaves out taken from its family rule; and the
    facts (each with its source) that came from the rule, for the model's ``details["facts"]``."""
    if rule is None:
        return own, {}
    spec = dict(own)
    taken: dict[str, Any] = {}
    if "input_modalities" in rule.facts and "input_modalities" not in own:
        spec["input_modalities"] = rule.facts["input_modalities"]
        spec["output_modalities"] = rule.facts["output_modalities"]
        fact: dict[str, Any] = {
            "value": {"input": rule.facts["input_modalities"], "output": rule.facts["output_modalities"]},
            "source": rule.source,
            "family": rule.pattern.pattern,
        }
        if rule.note:
            fact["note"] = rule.note
        taken["modalities"] = fact
    if "max_output_tokens" in rule.facts and "max_output_tokens" not in own:
        spec["max_output_tokens"] = rule.facts["max_output_tokens"]
    return spec, taken


def _check_model(where: str, spec: Any) -> None:
    if not isinstance(spec, dict):
        raise CuratedFileError(f"{where} must be an object")
    unknown = set(spec) - _MODEL_KEYS
    if unknown:
        raise CuratedFileError(f"{where}: unknown keys {sorted(unknown)}")
    _check_modalities(where, spec)
    if "context_length" in spec and not _positive_int(spec["context_length"]):
        raise CuratedFileError(f"{where}: context_length must be a positive whole number")
    if "max_output_tokens" in spec:
        _check_max_output(where, spec["max_output_tokens"])


def _check_family(where: str, rule: Any, providers: dict[str, Any]) -> None:
    if not isinstance(rule, dict):
        raise CuratedFileError(f"{where} must be an object")
    unknown = set(rule) - _FAMILY_KEYS
    if unknown:
        raise CuratedFileError(f"{where}: unknown keys {sorted(unknown)}")
    missing = {"provider", "match", "source"} - set(rule)
    if missing:
        raise CuratedFileError(f"{where}: missing {sorted(missing)}")
    if rule["provider"] not in providers:
        raise CuratedFileError(f"{where}: provider {rule['provider']!r} is not one the file covers")
    pattern = rule["match"]
    if not isinstance(pattern, str) or not pattern:
        raise CuratedFileError(f"{where}: 'match' must be a regular expression")
    try:
        re.compile(pattern)
    except re.error as exc:
        raise CuratedFileError(f"{where}: 'match' {pattern!r} is not a regular expression: {exc}") from exc
    where = f"{where} ({pattern})"
    _check_source(where, rule["source"])
    if "note" in rule and not isinstance(rule["note"], str):
        raise CuratedFileError(f"{where}: 'note' must be text")
    _check_modalities(where, rule)
    if "max_output_tokens" in rule:
        _check_max_output(where, rule["max_output_tokens"])
    if "input_modalities" not in rule and "max_output_tokens" not in rule:
        raise CuratedFileError(f"{where}: states no fact (modalities or max_output_tokens)")


def _check_modalities(where: str, spec: dict[str, Any]) -> None:
    given = [key for key in _MODALITY_KEYS if key in spec]
    if len(given) == 1:
        raise CuratedFileError(f"{where}: input_modalities and output_modalities go together")
    for key in given:
        value = spec[key]
        if not isinstance(value, list) or not value:
            raise CuratedFileError(f"{where}: {key} must be a non-empty list")
        unknown = [m for m in value if m not in MODALITIES]
        if unknown:
            raise CuratedFileError(f"{where}: {key} has {unknown}, not one of {list(MODALITIES)}")
        if len(set(value)) != len(value):
            raise CuratedFileError(f"{where}: {key} repeats a modality")


def _check_max_output(where: str, fact: Any) -> None:
    if not isinstance(fact, dict) or not _positive_int(fact.get("value")):
        raise CuratedFileError(f"{where}: max_output_tokens must be {{'value': a positive whole number}}")
    unknown = set(fact) - {"value", "source", "note"}
    if unknown:
        raise CuratedFileError(f"{where}: max_output_tokens has unknown keys {sorted(unknown)}")
    _check_source(f"{where}: max_output_tokens", fact.get("source"))


def _check_source(where: str, source: Any) -> None:
    ok = (
        isinstance(source, dict)
        and set(source) <= {"title", "url"}
        and all(isinstance(source.get(k), str) and source[k].strip() for k in ("title", "url"))
    )
    if not ok:
        raise CuratedFileError(f"{where}: 'source' must be {{'title': ..., 'url': ...}}")


def _positive_int(value: Any) -> bool:
    return type(value) is int and value > 0
