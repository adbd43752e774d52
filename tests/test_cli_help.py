"""`rlscale … --help` says what each option takes: choices for the options with a few values (and the parser rejects
anything else), plain switches for flags, and nothing cut off when the help is piped or captured."""

from __future__ import annotations

import re
from typing import get_args

import pytest
from typer.testing import CliRunner

from rlscale.cli import app
from rlscale.cli.app import Executor, Selection

COMMANDS = [info.name or info.callback.__name__ for info in app.registered_commands]


def _help(*args: str) -> str:
    """``rlscale <args> --help`` as CliRunner captures it: not a terminal, so no terminal width to follow."""
    result = CliRunner().invoke(app, [*args, "--help"])
    assert result.exit_code == 0, result.output
    return result.output


def _flat(text: str) -> str:
    """An error panel's text on one line: rich wraps it inside a box."""
    return " ".join(re.sub("[│╭╮╰╯─]", " ", text).split())


def test_every_command_is_checked():
    assert {"simulate", "compare", "tune", "evaluate", "train", "sweep", "controller", "emulate"} <= set(COMMANDS)


@pytest.mark.parametrize("command", ["", *COMMANDS])
def test_help_shows_flags_as_switches_and_cuts_nothing_off(command):
    text = _help(*filter(None, [command]))
    assert "<bool>" not in text
    assert "…" not in text


def test_help_off_a_terminal_is_120_columns_unless_columns_says_otherwise(monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)
    assert {len(line) for line in _help("compare").splitlines() if line.startswith("╭")} == {120}
    monkeypatch.setenv("COLUMNS", "100")
    assert {len(line) for line in _help("compare").splitlines() if line.startswith("╭")} == {100}


@pytest.mark.parametrize("command", ["compare", "tune", "evaluate", "train", "sweep"])
def test_executor_lists_its_choices(command):
    assert "--executor" in _help(command)
    assert "<local|ray>" in _help(command)


@pytest.mark.parametrize("command", ["train", "sweep"])
def test_select_lists_its_choices(command):
    assert "<return|cost-at-slo>" in _help(command)


def test_log_level_lists_its_choices():
    assert "<debug|info|warning|error>" in _help("controller")


def test_a_bad_executor_is_rejected_by_the_parser_with_the_choices(tmp_path):
    result = CliRunner().invoke(app, ["compare", str(tmp_path / "missing.yaml"), "--executor", "bogus"])
    assert result.exit_code == 2
    assert "'bogus' is not one of 'local', 'ray'" in _flat(result.output)


def test_a_bad_selection_is_rejected_by_the_parser_with_the_choices(tmp_path):
    result = CliRunner().invoke(app, ["sweep", str(tmp_path / "missing.yaml"), "--select", "cheapest"])
    assert result.exit_code == 2
    assert "'cheapest' is not one of 'return', 'cost-at-slo'" in _flat(result.output)


def test_the_choices_are_the_ones_the_code_downstream_accepts():
    from rlscale.experiments.executors import EXECUTORS
    from rlscale.training.sweep import SELECTIONS

    assert get_args(Executor) == EXECUTORS
    assert get_args(Selection) == SELECTIONS


def test_the_commands_still_receive_plain_strings(monkeypatch, tmp_path):
    from rlscale.cli import experiments

    seen = {}
    monkeypatch.setattr(experiments, "_run_comparison", lambda *args: seen.update(executor=args[4]))
    result = CliRunner().invoke(app, ["compare", str(tmp_path / "e.yaml"), "--executor", "ray"])
    assert result.exit_code == 0, result.output
    assert type(seen["executor"]) is str and seen["executor"] == "ray"


def test_flags_still_parse_after_help_was_shown():
    _help("controller")
    result = CliRunner().invoke(app, ["controller", "--dry-run", "--log-level", "warning", "--syncs", "1"])
    assert "spec.policy: Field required" in result.output  # past the parser: the settings want a policy
