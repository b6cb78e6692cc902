"""The per-slide memory budget: refuse a slide, before any work, whose needs exceed it.

Each stage says what one slide needs (named parts in bytes, from the slide's declared size and
the stage's config); :func:`check_memory` raises :class:`~wsidist.errors.MemoryBudgetError`
naming the slide's size, the biggest part and the budget when their sum is over it. The budget
is ``memory_budget_mb`` of every stage config (default :data:`DEFAULT_MEMORY_BUDGET_MB`).
"""

from __future__ import annotations

from collections.abc import Mapping

from wsidist.errors import MemoryBudgetError

DEFAULT_MEMORY_BUDGET_MB = 1024.0
MB = 2**20


def gigabytes(nbytes: float) -> str:
    return f"{nbytes / 2**30:.2f} GB" if nbytes >= 2**30 else f"{nbytes / MB:.0f} MB"


def check_memory(
    what: str,
    needs: Mapping[str, float],
    budget_mb: float,
    hint: str = "",
    advice: str = "raise memory_budget_mb",
) -> float:
    """Raise :class:`MemoryBudgetError` when ``needs`` (part → bytes) sum to more than
    ``budget_mb``; returns the sum. ``what`` names the slide and its size; ``advice`` and
    ``hint`` say what to change (e.g. "raise memory_budget_mb" " or use a larger scale")."""
    total = float(sum(needs.values()))
    if total <= budget_mb * MB:
        return total
    parts = ", ".join(
        f"{name} {gigabytes(n)}" for name, n in sorted(needs.items(), key=lambda kv: -kv[1])
    )
    raise MemoryBudgetError(
        f"{what} needs about {gigabytes(total)} ({parts}), over the per-slide memory budget "
        f"of {gigabytes(budget_mb * MB)}: {advice}{hint}; nothing was read"
    )
