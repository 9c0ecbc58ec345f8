"""python -m tfimm_cache is the tfimm-cache program: same output, same exit
codes, byte for byte, for successes, refusals and usage errors."""

import os
import shutil
import subprocess
import sys

import pytest

from conftest import run, tool_program


def reference_tool():
    """The program the build made (tools/), else the one in the package."""
    build = os.environ.get("TFIMM_TEST_BUILD_DIR")
    if build and os.path.exists(os.path.join(build, "tools", "tfimm-cache")):
        return os.path.join(build, "tools", "tfimm-cache")
    return tool_program()


CASES = [
    ["--help"],
    ["--version"],
    ["where"],
    ["set", "resnet18", "/w/r18"],
    ["list"],
    ["list", "--json"],
    ["path", "resnet18", "--explain"],
    ["path", "nosuch"],
    ["set", "../escape", "/w/x"],
    ["lock", "nosuch"],
    ["no-such-command"],
    ["set"],
    ["history", "--json", "--limit", "1"],
    ["clear", "resnet18"],
]


@pytest.mark.parametrize("args", CASES, ids=[" ".join(a) for a in CASES])
def test_python_m_tfimm_cache_gives_the_tools_output_and_exit_code(env, args):
    # Each side runs on its own byte-for-byte copy of the same registry.
    setup = [reference_tool(), "--registry", env.path("tool.db"), "set", "resnet18", "/w/r18"]
    assert run(setup).returncode == 0
    assert not os.path.exists(env.path("tool.db-wal"))
    shutil.copyfile(env.path("tool.db"), env.path("module.db"))
    tool = run([reference_tool(), "--registry", env.path("tool.db"), *args])
    module = run([sys.executable, "-m", "tfimm_cache", "--registry", env.path("module.db"), *args])
    normalise = lambda text, side: text.replace(env.path(f"{side}.db"), "REGISTRY")
    assert (module.returncode, normalise(module.stdout, "module"), normalise(module.stderr, "module")) \
        == (tool.returncode, normalise(tool.stdout, "tool"), normalise(tool.stderr, "tool"))


def test_python_m_tfimm_cache_uses_the_default_registry_of_the_environment(env):
    r = run([sys.executable, "-m", "tfimm_cache", "set", "resnet18", "/w/r18"])
    assert r.returncode == 0, r.stderr
    import tfimm_cache

    assert tfimm_cache.cached_model_path("resnet18") == "/w/r18"
    r = run([sys.executable, "-m", "tfimm_cache", "path", "resnet18"])
    assert r.stdout == "/w/r18\n"


def test_python_m_tfimm_cache_is_the_tool_process_itself(env):
    # exec(): a signal reaches the tool, and its exit status is the answer.
    r = subprocess.run([sys.executable, "-m", "tfimm_cache", "where"], capture_output=True,
                       text=True)
    assert r.returncode == 0 and str(env.registry) in r.stdout
