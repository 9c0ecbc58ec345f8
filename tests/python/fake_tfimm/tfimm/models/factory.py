# Like tfimm's factory: it imported cached_model_path by name at import time.
import os

from tfimm.utils import cached_model_path


def create_model(model_name: str, pretrained: bool = False, model_path: str = ""):
    """Returns the weights file it would load, or raises like tfimm when a
    pretrained model is not cached."""
    if not pretrained:
        return None
    path = model_path or cached_model_path(model_name)
    if path is None:
        raise ValueError(f"Model {model_name} not found in the cache")
    return os.path.join(path, "weights.h5")
