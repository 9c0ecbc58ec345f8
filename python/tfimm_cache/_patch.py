"""patch_tfimm(): make an installed tfimm use the persistent registry.

tfimm keeps its cache in module globals of ``tfimm.utils.cache`` (a dict of
model paths and a directory set by ``set_dir``) and re-exports its six
functions by name (``tfimm``, ``tfimm.utils``, ``tfimm.models.factory``,
...), so replacing the functions in ``tfimm.utils.cache`` alone would miss
every module that imported them before. patch_tfimm() rebinds every
module-level binding of the six originals found in ``sys.modules`` (under
any name, in any module, tfimm's or the caller's), and carries over what
tfimm held: its dict entries are registered, its directory becomes the
process override. unpatch_tfimm() puts every binding and tfimm's state back.
"""

import importlib
import sys
import threading
from collections.abc import MutableMapping
from types import ModuleType
from typing import Any, Dict, Iterator, List, Optional, Tuple

from ._types import PatchReport

_FUNCTIONS = (
    "get_dir",
    "set_dir",
    "set_model_cache",
    "clear_model_cache",
    "list_cached_models",
    "cached_model_path",
)

_lock = threading.Lock()
# While patched: (module, attribute, original value) of every binding changed,
# and tfimm's state as it was.
_bindings: List[Tuple[ModuleType, str, Any]] = []
_originals: Dict[int, Any] = {}  # id(original function) -> original
_ids: Dict[int, str] = {}  # id(original function) -> its name in tfimm.utils.cache
_saved_state: Optional[Dict[str, Any]] = None


def _tfimm_cache_module() -> ModuleType:
    try:
        return importlib.import_module("tfimm.utils.cache")
    except ImportError as e:
        raise ImportError(
            "patch_tfimm() needs tfimm (module tfimm.utils.cache), which cannot be imported: "
            f"{e}. Install tfimm, or use tfimm_cache's own functions "
            "(tfimm_cache.cached_model_path, ...) without it"
        ) from e


def _replacements() -> Dict[str, Any]:
    import tfimm_cache

    return {name: getattr(tfimm_cache, name) for name in _FUNCTIONS}


def _rebind(report: List[str]) -> None:
    replacements = _replacements()
    for module in list(sys.modules.values()):
        namespace = getattr(module, "__dict__", None)
        if not isinstance(namespace, dict):
            continue
        for attribute, value in list(namespace.items()):
            name = _ids.get(id(value))
            if name is None or _originals[id(value)] is not value:
                continue
            _bindings.append((module, attribute, value))
            namespace[attribute] = replacements[name]
            report.append(f"{module.__name__}.{attribute}")


def patch_tfimm() -> PatchReport:
    """Makes tfimm use the persistent registry; see the module docstring.

    Idempotent: a second call rebinds only bindings of the originals made
    since (an empty ``bindings`` when there are none). Raises ImportError
    when tfimm is not installed.
    """
    global _saved_state
    import tfimm_cache

    cache = _tfimm_cache_module()
    with _lock:
        carried: Tuple[str, ...] = ()
        override: Optional[str] = None
        if _saved_state is None:
            originals = {name: getattr(cache, name) for name in _FUNCTIONS}
            state = {
                "_model_cache": getattr(cache, "_model_cache", None),
                "_tfimm_dir": getattr(cache, "_tfimm_dir", None),
            }
            # Carry tfimm's state over first: if a name is refused, nothing
            # is patched and tfimm keeps working as before.
            entries = state["_model_cache"] or {}
            for name, path in entries.items():
                tfimm_cache.check_name(name)
                tfimm_cache.normalize_path(path)
            if entries:
                with tfimm_cache.Registry().transaction() as tx:
                    for name, path in entries.items():
                        tx.set_model_cache(name, path)
            if state["_tfimm_dir"] is not None:
                tfimm_cache.set_dir_override(state["_tfimm_dir"])
                override = tfimm_cache.dir_override()
            carried = tuple(sorted(entries))
            _saved_state = state
            for name, function in originals.items():
                _originals[id(function)] = function
                _ids[id(function)] = name
            if hasattr(cache, "_model_cache"):
                setattr(cache, "_model_cache", _RegistryDict())
        report: List[str] = []
        _rebind(report)
        return PatchReport(tuple(report), carried, override)


def unpatch_tfimm() -> PatchReport:
    """Puts back every binding patch_tfimm() changed and tfimm's own state
    (its dict as it was; what was registered stays in the registry).
    Returns the bindings restored; nothing when not patched."""
    global _saved_state
    import tfimm_cache

    with _lock:
        restored = []
        for module, attribute, original in reversed(_bindings):
            module.__dict__[attribute] = original
            restored.append(f"{module.__name__}.{attribute}")
        _bindings.clear()
        override = None
        if _saved_state is not None:
            cache = sys.modules.get("tfimm.utils.cache")
            if cache is not None:
                for key, value in _saved_state.items():
                    if hasattr(cache, key):
                        setattr(cache, key, value)
            if _saved_state["_tfimm_dir"] is not None:
                override = tfimm_cache.dir_override()
                tfimm_cache.clear_dir_override()
        _saved_state = None
        _originals.clear()
        _ids.clear()
        return PatchReport(tuple(reversed(restored)), (), override)


class _RegistryDict(MutableMapping):  # type: ignore[type-arg]
    """tfimm's ``_model_cache`` while patched: a mapping view of the default
    registry, for code that reads or writes the dict directly."""

    def __getitem__(self, name: str) -> str:
        import tfimm_cache

        entry = tfimm_cache.Registry().entry(name)
        if entry is None:
            raise KeyError(name)
        return entry.path

    def __setitem__(self, name: str, path: Any) -> None:
        import tfimm_cache

        tfimm_cache.set_model_cache(name, path)

    def __delitem__(self, name: str) -> None:
        import tfimm_cache

        if not tfimm_cache.Registry().clear_model_cache(name):
            raise KeyError(name)

    def __contains__(self, name: object) -> bool:
        import tfimm_cache

        return isinstance(name, str) and name in tfimm_cache.list_cached_models()

    def __iter__(self) -> Iterator[str]:
        import tfimm_cache

        return iter(tfimm_cache.list_cached_models())

    def __len__(self) -> int:
        import tfimm_cache

        return len(tfimm_cache.list_cached_models())
