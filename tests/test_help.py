"""`--help` tells the truth: the top-level text names every command, and every option says what it is."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from rag_analytics_exporter.cli import build_parser

pytestmark = pytest.mark.unit


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_the_top_level_help_names_every_command():
    result = subprocess.run([sys.executable, "-m", "rag_analytics_exporter.cli", "--help"], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    summary = result.stdout.split("positional arguments")[0]
    commands = subcommands(build_parser())
    assert {"serve", "check-config", "init-db", "seed-demo", "backfill", "demo"} <= commands.keys()
    missing = [name for name in commands if name not in summary.split("\n\n", 1)[1]]
    assert not missing, f"the description of --help leaves out {missing}:\n{summary}"
    assert "entry point" not in summary, "the description speaks to the user, not of the module (issue 31)"


def test_every_option_of_every_command_has_help():
    parser = build_parser()
    undocumented = [f"{name} {'/'.join(action.option_strings) or action.dest}"
                    for name, sub in [("", parser), *subcommands(parser).items()] for action in sub._actions
                    if not isinstance(action, argparse._SubParsersAction) and not action.help]
    assert not undocumented, f"options without help text: {undocumented}"
