"""Worker processes must not re-run the caller's script: the ``__main__`` guard check.

A LocalCluster starts its workers with the ``spawn`` method, which re-imports the main script
in every worker. A script that calls wsidist at its top level, outside
``if __name__ == "__main__":``, would then start a cluster from inside each worker while it is
still starting ("bootstrapping phase", "Nanny failed to start"). :func:`check_main_guard`
finds that case before any process starts and raises one clear :class:`ConfigError`.
"""

from __future__ import annotations

import ast
import multiprocessing
import os
import sys
from types import FrameType, ModuleType

from wsidist.errors import ConfigError

__all__ = ["check_main_guard", "guard_message"]


def guard_message(where: str | None) -> str:
    """What to add, naming the unguarded call (``file:line``) when known."""
    at = f" ({where} calls it at the top level)" if where else ""
    return (
        "wsidist starts Dask worker processes, and each of them re-runs your script from the "
        f"top{at}. Put the code that calls wsidist under a main guard:\n\n"
        '    if __name__ == "__main__":\n'
        "        ...  # your wsidist calls\n"
    )


def check_main_guard(start_method: str = "spawn") -> None:
    """Raise :class:`ConfigError` when worker processes would re-run a wsidist call.

    In a process that is still starting (a spawned child re-running the script), or when the
    call comes from the top level of a main script that ``start_method`` re-imports and the
    line is not inside an ``if __name__ == "__main__":`` block. Interactive sessions,
    ``python -c`` and packages' ``__main__.py`` are never re-run, so they pass.
    """
    if getattr(multiprocessing.current_process(), "_inheriting", False):
        raise ConfigError(guard_message(None))
    if start_method == "fork":
        return
    main = sys.modules.get("__main__")
    if main is None or not _reimported(main):
        return
    frame = _module_frame(main, sys._getframe(1))
    if frame is not None and not _guarded(frame.f_code.co_filename, frame.f_lineno):
        raise ConfigError(guard_message(f"{frame.f_code.co_filename}:{frame.f_lineno}"))


def _reimported(main: ModuleType) -> bool:
    """Whether a spawned process re-executes this main module (multiprocessing's own rule)."""
    name = getattr(getattr(main, "__spec__", None), "name", None)
    if name is not None:
        return not (name == "__main__" or name.endswith(".__main__"))
    path = getattr(main, "__file__", None)
    return bool(path) and os.path.splitext(os.path.basename(path))[0] != "ipython"


def _module_frame(main: ModuleType, frame: FrameType | None) -> FrameType | None:
    """The frame running the main module's top-level code, if it is on the stack."""
    while frame is not None:
        if frame.f_code.co_name == "<module>" and frame.f_globals is vars(main):
            return frame
        frame = frame.f_back
    return None


def _guarded(filename: str, lineno: int) -> bool:
    """True when ``lineno`` of ``filename`` is inside an ``if __name__ == "__main__":`` body
    (or the source cannot be read: then nothing is claimed)."""
    try:
        with open(filename, encoding="utf-8") as fh:
            tree = ast.parse(fh.read(), filename)
    except (OSError, SyntaxError, ValueError):
        return True
    return any(
        node.body[0].lineno <= lineno <= (node.body[-1].end_lineno or lineno)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and _is_main_test(node.test) and node.body
    )


def _is_main_test(test: ast.expr) -> bool:
    if not (isinstance(test, ast.Compare) and len(test.ops) == 1):
        return False
    if not isinstance(test.ops[0], ast.Eq):
        return False
    sides = [test.left, test.comparators[0]]
    names = [s for s in sides if isinstance(s, ast.Name) and s.id == "__name__"]
    consts = [s for s in sides if isinstance(s, ast.Constant) and s.value == "__main__"]
    return len(names) == 1 and len(consts) == 1
