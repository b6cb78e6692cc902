"""A table of the registered filters, for ``wsidist filters``."""

from __future__ import annotations

from rich.table import Table

from .registry import FILTERS


def describe_filters() -> Table:
    """Every filter a spec can name: kind, what it takes and gives, parameters and defaults."""
    table = Table(title="filters (spec: `a & b | ~c`, `image_op > mask_op`, `mask |> refiner`)")
    for column in ("filter", "kind", "takes → gives", "parameters (size units: _px, _px0, _um)"):
        table.add_column(column)
    for name, info in sorted(FILTERS.items(), key=lambda item: (item[1].kind, item[0])):
        params = ", ".join(
            f"{p.name}" + ("" if p.required else f"={p.default!r}") for p in info.params.values()
        )
        doc = (info.func.__doc__ or "").strip().splitlines()
        table.add_row(
            name, info.kind, f"{info.takes} → {info.gives}", params or (doc[0] if doc else "")
        )
    return table
