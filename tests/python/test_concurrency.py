"""Threads, fork() and multiprocessing, in real processes. Tests that could
hang on a deadlock run in a child interpreter with a timeout."""

import multiprocessing
import os
import subprocess
import sys
import threading
import time

import pytest

import tfimm_cache
from mp_workers import lookup, set_many

START_METHODS = multiprocessing.get_all_start_methods()


def hold_write_lock(path):
    """Another process holding the registry's write lock until killed."""
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sqlite3, sys, time\n"
         "db = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
         "db.execute('BEGIN IMMEDIATE'); print('locked', flush=True); time.sleep(60)\n",
         path], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    return holder


def test_the_gil_is_released_while_a_call_waits_for_another_process(env):
    reg = tfimm_cache.Registry(env.registry, busy_timeout=1.5)
    reg.set_model_cache("m", "/w/m")
    holder = hold_write_lock(str(env.registry))
    outcome = []

    def blocked():
        try:
            reg.set_model_cache("m", "/w/other")
        except tfimm_cache.RegistryBusy:
            outcome.append("busy")

    try:
        t = threading.Thread(target=blocked)
        t.start()
        time.sleep(0.1)
        # While the other thread waits inside the call, this one runs Python.
        ticks = 0
        deadline = time.monotonic() + 0.5
        while time.monotonic() < deadline:
            ticks += 1
        assert t.is_alive(), "the call returned early: nothing was measured"
        assert ticks > 10_000
        t.join()
    finally:
        holder.kill()
        holder.wait()
    assert outcome == ["busy"]


def test_threads_share_the_default_registry_and_lose_nothing(env):
    errors = []

    def work(worker):
        try:
            set_many((worker, 100))
            for i in range(100):
                assert tfimm_cache.cached_model_path(f"w{worker}-{i:03d}") == f"/w/{worker}/{i}"
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(tfimm_cache.list_cached_models()) == 800


@pytest.mark.parametrize("method", START_METHODS)
def test_eight_workers_times_200_sets_under_each_start_method_lose_nothing(env, method):
    ctx = multiprocessing.get_context(method)
    # A thread of the parent keeps calling the registry while workers start:
    # fork() happens with another thread inside a call.
    stop = threading.Event()
    calls = [0]

    def busy_parent():
        while not stop.is_set():
            tfimm_cache.cached_model_path("w0-000")
            calls[0] += 1

    tfimm_cache.list_cached_models()
    t = threading.Thread(target=busy_parent)
    t.start()
    try:
        with ctx.Pool(8) as pool:
            returned = pool.map(set_many, [(w, 200) for w in range(8)])
            answers = pool.map(lookup, ["w3-150"] * 16)
    finally:
        stop.set()
        t.join()
    assert calls[0] > 0
    expected = sorted(n for names in returned for n in names)
    assert len(expected) == 1600
    assert tfimm_cache.list_cached_models() == expected
    assert {path for _, path in answers} == {"/w/3/150"}


def test_threads_read_while_another_process_writes(env):
    tfimm_cache.set_model_cache("seed", "/w/seed")
    writer = subprocess.Popen(
        [sys.executable, "-c",
         "import tfimm_cache\n"
         "for i in range(300): tfimm_cache.set_model_cache(f'p{i:03d}', f'/w/p/{i}')\n"])
    errors, reads = [], [0]

    def reader():
        try:
            while writer.poll() is None:
                names = tfimm_cache.list_cached_models()
                assert "seed" in names
                assert tfimm_cache.cached_model_path("seed") == "/w/seed"
                for name in names[-3:]:
                    if name != "seed":
                        assert tfimm_cache.cached_model_path(name).startswith("/w/p/")
                reads[0] += 1
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=reader) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert writer.wait() == 0
    assert errors == [] and reads[0] > 0
    assert len(tfimm_cache.list_cached_models()) == 301


def test_fork_while_another_thread_is_inside_a_call_gives_a_working_child(env):
    child = env.python(
        """
        import os, threading, tfimm_cache
        reg = tfimm_cache.Registry()
        tfimm_cache.set_model_cache("base", "/w/base")
        stop = threading.Event()
        def hammer():
            i = 0
            while not stop.is_set():
                tfimm_cache.set_model_cache("hammer", f"/w/h{i}")
                reg.cached_model_path("base")
                i += 1
        threads = [threading.Thread(target=hammer) for _ in range(2)]
        for t in threads: t.start()
        for n in range(20):
            pid = os.fork()
            if pid == 0:
                ok = tfimm_cache.cached_model_path("base") == "/w/base"
                tfimm_cache.set_model_cache(f"child{n}", "/w/c")
                ok = ok and reg.cached_model_path(f"child{n}") == "/w/c"
                os._exit(0 if ok else 1)
            _, status = os.waitpid(pid, 0)
            assert os.waitstatus_to_exitcode(status) == 0, n
        stop.set()
        for t in threads: t.join()
        print(len([n for n in tfimm_cache.list_cached_models() if n.startswith("child")]))
        """, timeout=120)
    assert child.stdout.strip() == "20"


def test_audit_progress_calls_back_without_deadlock_while_other_threads_call_in(env):
    child = env.python(
        """
        import os, threading, tfimm_cache
        reg = tfimm_cache.Registry()
        with reg.transaction() as tx:
            for i in range(300):
                tx.set_model_cache(f"m{i:03d}", f"/nonexistent/{i % 7}/m{i}")
        stop = threading.Event()
        other = [0]
        def caller():
            while not stop.is_set():
                reg.cached_model_path("m001"); tfimm_cache.list_cached_models()
                other[0] += 1
        t = threading.Thread(target=caller); t.start()
        seen = []
        def progress(done, total):
            # Calls the registry being audited from the callback.
            seen.append((done, total, len(reg.list_cached_models())))
        for _ in range(5):
            report = reg.audit(threads=4, progress=progress)
            assert len(report.items) == 300
        stop.set(); t.join()
        assert seen and seen[-1][:2] == (300, 300) and other[0] > 0
        print("ok")
        """, timeout=120)
    assert child.stdout.strip() == "ok"


def test_an_exception_in_the_progress_callback_propagates_and_the_registry_still_works(env):
    reg = tfimm_cache.Registry(env.registry)
    for i in range(20):
        reg.set_model_cache(f"m{i}", f"/nonexistent/m{i}")

    def progress(done, total):
        raise ValueError(f"stop at {done}")

    with pytest.raises(ValueError, match="stop at"):
        reg.audit(progress=progress)
    assert len(reg.list_cached_models()) == 20
    assert len(reg.audit().items) == 20


def test_ctrl_c_during_an_audit_raises_keyboard_interrupt_and_leaves_a_working_registry(env):
    child = env.python(
        """
        import os, signal, time, tfimm_cache
        reg = tfimm_cache.Registry()
        for i in range(50):
            reg.set_model_cache(f"m{i}", f"/nonexistent/m{i}")
        calls = []
        def progress(done, total):
            calls.append(done)
            if len(calls) == 1:
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.05)
        try:
            reg.audit(progress=progress)
            print("no interrupt")
        except KeyboardInterrupt:
            print("interrupted", len(reg.list_cached_models()))
        """, timeout=60)
    assert child.stdout.strip() == "interrupted 50"


def test_a_child_forked_in_a_progress_callback_may_use_the_registry_then_exit(env):
    child = env.python(
        """
        import os, tfimm_cache
        reg = tfimm_cache.Registry()
        for i in range(10):
            reg.set_model_cache(f"m{i}", f"/nonexistent/m{i}")
        statuses = []
        def progress(done, total):
            if statuses:
                return
            pid = os.fork()
            if pid == 0:
                ok = reg.cached_model_path("m1") == "/nonexistent/m1"
                os._exit(0 if ok else 1)
            statuses.append(os.waitpid(pid, 0)[1])
        reg.audit(progress=progress)
        print(statuses)
        """, timeout=60)
    assert child.stdout.strip() == "[0]"


def test_a_child_forked_in_a_progress_callback_that_returns_gets_an_error_not_a_hang(env):
    child = env.python(
        """
        import os, tfimm_cache
        reg = tfimm_cache.Registry()
        for i in range(10):
            reg.set_model_cache(f"m{i}", f"/nonexistent/m{i}")
        forked = []
        def progress(done, total):
            if not forked:
                forked.append(os.fork())
        try:
            reg.audit(progress=progress)
            if forked[0] != 0:
                os.write(1, b"parent ok\\n")
                os.waitpid(forked[0], 0)
        except tfimm_cache.TransactionMisuse as e:
            os.write(1, f"child refused: {'os._exit()' in str(e)}\\n".encode())
            os._exit(0)
        """, timeout=60)
    assert sorted(child.stdout.splitlines()) == ["child refused: True", "parent ok"]


@pytest.mark.parametrize("method", START_METHODS)
def test_a_registry_passed_to_workers_opens_the_same_file_there(env, method):
    from mp_workers import set_through

    reg = tfimm_cache.Registry(env.path("passed.db"), busy_timeout=2.5)
    with multiprocessing.get_context(method).Pool(2) as pool:
        paths = pool.map(set_through, [(reg, f"n{i}") for i in range(4)])
    assert set(paths) == {reg.path}
    assert reg.list_cached_models() == ["n0", "n1", "n2", "n3"]


@pytest.mark.parametrize("work", ["lookups", "audit"])
def test_the_interpreter_exits_cleanly_while_daemon_threads_are_inside_calls(env, work):
    # At exit, a daemon thread that comes back from a call is ended by the
    # interpreter (pthread_exit), and one still inside a call of the default
    # registry runs while the process's static objects are destroyed:
    # neither may abort the process.
    for _ in range(12):
        child = env.python(
            f"""
            import threading, time, tfimm_cache
            for i in range(30):
                tfimm_cache.set_model_cache(f"m{{i}}", f"/nonexistent/m{{i}}")
            reg = tfimm_cache.Registry()
            def lookups():
                while True:
                    tfimm_cache.cached_model_path("m1"); reg.cached_model_path("m2")
                    tfimm_cache.set_model_cache("m3", "/nonexistent/m3")
            def audit():
                while True:
                    reg.audit(threads=2, progress=lambda done, total: None)
            for _ in range(3):
                threading.Thread(target={work}, daemon=True).start()
            time.sleep(0.05)
            print("exiting", flush=True)
            """, check=False, timeout=60)
        assert (child.returncode, child.stdout, child.stderr) == (0, "exiting\n", "")
