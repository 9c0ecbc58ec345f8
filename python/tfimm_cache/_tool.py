"""The admin tool inside the package.

``python -m tfimm_cache`` runs the ``tfimm-cache`` program installed next to
this file by exec()ing it in place of the interpreter: the same program the
README documents, so output, exit codes and signals are exactly the tool's,
and no second copy of its command-line code exists to drift from it.
"""

import os
import sys
from typing import List, Optional

TOOL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tfimm-cache")


def main(argv: Optional[List[str]] = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if not os.access(TOOL, os.X_OK):
        sys.stderr.write(
            f"tfimm_cache: the tfimm-cache program is missing from the package ({TOOL}); "
            "reinstall tfimm_cache\n"
        )
        sys.exit(127)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(TOOL, ["tfimm-cache", *args])
