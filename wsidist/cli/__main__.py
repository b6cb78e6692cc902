"""``python -m wsidist.cli``: the same as the ``wsidist`` command."""

from wsidist.cli.app import app

app(prog_name="wsidist")
