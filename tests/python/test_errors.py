"""Refusals: Python exception classes over the C++ messages; a refused call
changes nothing."""

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

import tfimm_cache
from tfimm_cache import (
    Error,
    InvalidName,
    InvalidPath,
    NotARegistry,
    RegistryBusy,
    RegistryError,
    RegistryReadOnly,
    RegistryTooNew,
    UnknownModel,
)


def test_the_exception_classes_subclass_the_standard_ones():
    assert issubclass(InvalidName, ValueError) and issubclass(InvalidPath, ValueError)
    assert issubclass(RegistryError, OSError)
    assert issubclass(RegistryBusy, TimeoutError) and issubclass(RegistryBusy, RegistryError)
    assert issubclass(RegistryReadOnly, PermissionError)
    assert issubclass(RegistryReadOnly, RegistryError)
    assert issubclass(UnknownModel, LookupError)
    for cls in (InvalidName, InvalidPath, RegistryError, RegistryBusy, UnknownModel):
        assert issubclass(cls, Error)


@pytest.mark.parametrize(
    "name, rule",
    [
        ("../escape", "../escape"),
        ("a/b", "a/b"),
        ("", "empty"),
        ("..", ".."),
        ("a\0b", "NUL"),
        ("x" * 256, "255"),
        (" lead", "space"),
        ("bad\udcff", "UTF-8"),
    ],
    ids=["dotdot-slash", "slash", "empty", "dotdot", "nul", "too-long", "leading-space",
         "lone-surrogate"],
)
def test_a_bad_name_raises_invalid_name_naming_it_and_changes_nothing(env, name, rule):
    with pytest.raises(InvalidName) as raised:
        tfimm_cache.set_model_cache(name, "/w/x")
    assert rule in str(raised.value)
    with pytest.raises(InvalidName):
        tfimm_cache.cached_model_path(name)
    assert not env.registry.exists()


def test_a_nul_in_a_name_is_refused_never_truncated(env):
    tfimm_cache.set_model_cache("resnet18", "/w/real")
    with pytest.raises(InvalidName, match="NUL"):
        tfimm_cache.set_model_cache("resnet18\0evil", "/w/evil")
    with pytest.raises(InvalidName):
        tfimm_cache.clear_model_cache("resnet18\0")
    assert tfimm_cache.cached_model_path("resnet18") == "/w/real"
    assert tfimm_cache.list_cached_models() == ["resnet18"]


@pytest.mark.parametrize("path", ["/w/a\0b", b"/w/a\0b", ""], ids=["str-nul", "bytes-nul", "empty"])
def test_a_bad_path_raises_invalid_path_and_changes_nothing(env, path):
    with pytest.raises(InvalidPath):
        tfimm_cache.set_model_cache("resnet18", path)
    with pytest.raises(InvalidPath):
        tfimm_cache.set_dir(path)
    assert not env.registry.exists()


def test_an_unknown_user_in_a_path_is_invalid_path(env):
    with pytest.raises(InvalidPath, match="nosuchuser"):
        tfimm_cache.set_model_cache("m", "~nosuchuser_tfimm/x")


@pytest.mark.parametrize("name", [b"resnet18", Path("resnet18"), 18, None],
                         ids=["bytes", "path", "int", "none"])
def test_a_name_that_is_not_a_str_is_a_type_error(env, name):
    with pytest.raises(TypeError, match="str"):
        tfimm_cache.set_model_cache(name, "/w/x")
    with pytest.raises(TypeError):
        tfimm_cache.cached_model_path(name)
    assert not env.registry.exists()


@pytest.mark.parametrize("path", [18, None, ["/w"]], ids=["int", "none", "list"])
def test_a_path_that_is_not_a_path_is_a_type_error(env, path):
    with pytest.raises(TypeError):
        tfimm_cache.set_model_cache("m", path)


def test_a_file_that_is_not_a_registry_is_refused_and_left_untouched(env):
    env.registry.write_bytes(b"not a database, just text\n")
    with pytest.raises(NotARegistry) as raised:
        tfimm_cache.list_cached_models()
    assert raised.value.path == str(env.registry)
    assert str(env.registry) in str(raised.value)
    assert env.registry.read_bytes() == b"not a database, just text\n"


def test_a_registry_written_by_a_newer_version_is_too_new(env):
    tfimm_cache.set_model_cache("m", "/w/m")
    with sqlite3.connect(env.registry) as db:
        db.execute("PRAGMA user_version = 999")
    db.close()
    with pytest.raises(RegistryTooNew) as raised:
        tfimm_cache.Registry(env.registry).list_cached_models()
    assert raised.value.found_version == 999
    assert raised.value.known_version == tfimm_cache.schema_version()
    assert "999" in str(raised.value)


def test_a_write_lock_held_by_another_process_gives_registry_busy_after_the_timeout(env):
    reg = tfimm_cache.Registry(env.registry, busy_timeout=0.3)
    reg.set_model_cache("resnet18", "/w/before")
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sqlite3, sys, time\n"
         "db = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
         "db.execute('BEGIN IMMEDIATE')\n"
         "print('locked', flush=True)\n"
         "time.sleep(30)\n", str(env.registry)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        started = time.monotonic()
        with pytest.raises(RegistryBusy) as raised:
            reg.set_model_cache("resnet18", "/w/after")
        waited = time.monotonic() - started
        assert isinstance(raised.value, TimeoutError)
        assert raised.value.path == str(env.registry)
        assert str(env.registry) in str(raised.value)
        assert 0.25 <= waited < 5
    finally:
        holder.kill()
        holder.wait()
    assert reg.cached_model_path("resnet18") == "/w/before"


def test_a_registry_on_a_read_only_file_system_reads_and_refuses_writes(env):
    tfimm_cache.set_model_cache("resnet18", "/w/r18")
    mount = env.root / "ro"
    mount.mkdir()
    script = (
        'mount --bind "$1" "$2" 2>/dev/null && mount -o remount,bind,ro "$2" 2>/dev/null '
        '|| exit 77\n'
        'exec "$3" -c "$4" "$2/registry.db"\n')
    code = (
        "import sys, tfimm_cache\n"
        "reg = tfimm_cache.Registry(sys.argv[1])\n"
        "print(reg.cached_model_path('resnet18'))\n"
        "with reg.transaction() as tx:\n"
        "    print(tx.list_cached_models(), tx.cached_model_path('resnet18'))\n"
        "try:\n"
        "    reg.set_model_cache('x', '/w/x')\n"
        "except PermissionError as e:\n"
        "    print(type(e).__name__, isinstance(e, tfimm_cache.RegistryError), e)\n")
    try:
        r = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script,
                            "sh", str(env.root), str(mount), sys.executable, code],
                           capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        pytest.skip("no unshare here")
    if r.returncode == 77 or "unshare failed" in r.stderr:
        pytest.skip("no private mount namespace or bind mount here")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "/w/r18"
    # A block that only reads works on a registry this process cannot write.
    assert lines[1] == "['resnet18'] /w/r18"
    assert lines[2].startswith("RegistryReadOnly True ")
    assert "read-only file system" in lines[2]


def test_lock_of_an_unknown_model_is_unknown_model(env):
    reg = tfimm_cache.Registry(env.registry)
    with pytest.raises(UnknownModel, match="nosuch"):
        reg.lock("nosuch")
    with pytest.raises(LookupError):
        reg.unlock("nosuch")


def test_a_relative_tfimm_registry_is_invalid_path_naming_the_variable(env):
    env.set("TFIMM_REGISTRY", "relative.db")
    with pytest.raises(InvalidPath, match="TFIMM_REGISTRY"):
        tfimm_cache.list_cached_models()


def test_a_damaged_registry_is_registry_corrupt_naming_the_file(env):
    reg = tfimm_cache.Registry(env.registry)
    with reg.transaction() as tx:
        for i in range(2000):
            tx.set_model_cache(f"m{i:05d}", f"/w/{i}" * 5)
    del reg
    db = sqlite3.connect(env.registry)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    size = env.registry.stat().st_size
    with open(env.registry, "r+b") as f:
        f.seek(4096 * 8)
        f.write(b"\xff" * (size - 4096 * 8))
    with pytest.raises(tfimm_cache.RegistryCorrupt) as raised:
        tfimm_cache.Registry(env.registry).list_cached_models()
    assert isinstance(raised.value, OSError) and raised.value.path == str(env.registry)
    assert "damaged" in str(raised.value)


def test_a_write_to_a_full_file_system_is_registry_full_and_reads_still_work(env):
    mount = env.root / "small"
    mount.mkdir()
    script = ('mount -t tmpfs -o size=192k tmpfs "$1" 2>/dev/null || exit 77\n'
              'exec "$2" -c "$3" "$1/registry.db"\n')
    code = (
        "import sys, tfimm_cache\n"
        "reg = tfimm_cache.Registry(sys.argv[1])\n"
        "reg.set_model_cache('first', '/w/first')\n"
        "try:\n"
        "    for i in range(100000):\n"
        "        reg.set_model_cache(f'model_{i:06d}', '/w/' + 'x' * 200)\n"
        "    print('never full')\n"
        "except tfimm_cache.RegistryFull as e:\n"
        "    print(isinstance(e, OSError), reg.cached_model_path('first'))\n")
    try:
        r = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script,
                            "sh", str(mount), sys.executable, code],
                           capture_output=True, text=True, timeout=300)
    except FileNotFoundError:
        pytest.skip("no unshare here")
    if r.returncode == 77 or "unshare failed" in r.stderr:
        pytest.skip("no private mount namespace or tmpfs mount here")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "True /w/first"
