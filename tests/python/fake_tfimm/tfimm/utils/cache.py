# The documented behaviour of tfimm.utils.cache: module-level state that dies
# with the process. Written for these tests from tfimm's documentation.
import os
from typing import List, Optional

_tfimm_dir = None
_model_cache = {}


def get_dir() -> str:
    if _tfimm_dir is not None:
        return _tfimm_dir
    xdg = os.getenv("XDG_CACHE_HOME", "~/.cache")
    return os.path.expanduser(os.getenv("TFIMM_HOME", os.path.join(xdg, "tfimm")))


def set_dir(d: str):
    global _tfimm_dir
    _tfimm_dir = d


def set_model_cache(model_name: str, model_path: str):
    _model_cache[model_name] = model_path


def clear_model_cache(model_name: str):
    _model_cache.pop(model_name, None)


def list_cached_models() -> List[str]:
    return sorted(_model_cache)


def cached_model_path(model_name: str) -> Optional[str]:
    if model_name in _model_cache:
        return _model_cache[model_name]
    path = os.path.join(get_dir(), model_name)
    return path if os.path.exists(path) else None
