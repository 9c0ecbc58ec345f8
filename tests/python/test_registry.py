"""Registry: an explicit file, its records, and transaction blocks."""

import json
import os
import socket
import sys
import threading

import pytest

import tfimm_cache
from tfimm_cache import Registry, TransactionMisuse

from conftest import run


@pytest.fixture
def reg(env):
    return Registry(env.path("explicit.db"))


def test_an_explicit_registry_is_that_file_and_not_the_default(env, reg):
    reg.set_model_cache("resnet18", "/w/r18")
    assert reg.path == env.path("explicit.db")
    assert reg.location.source == "explicit"
    assert tfimm_cache.list_cached_models() == []
    assert Registry(env.path("explicit.db")).cached_model_path("resnet18") == "/w/r18"


def test_entries_and_resolve_return_frozen_records(env, reg):
    reg.set_model_cache("resnet18", env.path("w/r18"))
    os.makedirs(env.path("w/r18"))
    (entry,) = reg.entries()
    assert isinstance(entry, tfimm_cache.Entry)
    assert (entry.name, entry.path, entry.locked) == ("resnet18", env.path("w/r18"), False)
    assert entry.created_at > 1.6e9 and entry.missing_since is None
    assert entry.local_to == socket.gethostname()  # a path on this host's own disk
    assert reg.entry("nosuch") is None
    r = reg.resolve("resnet18")
    assert (r.source, r.exists, r.status) == ("entry", True, "ok")
    assert reg.resolve("vit").source == "none"
    with pytest.raises(AttributeError):
        entry.path = "/x"  # type: ignore[misc]


def test_lock_history_audit_and_prune(env, reg):
    os.makedirs(env.path("w/kept"))
    reg.set_model_cache("kept", env.path("w/kept"))
    reg.set_model_cache("gone", env.path("w/gone"))
    reg.set_model_cache("locked", env.path("w/locked-gone"))
    reg.lock("locked", reason="paper results")
    assert reg.entry("locked").lock_reason == "paper results"
    seen = []
    report = reg.audit(progress=lambda done, total: seen.append((done, total)))
    assert {i.entry.name: i.status for i in report.items} == {
        "gone": "missing", "kept": "ok", "locked": "missing"}
    assert [i.entry.name for i in report.stale] == ["gone", "locked"]
    assert seen and seen[-1] == (3, 3)
    dry = reg.prune(dry_run=True)
    assert [i.entry.name for i in dry.removed] == ["gone"]
    assert reg.list_cached_models() == ["gone", "kept", "locked"]
    done = reg.prune()
    assert [i.entry.name for i in done.removed] == ["gone"]
    assert [i.entry.name for i in done.kept_locked] == ["locked"]
    assert reg.list_cached_models() == ["kept", "locked"]
    assert reg.unlock("locked") is True
    actions = [(h.action, h.name) for h in reg.history()]
    assert actions[:3] == [("unlock", "locked"), ("prune", "gone"), ("lock", "locked")]
    assert [h.action for h in reg.history("kept")] == ["set"]
    assert len(reg.history(limit=2)) == 2


def test_prune_expire_accepts_seconds_and_durations(env, reg):
    reg.set_model_cache("gone", env.path("w/gone"))
    reg.audit()
    assert [i.entry.name for i in reg.prune(expire="7d").kept_young] == ["gone"]
    assert [i.entry.name for i in reg.prune(expire=3600.0).kept_young] == ["gone"]
    with pytest.raises(tfimm_cache.InvalidInput):
        reg.prune(expire="seven days")


def test_export_then_import_into_another_registry_round_trips(env, reg):
    reg.set_model_cache("a", "/old/disk/a")
    reg.set_model_cache("b", "/old/disk/b")
    reg.lock("b", "keep")
    reg.set_dir("/data/cache")
    text = reg.export_json()
    assert json.loads(text)["format"] == "tfimm-cache-export"
    other = Registry(env.path("other.db"))
    dry = other.import_json(text, dry_run=True)
    assert dry.added == 2 and not os.path.exists(env.path("other.db"))
    report = other.import_json(text, rewrites=[("/old/disk", "/new/disk")])
    assert (report.added, report.locked, report.cache_dir_changed) == (2, 1, True)
    assert other.cached_model_path("a") == "/new/disk/a"
    assert other.entry("b").locked and other.stored_dir() == "/data/cache"
    with pytest.raises(tfimm_cache.InvalidInput):
        other.import_json("{not json")
    assert other.list_cached_models() == ["a", "b"]


# -- transactions ----------------------------------------------------------------


def test_a_transaction_block_applies_everything_at_its_end(env, reg):
    reg.set_model_cache("old", "/w/old")
    with reg.transaction() as tx:
        tx.set_model_cache("a", "/w/a")
        tx.set_model_cache("b", "/w/b")
        assert tx.clear_model_cache("old") is True
        assert tx.clear_model_cache("never") is False
        tx.set_dir(env.path("cache"))
        # The block reads its own changes; nobody else sees them yet.
        assert tx.list_cached_models() == ["a", "b"]
        assert tx.cached_model_path("a") == "/w/a"
        assert Registry(reg.path).list_cached_models() == ["old"]
    assert reg.list_cached_models() == ["a", "b"]
    assert reg.get_dir() == env.path("cache")


def test_a_block_that_raises_changes_nothing_and_the_exception_propagates(env, reg):
    reg.set_model_cache("old", "/w/old")
    with pytest.raises(KeyError, match="boom"):
        with reg.transaction() as tx:
            tx.set_model_cache("a", "/w/a")
            tx.clear_model_cache("old")
            raise KeyError("boom")
    assert reg.list_cached_models() == ["old"]
    assert reg.cached_model_path("old") == "/w/old"
    assert [h.action for h in reg.history()] == ["set"]


def test_a_bad_operation_raises_inside_the_block_when_called(env, reg):
    with pytest.raises(tfimm_cache.InvalidName):
        with reg.transaction() as tx:
            tx.set_model_cache("a", "/w/a")
            tx.set_model_cache("../b", "/w/b")
            pytest.fail("not reached")
    assert reg.list_cached_models() == []


def test_the_registry_itself_is_refused_inside_its_own_block(env, reg):
    with reg.transaction() as tx:
        tx.set_model_cache("a", "/w/a")
        with pytest.raises(TransactionMisuse, match="tx.set_model_cache"):
            reg.set_model_cache("b", "/w/b")
        with pytest.raises(TransactionMisuse):
            reg.transaction()
    assert reg.list_cached_models() == ["a"]


def test_a_transaction_is_refused_after_its_block_and_from_another_thread(env, reg):
    errors = []
    with reg.transaction() as tx:
        t = threading.Thread(target=lambda: errors.append(
            pytest.raises(TransactionMisuse, tx.set_model_cache, "t", "/w/t")))
        t.start()
        t.join()
        # Another thread may use the registry meanwhile.
        done = []
        t = threading.Thread(target=lambda: done.append(reg.list_cached_models()))
        t.start()
        t.join()
    assert errors and done == [[]]
    with pytest.raises(TransactionMisuse, match="after its block ended"):
        tx.set_model_cache("late", "/w/late")
    assert reg.list_cached_models() == []


def test_a_child_forked_inside_a_block_cannot_commit_it(env, reg):
    with reg.transaction() as tx:
        tx.set_model_cache("parent", "/w/parent")
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                tx.set_model_cache("child", "/w/child")
            except TransactionMisuse:
                code = 0
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    assert reg.list_cached_models() == ["parent"]


def test_a_block_whose_commit_finds_the_registry_busy_raises_and_applies_nothing(env):
    import subprocess
    import sys

    reg = Registry(env.path("busy.db"), busy_timeout=0.2)
    entered = False
    reg.set_model_cache("old", "/w/old")
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sqlite3, sys, time\n"
         "db = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
         "db.execute('BEGIN IMMEDIATE'); print('locked', flush=True); time.sleep(30)\n",
         reg.path], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(tfimm_cache.RegistryBusy):
            with reg.transaction() as tx:
                tx.set_model_cache("new", "/w/new")
                tx.set_model_cache("old", "/w/changed")
                entered = True
        assert entered
    finally:
        holder.kill()
        holder.wait()
    assert reg.list_cached_models() == ["old"]
    assert reg.cached_model_path("old") == "/w/old"


def test_other_processes_write_while_a_block_is_open_and_the_block_reads_them(env, reg):
    with reg.transaction() as tx:
        tx.set_model_cache("mine", "/w/mine")
        env.python(f"import tfimm_cache; tfimm_cache.Registry({reg.path!r}, busy_timeout=2)"
                   ".set_model_cache('theirs', '/w/theirs')")
        assert tx.list_cached_models() == ["mine", "theirs"]
        assert Registry(reg.path).list_cached_models() == ["theirs"]
    assert reg.list_cached_models() == ["mine", "theirs"]


def test_registry_without_a_location_is_the_default_file_when_created(env):
    reg = Registry()
    assert reg.path == str(env.registry) and reg.location.source == "TFIMM_REGISTRY"
    env.set("TFIMM_REGISTRY", env.path("moved.db"))
    assert reg.path == str(env.registry)
    assert Registry().path == env.path("moved.db")


@pytest.mark.parametrize("value", [-1, float("nan"), float("inf"), 1e30])
def test_a_timeout_or_expiry_that_is_not_a_sane_duration_is_refused(env, value):
    with pytest.raises(ValueError, match="busy_timeout"):
        Registry(env.registry, busy_timeout=value)
    with pytest.raises(ValueError, match="expire"):
        Registry(env.registry).prune(expire=value)
    assert not env.registry.exists()


def test_a_path_local_to_another_host_is_left_alone_unless_all_hosts(env, reg):
    # Another host: this machine under another host name (a UTS namespace),
    # registering a path on its own disk that is absent here.
    if run(["unshare", "-u", "true"]).returncode != 0:
        pytest.skip("cannot make a UTS namespace here (unshare -u)")
    reg.set_model_cache("warm", env.path("w/warm"))  # creates the registry
    r = run(["unshare", "-u", "sh", "-c", 'hostname node-b && exec "$@"', "sh", sys.executable,
             "-m", "tfimm_cache", "--registry", reg.path, "set", "theirs", env.path("w/theirs")])
    assert r.returncode == 0, r.stderr
    assert reg.entry("theirs").local_to == "node-b"
    report = reg.audit()
    assert {i.entry.name: i.status for i in report.items}["theirs"] == "other_host"
    pruned = reg.prune()
    assert [i.entry.name for i in pruned.other_host] == ["theirs"]
    assert [i.entry.name for i in pruned.removed] == ["warm"]
    assert reg.list_cached_models() == ["theirs"]
    assert [i.status for i in reg.audit(all_hosts=True).items] == ["missing"]
    assert [i.entry.name for i in reg.prune(all_hosts=True).removed] == ["theirs"]


def test_undo_reverts_a_change_set_and_says_what_it_did(env, reg):
    reg.set_model_cache("a", "/w/a")
    reg.lock("a", reason="usb")
    with reg.transaction() as txn:
        txn.clear_model_cache("a")
        txn.set_model_cache("b", "/w/b")
    rows = reg.history(limit=2)
    assert rows[0].change_set == rows[1].change_set == rows[1].id
    assert rows[0].undoes is None

    dry = reg.undo(rows[0].id, dry_run=True)
    assert isinstance(dry, tfimm_cache.UndoReport)
    assert dry.dry_run and dry.recorded is None
    assert reg.entry("a") is None

    report = reg.undo(rows[0].change_set)
    assert report.change_set == rows[1].id and report.recorded > report.change_set
    assert [(c.name, c.old_path, c.new_path, c.new_locked) for c in report.changes] == [
        ("a", None, "/w/a", True), ("b", "/w/b", None, False)]
    assert reg.entry("a").lock_reason == "usb" and reg.entry("b") is None
    assert reg.history(limit=1)[0].undoes == report.change_set

    # Undoing the undo redoes; undoing the original again is refused.
    reg.undo(report.recorded)
    assert reg.entry("a") is None
    with pytest.raises(tfimm_cache.InvalidInput, match="already undone") as refused:
        reg.undo(report.change_set)
    assert isinstance(refused.value, ValueError)
    forced = reg.undo(report.change_set, force=True)
    assert forced.conflicts and forced.conflicts[0].name in ("a", "b")
    with pytest.raises(ValueError, match="no change set or history row"):
        reg.undo(999)
