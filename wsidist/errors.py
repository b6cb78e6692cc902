"""Every exception wsidist raises on purpose, and how a failure reads in a row.

The hierarchy is flat under :class:`WsidistError`; errors about bad input values also derive
from ``ValueError``. Nothing here imports the rest of wsidist.
"""

import traceback


class WsidistError(Exception):
    """Base class of all errors raised on purpose by wsidist."""


class ConfigError(WsidistError, ValueError):
    """Bad configuration: raised before any slide is read, naming the bad value."""


class PipelineError(WsidistError, ValueError):
    """A filter pipeline spec is invalid, or cannot run with the given slide context."""


class ScorerError(WsidistError, ValueError):
    """A scorer name that does not resolve to a callable."""


class SlideError(WsidistError):
    """A slide could not be opened or read; the message names the file and the reason."""


class AnnotationError(WsidistError, ValueError):
    """An annotation file cannot be read or used; the message names the file and the reason."""


class StagingError(SlideError):
    """A remote slide cannot be staged: it is larger than the whole staging cache, or the
    cache stays full of slides in use; the message names the sizes and ``--cache-max-gb``."""


class PyramidError(WsidistError):
    """A pyramid cannot be written (bad arguments, a mask without tissue, …)."""


class OutputError(WsidistError):
    """The output cannot be written. ``permanent`` errors (permission, no space, a missing
    bucket, a file where a folder should be) are not retried: the job stops with this message."""

    def __init__(self, message: str, permanent: bool = False) -> None:
        super().__init__(message, permanent)  # both in args, so it pickles whole

    @property
    def permanent(self) -> bool:
        return bool(self.args[1])

    def __str__(self) -> str:
        return str(self.args[0])


class MemoryBudgetError(WsidistError):
    """A slide needs more memory than the per-slide budget; the message names the sizes."""


class UnsupportedSlide(ValueError):
    """A file cannot take the direct-decode fast path; the message says why."""


class UnalignedRegion(ValueError):
    """A level-0 origin that does not fall on a whole pixel of the requested level."""


def failure_reason(exc: BaseException) -> str:
    """The readable reason of a failed slide: our own errors (and ValueErrors) as they are, any
    other exception with its type and where it was raised."""
    if isinstance(exc, WsidistError | ValueError):
        return str(exc)
    where = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    place = f" (at {where[0].filename.rsplit('/', 1)[-1]}:{where[0].lineno})" if where else ""
    return f"{type(exc).__name__}: {exc}{place}"
