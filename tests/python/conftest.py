"""Fixtures for the tfimm_cache tests.

Every test gets a fresh directory and an environment pointing inside it
($HOME, $XDG_*, $TFIMM_*), so that no test touches the real home or the
real default registry. Processes are real: subprocess, os.fork() and
multiprocessing, run with the interpreter the module was built for.
"""

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Dict, List, Optional

import pytest

HERE = Path(__file__).resolve().parent
FAKE_TFIMM = HERE / "fake_tfimm"

VARIABLES = ("TFIMM_REGISTRY", "TFIMM_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME",
             "TFIMM_NETWORK_FS")


class Env:
    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.root = root
        self.home = root / "home"
        self.home.mkdir()
        self.registry = root / "registry.db"
        self._mp = monkeypatch
        for name in VARIABLES:
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("HOME", str(self.home))
        monkeypatch.setenv("TFIMM_REGISTRY", str(self.registry))

    def set(self, name: str, value: Optional[str]) -> None:
        if value is None:
            self._mp.delenv(name, raising=False)
        else:
            self._mp.setenv(name, value)

    def path(self, child: str) -> str:
        return str(self.root / child)

    def python(self, code: str, *, env: Optional[Dict[str, str]] = None,
               check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        """Runs `code` in a fresh interpreter (the one running the tests)."""
        full = dict(os.environ)
        full.update(env or {})
        result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=full,
                                capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"child failed ({result.returncode}):\n{result.stderr}")
        return result


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Env:
    import tfimm_cache

    tfimm_cache.clear_dir_override()
    yield Env(tmp_path, monkeypatch)
    tfimm_cache.clear_dir_override()


def tool_program() -> str:
    import tfimm_cache._tool

    return tfimm_cache._tool.TOOL


def run(argv: List[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, **kw)
