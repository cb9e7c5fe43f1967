"""Exceptions of the episode store: every one names the store, and the episode and key where known.

The CLI prints ``str(exc)`` of any of them as its one-line error (exit code 2), so each message
must stand alone: the store's path first, then the episode and the file inside the store."""
from __future__ import annotations


class StoreError(Exception):
    """Base class: anything wrong with an episode store or its input."""


class FormatVersionError(StoreError):
    """The store was written by a newer (or unknown) format version than this code reads."""


class EpisodeNotFoundError(StoreError, IndexError):
    """An episode index outside the committed range."""


class CorruptEpisodeError(StoreError):
    """A committed episode cannot be read back: missing, truncated or corrupt chunk, bad metadata.

    ``key`` is the array or group inside the store (``streams/front/data``), ``path`` the store."""

    def __init__(self, episode: int, key: str, reason: str, path=None):
        self.episode, self.key, self.reason, self.path = episode, key, reason, path
        where = f"{path}: " if path is not None else ""
        super().__init__(f"{where}episode {episode}, key {key!r}: {reason}")


class StreamShapeError(StoreError, ValueError):
    """An appended value does not match the dtype/shape its stream was declared with."""

    def __init__(self, episode: int, stream: str, reason: str):
        self.episode, self.key, self.reason = episode, stream, reason
        super().__init__(f"episode {episode}, stream {stream!r}: {reason}")


class StoreLockedError(StoreError):
    """Another live process holds the store open for writing (``holder``: its lock record, if any)."""

    def __init__(self, message: str, holder: dict | None = None):
        self.holder = holder
        super().__init__(message)
