"""Exceptions of the episode store: every one names the store, and the episode and key where known."""
from __future__ import annotations


class StoreError(Exception):
    """Base class: anything wrong with an episode store or its input."""


class FormatVersionError(StoreError):
    """The store was written by a newer (or unknown) format version than this code reads."""


class EpisodeNotFoundError(StoreError, IndexError):
    """An episode index outside the committed range."""


class CorruptEpisodeError(StoreError):
    """A committed episode cannot be read back: missing, truncated or corrupt chunk, bad metadata."""

    def __init__(self, episode: int, key: str, reason: str):
        self.episode, self.key, self.reason = episode, key, reason
        super().__init__(f"episode {episode}, key {key!r}: {reason}")


class StreamShapeError(StoreError, ValueError):
    """An appended value does not match the dtype/shape its stream was declared with."""

    def __init__(self, episode: int, stream: str, reason: str):
        self.episode, self.key, self.reason = episode, stream, reason
        super().__init__(f"episode {episode}, stream {stream!r}: {reason}")


class StoreLockedError(StoreError):
    """Another process holds the store open for writing."""
