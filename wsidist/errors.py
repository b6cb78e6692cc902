"""Exception hierarchy shared by every wsidist module."""


class WsidistError(Exception):
    """Base class of all errors raised on purpose by wsidist."""


class PipelineError(WsidistError, ValueError):
    """A filter pipeline spec is invalid, or cannot run with the given slide context."""
