# Uses the API as documented; mypy --strict must accept it.
import os
from pathlib import Path
from typing import List, Optional

import tfimm_cache
from tfimm_cache import CacheDir, Entry, Registry, RegistryBusy


def main() -> None:
    tfimm_cache.set_model_cache("resnet18", Path("/w/r18"))
    tfimm_cache.set_model_cache(model_name="vit", model_path=b"/w/vit")
    path: Optional[str] = tfimm_cache.cached_model_path("resnet18")
    names: List[str] = tfimm_cache.list_cached_models()
    directory: str = tfimm_cache.get_dir()
    origin: CacheDir = tfimm_cache.get_dir_origin()
    tfimm_cache.set_dir(os.path.join(directory, "x"))
    reg = Registry(Path("/tmp/r.db"), busy_timeout=1.0)
    with reg.transaction() as tx:
        tx.set_model_cache("a", "/w/a")
        removed: bool = tx.clear_model_cache("b")
    entries: List[Entry] = reg.entries()
    report = reg.audit(progress=lambda done, total: None)
    stale = [item.entry.name for item in report.stale]
    try:
        reg.set_model_cache("a", "/w/a")
    except RegistryBusy as e:
        print(e.path)
    print(path, names, origin.source, removed, entries, stale, reg.prune(expire="7d").checked)
