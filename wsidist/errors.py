"""Exception hierarchy shared by every wsidist module, and how a failure reads in a row."""

import traceback


class WsidistError(Exception):
    """Base class of all errors raised on purpose by wsidist."""


class PipelineError(WsidistError, ValueError):
    """A filter pipeline spec is invalid, or cannot run with the given slide context."""


def failure_reason(exc: BaseException) -> str:
    """The readable reason of a failed slide: our own errors (and ValueErrors) as they are, any
    other exception with its type and where it was raised."""
    if isinstance(exc, WsidistError | ValueError):
        return str(exc)
    where = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    place = f" (at {where[0].filename.rsplit('/', 1)[-1]}:{where[0].lineno})" if where else ""
    return f"{type(exc).__name__}: {exc}{place}"
