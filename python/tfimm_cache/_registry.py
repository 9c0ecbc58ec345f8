"""Registry and transaction blocks, and the functions that return records.

Imported on first use (see __init__.py), so that `import tfimm_cache` for
the six functions loads neither dataclasses nor threading.
"""

import os
import threading
from typing import Any, Callable, Iterable, List, Optional, Tuple, Union

from . import _native
from ._errors import TransactionMisuse
from ._types import (
    AuditItem,
    AuditReport,
    CacheDir,
    Entry,
    HistoryRecord,
    ImportReport,
    PruneReport,
    RegistryLocation,
    Resolution,
    UndoReport,
    _audit,
    _audit_item,
    _cache_dir,
    _entry,
    _history,
    _import,
    _location,
    _prune,
    _resolution,
    _undo,
)

def _seconds(what: str, value: float) -> float:
    """A duration in seconds: finite, not negative, at most a year."""
    seconds = float(value)
    if not 0.0 <= seconds <= 365 * 86400.0:
        raise ValueError(
            f"{what} must be a number of seconds from 0 to one year, not {value!r}"
        )
    return seconds


def _reopen(path: str, busy_timeout: float) -> "Registry":
    return Registry(path, busy_timeout=busy_timeout)


PathArg = Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"]
Progress = Callable[[int, int], Any]


def get_dir_origin() -> CacheDir:
    """The cache directory with the layer that gave it and those it shadows."""
    return _cache_dir(_native.get_dir_origin())


def default_registry_location() -> RegistryLocation:
    """The registry file the environment names now, and why."""
    return _location(_native.default_registry_location())


def schema_version() -> int:
    """Newest registry schema this build knows."""
    return int(_native.schema_version())


def parse_duration(text: str) -> float:
    """"30s", "15m", "12h", "7d", "2w" in seconds; InvalidInput otherwise."""
    return float(_native.parse_duration(text))


# -- Registry ------------------------------------------------------------------


class Registry:
    """A registry file: ``Registry()`` for the default one (as the environment
    names it when created), ``Registry(path)`` for an explicit one.

    Safe to share between threads (calls are serialised in C++, without the
    GIL) and usable in a child after ``os.fork()``. ``busy_timeout`` is how
    long, in seconds, a call waits for another process's write lock before
    it raises ``RegistryBusy``.
    """

    def __init__(self, location: Optional[PathArg] = None, *, busy_timeout: float = 5.0) -> None:
        self._busy_timeout = _seconds("busy_timeout", busy_timeout)
        self._native = _native.Registry(location, self._busy_timeout)
        self._blocks: "set[int]" = set()  # threads inside a transaction() block

    def __reduce__(self) -> Tuple[Any, ...]:
        # Sent to a spawn or forkserver worker, or through a queue: the same
        # file and timeout, opened again on the other side.
        return (_reopen, (self.path, self._busy_timeout))

    def __repr__(self) -> str:
        return f"tfimm_cache.Registry({self.path!r})"

    def _check(self, member: str) -> None:
        if self._blocks and threading.get_ident() in self._blocks:
            raise TransactionMisuse(
                f"Registry.{member}() called inside a transaction() block of the same registry "
                f"{self.path}: it would not be part of the block; use the block's Transaction "
                f"(tx.{member}) or call it after the block"
            )

    @property
    def path(self) -> str:
        """The registry file, absolute."""
        return str(self._native.path)

    @property
    def location(self) -> RegistryLocation:
        return _location(self._native.location())

    def get_dir(self) -> str:
        self._check("get_dir")
        return str(self._native.get_dir())

    def cache_dir(self) -> CacheDir:
        self._check("cache_dir")
        return _cache_dir(self._native.cache_dir())

    def set_dir(self, d: PathArg) -> None:
        self._check("set_dir")
        self._native.set_dir(d)

    def unset_dir(self) -> None:
        self._check("unset_dir")
        self._native.unset_dir()

    def stored_dir(self) -> Optional[str]:
        self._check("stored_dir")
        return self._native.stored_dir()  # type: ignore[no-any-return]

    def set_model_cache(self, model_name: str, model_path: PathArg) -> None:
        self._check("set_model_cache")
        self._native.set_model_cache(model_name, model_path)

    def clear_model_cache(self, model_name: str) -> bool:
        self._check("clear_model_cache")
        return bool(self._native.clear_model_cache(model_name))

    def list_cached_models(self) -> List[str]:
        self._check("list_cached_models")
        return self._native.list_cached_models()  # type: ignore[no-any-return]

    def cached_model_path(self, model_name: str) -> Optional[str]:
        self._check("cached_model_path")
        return self._native.cached_model_path(model_name)  # type: ignore[no-any-return]

    def entries(self) -> List[Entry]:
        self._check("entries")
        return [_entry(e) for e in self._native.entries()]

    def entry(self, model_name: str) -> Optional[Entry]:
        self._check("entry")
        raw = self._native.entry(model_name)
        return None if raw is None else _entry(raw)

    def resolve(self, model_name: str) -> Resolution:
        self._check("resolve")
        return _resolution(self._native.resolve(model_name))

    def lock(self, model_name: str, reason: str = "") -> None:
        self._check("lock")
        self._native.lock(model_name, reason)

    def unlock(self, model_name: str) -> bool:
        self._check("unlock")
        return bool(self._native.unlock(model_name))

    def audit(
        self, *, threads: int = 0, progress: Optional[Progress] = None, all_hosts: bool = False
    ) -> AuditReport:
        """Checks every registered path in parallel; ``progress(done, total)``
        is called on this thread as checks complete. A path local to another
        host is not checked (status "other_host") unless ``all_hosts``."""
        self._check("audit")
        return _audit(self._native.audit(threads, progress, all_hosts))

    def check_entries(
        self, *, threads: int = 0, progress: Optional[Progress] = None
    ) -> List[AuditItem]:
        self._check("check_entries")
        return [_audit_item(i) for i in self._native.check_entries(threads, progress)]

    def prune(
        self,
        *,
        dry_run: bool = False,
        expire: Union[float, str] = 0.0,
        threads: int = 0,
        progress: Optional[Progress] = None,
        all_hosts: bool = False,
    ) -> PruneReport:
        """Forgets entries whose path is gone (never deletes files). ``expire``:
        seconds, or a duration like "7d". Entries whose path is local to
        another host are kept (``other_host``) unless ``all_hosts``."""
        self._check("prune")
        seconds = parse_duration(expire) if isinstance(expire, str) else _seconds("expire", expire)
        return _prune(self._native.prune(dry_run, seconds, threads, progress, all_hosts))

    def history(self, model_name: Optional[str] = None, limit: int = 0) -> List[HistoryRecord]:
        self._check("history")
        return [_history(r) for r in self._native.history(model_name, limit)]

    def undo(self, change_set: int, *, force: bool = False, dry_run: bool = False) -> UndoReport:
        """Reverts one change set (or the change set of the history row with
        that id) in one transaction, recorded as a change set of its own.
        Raises InvalidInput (a ValueError), changing nothing, for an unknown
        or forgotten id and, without force, when a later change set touched
        the same entries or settings."""
        self._check("undo")
        return _undo(self._native.undo(int(change_set), force, dry_run))

    def export_json(self) -> str:
        """The whole registry in the format of ``tfimm-cache export``."""
        self._check("export_json")
        return str(self._native.export_json())

    def import_json(
        self,
        text: str,
        *,
        replace: bool = False,
        rewrites: Iterable[Tuple[PathArg, PathArg]] = (),
        dry_run: bool = False,
    ) -> ImportReport:
        """Applies an export (all of it or nothing), like ``tfimm-cache import``."""
        self._check("import_json")
        return _import(self._native.import_json(text, replace, list(rewrites), dry_run))

    def transaction(self) -> "_Block":
        """``with reg.transaction() as tx:`` applies the block's operations
        all or nothing when it ends; nothing when it raises."""
        self._check("transaction")
        return _Block(self)


class Transaction:
    """The operations of one ``with reg.transaction() as tx:`` block.

    Each is checked when called (a bad name or path raises at once); all are
    applied in one transaction when the block ends without an exception, so
    no process ever sees part of them. The registry is not locked while the
    block runs: other threads and processes keep reading and writing, and
    reads inside the block see the registry as it is now plus the block's
    own operations. Usable only inside its block, on the thread and in the
    process that opened it.
    """

    _SET, _CLEAR, _SET_DIR, _UNSET_DIR = 0, 1, 2, 3

    def __init__(self, registry: Registry) -> None:
        self._registry = registry
        self._ops: List[Tuple[int, Optional[str], Optional[str]]] = []
        self._thread = threading.get_ident()
        self._pid = os.getpid()
        self._open = True

    def _usable(self, member: str) -> None:
        if not self._open:
            why = "after its block ended"
        elif self._pid != os.getpid():
            why = "in a process forked inside its block (the block stays the parent's)"
        elif self._thread != threading.get_ident():
            why = "from a thread other than the one running its block"
        else:
            return
        raise TransactionMisuse(
            f"Transaction.{member}() used {why}; nothing was changed. "
            f"Open a new block with Registry.transaction()"
        )

    def set_model_cache(self, model_name: str, model_path: PathArg) -> None:
        self._usable("set_model_cache")
        _native.check_name(model_name)
        self._ops.append((self._SET, model_name, _native.normalize_path(model_path)))

    def clear_model_cache(self, model_name: str) -> bool:
        """Whether an entry was there to forget (counting the block's own sets)."""
        self._usable("clear_model_cache")
        _native.check_name(model_name)
        found = bool(self._registry._native.read_within(self._ops, "has_entry", model_name))
        self._ops.append((self._CLEAR, model_name, None))
        return found

    def set_dir(self, d: PathArg) -> None:
        self._usable("set_dir")
        self._ops.append((self._SET_DIR, None, _native.normalize_path(d)))

    def unset_dir(self) -> None:
        self._usable("unset_dir")
        self._ops.append((self._UNSET_DIR, None, None))

    def cached_model_path(self, model_name: str) -> Optional[str]:
        self._usable("cached_model_path")
        _native.check_name(model_name)
        if not self._ops:  # nothing to replay: a plain read, no write lock
            return self._registry._native.cached_model_path(model_name)  # type: ignore[no-any-return]
        return self._registry._native.read_within(  # type: ignore[no-any-return]
            self._ops, "cached_model_path", model_name
        )

    def list_cached_models(self) -> List[str]:
        self._usable("list_cached_models")
        if not self._ops:
            return self._registry._native.list_cached_models()  # type: ignore[no-any-return]
        return self._registry._native.read_within(  # type: ignore[no-any-return]
            self._ops, "list_cached_models", None
        )


class _Block:
    """The context manager Registry.transaction() returns."""

    def __init__(self, registry: Registry) -> None:
        self._registry = registry
        self._tx: Optional[Transaction] = None

    def __enter__(self) -> Transaction:
        if self._tx is not None:
            raise TransactionMisuse("a transaction() block can be entered once; call transaction() again")
        self._tx = Transaction(self._registry)
        self._registry._blocks.add(self._tx._thread)
        return self._tx

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        tx = self._tx
        assert tx is not None
        try:
            if exc_type is None:
                tx._usable("commit")
                self._registry._native.apply(tx._ops)
        finally:
            tx._open = False
            self._registry._blocks.discard(tx._thread)
