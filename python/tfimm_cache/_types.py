"""The records tfimm_cache returns: small frozen dataclasses of str, int,
float, bool, None and tuples. Times are seconds since the Unix epoch."""

from dataclasses import dataclass
from typing import Any, Dict, Optional, Tuple


@dataclass(frozen=True)
class IgnoredVariable:
    """An environment variable passed over because its value is relative."""

    name: str
    value: str


@dataclass(frozen=True)
class RegistryLocation:
    """The registry file and why: "explicit", "TFIMM_REGISTRY",
    "XDG_STATE_HOME" or "default"."""

    path: str
    source: str
    ignored: Tuple[IgnoredVariable, ...] = ()


@dataclass(frozen=True)
class DirLayer:
    """One layer of the cache-directory precedence; path None when unset."""

    source: str
    path: Optional[str]


@dataclass(frozen=True)
class CacheDir:
    """The cache directory, the layer that gave it ("override", "registry",
    "TFIMM_HOME", "XDG_CACHE_HOME", "default") and every layer in
    precedence order."""

    path: str
    source: str
    layers: Tuple[DirLayer, ...]
    ignored: Tuple[IgnoredVariable, ...] = ()


@dataclass(frozen=True)
class Entry:
    """A model-specific entry. missing_since: when an audit first found the
    path missing, None while it is found. local_to: the host whose local file
    system holds the path ("" for a path on a network file system); audits
    and prunes on other hosts leave the entry alone."""

    name: str
    path: str
    created_at: float
    updated_at: float
    locked: bool
    lock_reason: str
    missing_since: Optional[float]
    local_to: str = ""


@dataclass(frozen=True)
class Resolution:
    """cached_model_path() with its reasons. source: "entry", "cache_dir" or
    "none"; status: what a check of the path found ("ok", "missing",
    "dangling_link", "not_accessible", "not_a_directory", "error")."""

    name: str
    path: Optional[str]
    source: str
    exists: bool
    entry: Optional[Entry]
    cache_dir: CacheDir
    fallback_path: str
    fallback_exists: bool
    status: str
    detail: str
    fallback_status: str
    fallback_detail: str


@dataclass(frozen=True)
class AuditItem:
    entry: Entry
    status: str
    is_symlink: bool
    detail: str


@dataclass(frozen=True)
class AuditReport:
    """recorded: False when the registry could not record missing-since
    times (read-only, or a full disk)."""

    items: Tuple[AuditItem, ...]
    cache_dir: CacheDir
    cache_dir_status: str
    recorded: bool

    @property
    def stale(self) -> Tuple[AuditItem, ...]:
        """Entries whose path is missing, a dangling link or under a file."""
        return tuple(i for i in self.items if i.status in _STALE)


_STALE = ("missing", "dangling_link", "not_a_directory")


@dataclass(frozen=True)
class PruneItem:
    entry: Entry
    status: str


@dataclass(frozen=True)
class PruneReport:
    removed: Tuple[PruneItem, ...]
    kept_locked: Tuple[PruneItem, ...]
    kept_young: Tuple[PruneItem, ...]
    checked: int
    dry_run: bool
    other_host: Tuple[PruneItem, ...] = ()


@dataclass(frozen=True)
class HistoryRecord:
    """One recorded change. action: set, clear, set_dir, unset_dir, lock,
    unlock, prune, import, retain or forget; name is "" for cache-directory
    changes. change_set: the id of the change set (the rows one call made
    together), which Registry.undo() reverts; undoes: for the rows of an
    undo, the change set it reverted."""

    id: int
    at: float
    action: str
    name: str
    old_path: Optional[str]
    new_path: Optional[str]
    user: str
    host: str
    pid: int
    change_set: int = 0
    undoes: Optional[int] = None


@dataclass(frozen=True)
class UndoChange:
    """One entry (name) or setting ("cache_dir", "history_retention") an undo
    restores: its state now (old_*) and as the undo leaves it (new_*); a path
    of None: no entry or no setting."""

    name: str
    setting: str
    old_path: Optional[str]
    new_path: Optional[str]
    old_locked: bool
    old_lock_reason: str
    new_locked: bool
    new_lock_reason: str


@dataclass(frozen=True)
class UndoConflict:
    """A later change set that touched what an undo with force=True reverted."""

    name: str
    setting: str
    change_set: int
    action: str


@dataclass(frozen=True)
class UndoReport:
    """What Registry.undo() changed, or with dry_run would change. recorded:
    the change set the undo was recorded as (None for a dry run or no change)."""

    change_set: int
    recorded: Optional[int]
    changes: Tuple[UndoChange, ...]
    conflicts: Tuple[UndoConflict, ...]
    dry_run: bool


@dataclass(frozen=True)
class ImportReport:
    added: int
    changed: int
    unchanged: int
    removed: int
    locked: int
    unlocked: int
    locks_kept: int
    cache_dir_changed: bool


@dataclass(frozen=True)
class PatchReport:
    """What patch_tfimm() did. bindings: "module.attribute" names now bound
    to tfimm_cache's functions (empty when everything already was);
    carried_over: names tfimm held in its dictionary, now registered;
    dir_override: tfimm's set_dir() value, now the process override."""

    bindings: Tuple[str, ...]
    carried_over: Tuple[str, ...] = ()
    dir_override: Optional[str] = None


def _seconds(ms: Optional[int]) -> Optional[float]:
    return None if ms is None else ms / 1000.0


def _ignored(raw: Any) -> Tuple[IgnoredVariable, ...]:
    return tuple(IgnoredVariable(n, v) for n, v in raw)


def _location(raw: Dict[str, Any]) -> RegistryLocation:
    return RegistryLocation(raw["path"], raw["source"], _ignored(raw["ignored"]))


def _cache_dir(raw: Dict[str, Any]) -> CacheDir:
    return CacheDir(
        raw["path"],
        raw["source"],
        tuple(DirLayer(s, p) for s, p in raw["layers"]),
        _ignored(raw["ignored"]),
    )


def _entry(raw: Dict[str, Any]) -> Entry:
    return Entry(
        raw["name"],
        raw["path"],
        raw["created_at"] / 1000.0,
        raw["updated_at"] / 1000.0,
        raw["locked"],
        raw["lock_reason"],
        _seconds(raw["missing_since"]),
        raw["local_to"],
    )


def _resolution(raw: Dict[str, Any]) -> Resolution:
    return Resolution(
        raw["name"],
        raw["path"],
        raw["source"],
        raw["exists"],
        None if raw["entry"] is None else _entry(raw["entry"]),
        _cache_dir(raw["cache_dir"]),
        raw["fallback_path"],
        raw["fallback_exists"],
        raw["status"],
        raw["detail"],
        raw["fallback_status"],
        raw["fallback_detail"],
    )


def _audit_item(raw: Dict[str, Any]) -> AuditItem:
    return AuditItem(_entry(raw["entry"]), raw["status"], raw["is_symlink"], raw["detail"])


def _audit(raw: Dict[str, Any]) -> AuditReport:
    return AuditReport(
        tuple(_audit_item(i) for i in raw["items"]),
        _cache_dir(raw["cache_dir"]),
        raw["cache_dir_status"],
        raw["recorded"],
    )


def _prune(raw: Dict[str, Any]) -> PruneReport:
    def items(key: str) -> Tuple[PruneItem, ...]:
        return tuple(PruneItem(_entry(i["entry"]), i["status"]) for i in raw[key])

    return PruneReport(
        items("removed"),
        items("kept_locked"),
        items("kept_young"),
        raw["checked"],
        raw["dry_run"],
        items("other_host"),
    )


def _history(raw: Dict[str, Any]) -> HistoryRecord:
    return HistoryRecord(
        raw["id"],
        raw["at"] / 1000.0,
        raw["action"],
        raw["name"],
        raw["old_path"],
        raw["new_path"],
        raw["user"],
        raw["host"],
        raw["pid"],
        raw["change_set"],
        raw["undoes"],
    )


def _undo(raw: Dict[str, Any]) -> UndoReport:
    return UndoReport(
        raw["change_set"],
        raw["recorded"],
        tuple(UndoChange(**c) for c in raw["changes"]),
        tuple(UndoConflict(**c) for c in raw["conflicts"]),
        raw["dry_run"],
    )


def _import(raw: Dict[str, Any]) -> ImportReport:
    return ImportReport(**raw)
