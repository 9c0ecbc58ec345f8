"""``python -m tfimm_cache ARGS...`` is ``tfimm-cache ARGS...``."""

from ._tool import main

if __name__ == "__main__":
    main()
