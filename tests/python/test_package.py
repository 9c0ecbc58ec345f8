"""The package as built: its type stubs, and one SQLite in the process."""

import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

import tfimm_cache

HERE = Path(__file__).resolve().parent


def mypy(*files):
    package_root = str(Path(tfimm_cache.__file__).resolve().parent.parent)
    env = dict(os.environ)
    # The build tree is found through MYPYPATH; an installed package
    # (site-packages, which mypy refuses in MYPYPATH) through PEP 561.
    if "site-packages" not in package_root:
        env["MYPYPATH"] = package_root
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", "--cache-dir", os.devnull,
         *files], capture_output=True, text=True, env=env, cwd=str(HERE / "typing_examples"))


def test_the_type_stubs_accept_documented_use():
    pytest.importorskip("mypy")
    r = mypy("good.py")
    assert r.returncode == 0, r.stdout + r.stderr


def test_the_type_stubs_reject_each_misuse():
    pytest.importorskip("mypy")
    r = mypy("bad.py")
    expected = [i for i, line in enumerate((HERE / "typing_examples/bad.py").read_text().splitlines(), 1)
                if "# error:" in line]
    reported = sorted({int(m) for m in re.findall(r"^bad\.py:(\d+): error", r.stdout, re.M)})
    assert reported == expected, r.stdout


def test_the_package_ships_its_stub_and_py_typed():
    package = Path(tfimm_cache.__file__).parent
    assert (package / "py.typed").exists() and (package / "__init__.pyi").exists()


def loaded_sqlite_libraries():
    with open("/proc/self/maps") as maps:
        return {line.split()[-1] for line in maps if "libsqlite3" in line}


def test_one_sqlite_in_the_process_shared_with_pythons_sqlite3_module(env):
    db = sqlite3.connect(env.path("python.db"))
    db.execute("create table t(x)")
    tfimm_cache.set_model_cache("m", "/w/m")
    libraries = loaded_sqlite_libraries()
    assert len(libraries) == 1, libraries
    # The module defines no SQLite of its own: every sqlite3_ symbol it uses
    # comes from that shared library.
    nm = subprocess.run(["nm", "-D", "--defined-only", tfimm_cache._native.__file__],
                        capture_output=True, text=True)
    if nm.returncode != 0:
        pytest.skip("nm not available")
    assert not re.search(r"\bsqlite3_\w+", nm.stdout)
    needed = subprocess.run(["nm", "-D", "--undefined-only", tfimm_cache._native.__file__],
                            capture_output=True, text=True).stdout
    assert "sqlite3_open_v2" in needed


def test_the_module_links_the_shared_cpp_runtime_not_a_static_copy():
    # The tool links its C++ runtime statically; a Python extension must not
    # (two runtimes in one process do not share exception types or locks).
    ldd = subprocess.run(["ldd", tfimm_cache._native.__file__], capture_output=True, text=True)
    assert "libstdc++.so" in ldd.stdout
