"""The ``wsidist`` command line: ``app`` (typer), one module per stage, and what it prints."""

from wsidist.cli.app import app

__all__ = ["app"]
