"""``python -m ecgflow.cli``: the ``ecgflow`` command."""

from ecgflow.cli import app

app()
