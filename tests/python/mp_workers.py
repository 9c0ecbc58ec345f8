"""Functions multiprocessing workers run (importable under spawn and forkserver)."""

import os

import tfimm_cache


def set_many(args):
    """Registers `count` names for worker `worker`; returns the names it set."""
    worker, count = args
    names = []
    for i in range(count):
        name = f"w{worker}-{i:03d}"
        tfimm_cache.set_model_cache(name, f"/w/{worker}/{i}")
        names.append(name)
    return names


def lookup(name):
    return os.getpid(), tfimm_cache.cached_model_path(name)


def set_through(args):
    """Sets one name through a Registry received from the parent."""
    registry, name = args
    registry.set_model_cache(name, f"/w/{name}")
    return registry.path
