"""The exceptions of tfimm_cache.

Each C++ exception of the library becomes one of these, with the C++
message. They subclass the standard exceptions a Python caller already
catches: a bad name or path is a ``ValueError``, a registry problem an
``OSError`` (``RegistryBusy`` also a ``TimeoutError``, ``RegistryReadOnly``
also a ``PermissionError``). Every one is also a ``tfimm_cache.Error``.
"""

from __future__ import annotations


class Error(Exception):
    """Base of every exception tfimm_cache raises on purpose."""


class InvalidName(Error, ValueError):
    """A model name that could escape the cache directory, or no name at all."""


class InvalidPath(Error, ValueError):
    """A path that cannot be stored: empty, containing NUL, an unknown ~user."""


class InvalidInput(Error, ValueError):
    """Other bad input: a malformed export file or duration."""


class UnknownModel(InvalidInput, LookupError):
    """lock() or unlock() of a name that has no entry."""


class TransactionMisuse(Error, RuntimeError):
    """A registry used against the rules of its transaction() block."""


class RegistryError(Error, OSError):
    """The registry file cannot be used. ``path`` names the file."""

    path: str | None = None


class NotARegistry(RegistryError):
    """The file is not a tfimm-cache registry; it was left untouched."""


class RegistryTooNew(RegistryError):
    """Written by a newer tfimm-cache: ``found_version`` > ``known_version``."""

    found_version: int = 0
    known_version: int = 0


class RegistryCorrupt(RegistryError):
    """SQLite reports the file as damaged."""


class RegistryBusy(RegistryError, TimeoutError):
    """Another process held the write lock longer than the busy timeout."""


class RegistryReadOnly(RegistryError, PermissionError):
    """A write to a registry this process can only read."""


class RegistryFull(RegistryError):
    """A write that did not fit: a full disk, a quota, a file-size limit."""
