"""The command line explains itself: plain help, defaults shown (and true), --version."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from tests.helpers.paths import REPO
from wsidist.cli.app import COMMANDS, app
from wsidist.stage1.config import Stage1Config
from wsidist.stage2.config import RewriteConfig

RUNNER = CliRunner()
NAMES = [name for name, _, _ in COMMANDS]


def _help(*args: str) -> str:
    res = RUNNER.invoke(app, [*args, "--help"], env={"COLUMNS": "80"}, prog_name="wsidist")
    assert res.exit_code == 0, res.output
    return res.output


def test_top_level_help_is_for_users():
    text = _help()
    assert "Thin:" not in text and "``" not in text and "<bool>" not in text
    assert "wsidist demo --out demo-out" in text
    for name in NAMES:
        assert re.search(rf"^  {re.escape(name)}\s+\S", text, re.M), name
    assert all(len(line) <= 80 for line in text.splitlines())


def test_version():
    text = (REPO / "pyproject.toml").read_text()
    version = re.search(r'^version = "([^"]+)"', text, re.M).group(1)
    res = RUNNER.invoke(app, ["--version"])
    assert res.exit_code == 0 and res.output.strip() == f"wsidist {version}"


@pytest.mark.parametrize("name", NAMES)
def test_command_help_has_no_type_labels_and_fits(name):
    text = _help(name)
    assert not re.search(r"<(bool|int|float|str|path|list\[str\])>", text), text
    assert "``" not in text and "`" not in text
    assert all(len(line) <= 80 for line in text.splitlines())


def _default(text: str, option: str) -> str:
    """The ``[default: …]`` shown for ``option`` (its help may wrap over lines)."""
    options = text[text.index("Options:") :]
    match = re.search(rf"^  {re.escape(option)}\b[^\[]*?\[default:\s+([^\]]+)\]", options, re.M)
    assert match, f"{option} shows no default"
    return re.sub(r"\s+", " ", match.group(1)).strip()


STAGE1 = {"--scale": "scale", "--overlap": "overlap", "--edge": "edge", "--scorer": "scorer",
          "--tissue": "tissue"}  # fmt: skip
REWRITE = {"--codec": "codec", "--distance": "distance", "--effort": "effort",
           "--jpeg-quality": "jpeg_quality", "--glass": "glass", "--margin-um": "margin_um",
           "--tile": "tile", "--tissue": "tissue"}  # fmt: skip


def _same(shown: str, value) -> bool:
    if isinstance(value, bool):
        return shown in (("yes", "on") if value else ("no", "off"))
    if isinstance(value, int | float):
        return float(shown) == float(value)
    return shown == str(value)


@pytest.mark.parametrize(("command", "fields", "config"), [
    ("score", STAGE1, Stage1Config()), ("rewrite", REWRITE, RewriteConfig()),
])  # fmt: skip
def test_shown_defaults_are_the_configs(command, fields, config):
    text = _help(command)
    for option, field in fields.items():
        assert _same(_default(text, option), getattr(config, field)), option
    if command == "score":
        assert _same(_default(text, "--tile-size"), config.tile_size_px)
        assert _same(_default(text, "--batch"), config.batch)
    else:
        assert _same(_default(text, "--match-source"), config.match_source)
        assert _same(_default(text, "--transcode"), config.transcode)
