# A stand-in for tfimm laid out like it: the package re-exports the cache
# functions by name, as tfimm/__init__.py does.
from .models.factory import create_model  # noqa: F401
from .utils import (  # noqa: F401
    cached_model_path,
    clear_model_cache,
    get_dir,
    list_cached_models,
    set_dir,
    set_model_cache,
)
