"""Documentation stays true: every setting is documented, the README keeps its two commands."""

from __future__ import annotations

from pathlib import Path

from tokenboard.cli import app as cli_app
from tokenboard.config import Settings

ROOT = Path(__file__).resolve().parent.parent


def test_every_setting_is_documented() -> None:
    text = (ROOT / "docs" / "configuration.md").read_text()
    missing = [name for name in Settings.model_fields if f"`TOKENBOARD_{name.upper()}`" not in text]
    assert not missing, f"undocumented settings: {missing}"


def test_readme_shows_the_two_commands_and_ci_uses_the_test_one() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "make run" in readme and "make test" in readme
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_every_cli_verb_is_documented() -> None:
    text = (ROOT / "docs" / "cli.md").read_text()
    verbs = [c.name or (c.callback.__name__ if c.callback else "") for c in cli_app.registered_commands]
    missing = [v for v in verbs if f"`{v.replace('_', '-')}" not in text]
    assert not missing, f"undocumented CLI verbs: {missing}"
