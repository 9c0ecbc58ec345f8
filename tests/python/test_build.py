"""The CMake build picks an interpreter that can build and test the module."""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parents[2]


def configure(tmp_path, path_dirs, *args):
    env = dict(os.environ, PATH=os.pathsep.join([*path_dirs, os.environ.get("PATH", "")]))
    r = subprocess.run(["cmake", "-S", str(SOURCE), "-B", str(tmp_path / "build"),
                        "-DTFIMM_BUILD_BENCH=OFF", *args], capture_output=True, text=True,
                       env=env, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    cache = (tmp_path / "build" / "CMakeCache.txt").read_text()
    chosen = re.search(r"^Python_EXECUTABLE:FILEPATH=(.*)$", cache, re.M)
    built = re.search(r"^TFIMM_BUILD_PYTHON:BOOL=(.*)$", cache, re.M)
    return (chosen.group(1) if chosen else None), built.group(1), r.stdout


@pytest.mark.skipif(not os.path.exists("/usr/bin/python3") or shutil.which("cmake") is None,
                    reason="needs /usr/bin/python3 and cmake")
def test_a_python3_first_on_path_that_cannot_run_the_tests_is_passed_over(tmp_path):
    # Like a pyenv python3: its own headers, none of Debian's packages.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "python3"
    fake.write_text('#!/bin/sh\nexec /usr/bin/python3 -S "$@"\n')
    fake.chmod(0o755)
    chosen, built, _ = configure(tmp_path, [str(bin_dir)])
    assert (chosen, built) == ("/usr/bin/python3", "ON")


@pytest.mark.skipif(shutil.which("cmake") is None, reason="needs cmake")
def test_without_an_interpreter_with_headers_the_module_is_off_with_one_status_line(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "python3"
    fake.write_text('#!/bin/sh\nexit 1\n')
    fake.chmod(0o755)
    chosen, built, out = configure(tmp_path, [str(bin_dir)], f"-DPython_EXECUTABLE={fake}")
    assert built == "OFF"
    assert len(re.findall(r"^-- Python module not built: .*python3-dev", out, re.M)) == 1


@pytest.mark.skipif(not os.environ.get("TFIMM_TEST_BUILD_DIR"), reason="run by ctest")
def test_the_package_installs_only_as_its_own_component(tmp_path):
    build = os.environ["TFIMM_TEST_BUILD_DIR"]
    r = subprocess.run(["cmake", "--install", build, "--prefix", str(tmp_path / "all")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "all" / "bin" / "tfimm-cache").exists()
    assert not (tmp_path / "all" / "tfimm_cache").exists()
    r = subprocess.run(["cmake", "--install", build, "--prefix", str(tmp_path / "py"),
                        "--component", "python"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    installed = sorted(p.name for p in (tmp_path / "py" / "tfimm_cache").iterdir())
    assert installed[0].startswith("_native.") and installed[1] == "tfimm-cache"
    assert len(installed) == 2


@pytest.mark.skipif(shutil.which("cmake") is None, reason="needs cmake")
def test_under_the_sanitizers_the_module_is_off(tmp_path):
    # An instrumented module cannot load into an uninstrumented interpreter.
    _, built, out = configure(tmp_path, [], "-DTFIMM_SANITIZE=address")
    assert built == "OFF"
    assert "Python module not built: not with TFIMM_SANITIZE (address)" in out
