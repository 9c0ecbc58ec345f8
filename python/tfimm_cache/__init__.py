"""tfimm's model cache, persistent and shared by every process.

The six functions of ``tfimm.utils.cache`` with tfimm's signatures, on the
default registry (``$TFIMM_REGISTRY``, else ``$XDG_STATE_HOME/tfimm/registry.db``,
else ``~/.local/state/tfimm/registry.db``, read on every call), plus
``Registry`` for an explicit file, the exceptions of ``tfimm_cache._errors``
and ``patch_tfimm()``, which makes an installed tfimm use all of this.

Paths are accepted as ``str``, ``bytes`` or ``os.PathLike`` and returned as
``str`` (decoded like ``os.fsdecode``); names must be ``str``. Every call
that touches the registry or the file system releases the GIL.

``import tfimm_cache`` loads only the extension and the exceptions; the
rest (Registry, the record dataclasses, patch_tfimm) is imported the first
time it is used, so that a script that only looks up models pays for
nothing else.
"""

from . import _native
from ._errors import (
    Error,
    InvalidInput,
    InvalidName,
    InvalidPath,
    NotARegistry,
    RegistryBusy,
    RegistryCorrupt,
    RegistryError,
    RegistryFull,
    RegistryReadOnly,
    RegistryTooNew,
    TransactionMisuse,
    UnknownModel,
)

__version__ = _native.version()

# -- tfimm's functions on the default registry ---------------------------------
# Bound straight to the extension: a lookup pays no Python frame of ours.

get_dir = _native.get_dir
set_dir = _native.set_dir
unset_dir = _native.unset_dir
set_model_cache = _native.set_model_cache
clear_model_cache = _native.clear_model_cache
list_cached_models = _native.list_cached_models
cached_model_path = _native.cached_model_path
set_dir_override = _native.set_dir_override
clear_dir_override = _native.clear_dir_override
dir_override = _native.dir_override
check_name = _native.check_name
normalize_path = _native.normalize_path

_LAZY = {
    "_registry": (
        "Registry",
        "Transaction",
        "get_dir_origin",
        "default_registry_location",
        "schema_version",
        "parse_duration",
    ),
    "_types": (
        "AuditItem",
        "AuditReport",
        "CacheDir",
        "DirLayer",
        "Entry",
        "HistoryRecord",
        "IgnoredVariable",
        "ImportReport",
        "PatchReport",
        "PruneItem",
        "PruneReport",
        "RegistryLocation",
        "Resolution",
        "UndoChange",
        "UndoConflict",
        "UndoReport",
    ),
    "_patch": ("patch_tfimm", "unpatch_tfimm"),
}
_WHERE = {name: module for module, names in _LAZY.items() for name in names}


def __getattr__(name):  # PEP 562: the first use of a lazy name imports it
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'tfimm_cache' has no attribute {name!r}")
    value = getattr(__import__(f"{__name__}.{module}", fromlist=[name]), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_WHERE))


__all__ = [
    "AuditItem",
    "AuditReport",
    "CacheDir",
    "DirLayer",
    "Entry",
    "Error",
    "HistoryRecord",
    "IgnoredVariable",
    "ImportReport",
    "InvalidInput",
    "InvalidName",
    "InvalidPath",
    "NotARegistry",
    "PatchReport",
    "PruneItem",
    "PruneReport",
    "Registry",
    "RegistryBusy",
    "RegistryCorrupt",
    "RegistryError",
    "RegistryFull",
    "RegistryLocation",
    "RegistryReadOnly",
    "RegistryTooNew",
    "Resolution",
    "Transaction",
    "TransactionMisuse",
    "UndoChange",
    "UndoConflict",
    "UndoReport",
    "UnknownModel",
    "cached_model_path",
    "check_name",
    "clear_dir_override",
    "clear_model_cache",
    "default_registry_location",
    "dir_override",
    "get_dir",
    "get_dir_origin",
    "list_cached_models",
    "normalize_path",
    "parse_duration",
    "patch_tfimm",
    "schema_version",
    "set_dir",
    "set_dir_override",
    "set_model_cache",
    "unpatch_tfimm",
    "unset_dir",
]
