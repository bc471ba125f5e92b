"""The two ways getting data can fail, each with a message that says what to do next."""
from __future__ import annotations


class DatasetNotFoundError(FileNotFoundError):
    """The raw files of a dataset are not where we look; the message says how to get them."""


class DataVerificationError(ValueError):
    """A raw or cached file decoded to arrays that are not the official dataset (wrong counts or checksums)."""
