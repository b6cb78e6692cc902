"""The report's HTML: jinja2 templates shipped in the package, autoescaped everywhere, and the
slide table's data as a script that a page opened from the file system can load.

Every value from a slide or a table (names, vendor properties, errors) reaches a page through
autoescaping or ``textContent``; data embedded in a ``<script>`` is JSON with ``<``, ``>``,
``&`` and the JavaScript line separators escaped, so no value can end the script.
"""

from __future__ import annotations

import json
import math
from functools import lru_cache
from importlib import resources
from typing import Any

import jinja2

ASSETS = ("report.css", "report.js")


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("wsidist.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(num=fmt_num, int=fmt_int, bytes=fmt_bytes, pct=fmt_pct)
    return env


def asset(name: str) -> bytes:
    """The bytes of a packaged CSS or JS file of the report."""
    return resources.files("wsidist.report").joinpath("static", name).read_bytes()


def script_json(value: Any) -> str:
    """JSON that is safe inside a ``<script>`` element or a ``.js`` file."""
    text = json.dumps(value, separators=(",", ":"), allow_nan=False, default=str)
    for char, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                          ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):  # fmt: skip
        text = text.replace(char, escaped)
    return text


def render_index(**context: Any) -> str:
    return environment().get_template("index.html.j2").render(**context)


def render_slide_page(**context: Any) -> str:
    return environment().get_template("slide.html.j2").render(**context)


# -- number formats (a missing value is an en dash) ---------------------------------------------
def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and not math.isfinite(value))


def fmt_num(value: Any, digits: int = 3) -> str:
    if _missing(value):
        return "–"
    value = float(value)
    return f"{value:,.0f}" if abs(value) >= 10**digits else f"{value:.{digits}g}"


def fmt_int(value: Any) -> str:
    return "–" if _missing(value) else f"{int(value):,}"


def fmt_pct(value: Any, digits: int = 1) -> str:
    return "–" if _missing(value) else f"{float(value):.{digits}f} %"


def fmt_bytes(value: Any) -> str:
    if _missing(value):
        return "–"
    value = float(value)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(value) < 1000 or unit == "TB":
            return f"{value:.3g} {unit}" if unit != "B" else f"{int(value)} B"
        value /= 1000
    return f"{value:.3g} TB"
