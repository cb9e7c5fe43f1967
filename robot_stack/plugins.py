"""Plug-ins from other pip packages: the modules an entry-point group names, imported so they register."""
from __future__ import annotations

import warnings
from importlib.metadata import entry_points


def load_entry_points(group: str, what: str) -> None:
    """Import every entry point of `group`; a broken plug-in is a warning, so it cannot take the built-ins down."""
    for ep in entry_points(group=group):
        try:
            ep.load()
        except Exception as exc:
            warnings.warn(f"{what} plug-in {ep.name!r} ({ep.value}) failed to load: {exc}")
