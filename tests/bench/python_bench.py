#!/usr/bin/env python3
"""The tfimm_cache Python package against the least work that could give the
same answer from Python, in the same run: each figure alternates blocks of
ours and of the baseline, and prints the median of each and the ratio of the
medians (ours / baseline; below 1 is faster than the baseline).

    PYTHONPATH=build/python /usr/bin/python3 tests/bench/python_bench.py
    ... python_bench.py --smoke     # seconds: every figure runs, answers agree

Figures (goal in brackets):
  lookup hit      cached_model_path() / sqlite3 prepared SELECT on the same
                  WAL registry file, autocommit                       [<= 1.2]
  lookup hit      cached_model_path() / diskcache.Cache.get() hit     [<= 0.8]
  fallback        answered by <dir>/<name> / tfimm's own
                  cached_model_path (dict miss + os.path.exists)      [<= 2.0]
  durable set     set_model_cache() / sqlite3 BEGIN IMMEDIATE; upsert;
                  COMMIT, WAL + synchronous=FULL                      [<= 1.2]
  import time     import tfimm_cache / import sqlite3, fresh process  [<= 3.0]
"""

import argparse
import importlib
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
FAKE_TFIMM = HERE.parent / "python" / "fake_tfimm"


def interleave(rounds, block, ours, base):
    """Per-call seconds of `ours` and `base`, in alternating blocks."""
    a, b = [], []
    for r in range(rounds):
        for fn, out in ((ours, a), (base, b)) if r % 2 == 0 else ((base, b), (ours, a)):
            start = time.perf_counter()
            for i in range(block):
                fn(i)
            out.append((time.perf_counter() - start) / block)
    return a, b


def report(name, ours_name, base_name, a, b, goal, unit=1e6, unit_name="us"):
    ma, mb = statistics.median(a), statistics.median(b)
    ratio = ma / mb
    met = "" if goal is None else ("met" if (ratio <= goal) else "NOT MET")
    print(f"| {name} | {ours_name} | {ma * unit:.2f} {unit_name} | {base_name} | "
          f"{mb * unit:.2f} {unit_name} | {ratio:.2f} | <= {goal} {met} |", flush=True)
    return ratio


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--only", default="")
    args = parser.parse_args()
    smoke = args.smoke
    rounds, block = (4, 20) if smoke else (60, 200)
    only = set(filter(None, args.only.split(",")))

    tmp = Path(tempfile.mkdtemp(prefix="tfimm-pybench-"))
    os.environ["HOME"] = str(tmp / "home")
    os.environ["TFIMM_REGISTRY"] = str(tmp / "registry.db")
    os.environ["TFIMM_HOME"] = str(tmp / "models")
    for var in ("XDG_STATE_HOME", "XDG_CACHE_HOME"):
        os.environ.pop(var, None)
    import tfimm_cache

    names = [f"model_{i:05d}" for i in range(300)]
    with tfimm_cache.Registry().transaction() as tx:
        for n in names:
            tx.set_model_cache(n, f"/data/weights/{n}")
    random.seed(1)
    order = [random.choice(names) for _ in range(block)]
    print(f"python {sys.version.split()[0]}, sqlite {sqlite3.sqlite_version}, "
          f"{'smoke' if smoke else 'full'} run: {rounds} blocks of {block} calls each side")
    print("| figure | ours | p50 | baseline | p50 | ratio | goal |")
    print("|---|---|---|---|---|---|---|")
    failures = []

    def want(key):
        return not only or key in only

    # -- lookup hit ----------------------------------------------------------------
    raw = sqlite3.connect(os.environ["TFIMM_REGISTRY"], isolation_level=None,
                          check_same_thread=False)
    assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    select = "SELECT path FROM models WHERE name = ?"
    lookup = tfimm_cache.cached_model_path
    for n in order[:20]:
        if lookup(n) != raw.execute(select, (n,)).fetchone()[0]:
            failures.append(f"lookup: answers differ for {n}")
    if want("lookup-hit"):
        a, b = interleave(rounds, block, lambda i: lookup(order[i]),
                          lambda i: raw.execute(select, (order[i],)).fetchone())
        report("lookup hit", "`cached_model_path`", "`sqlite3` prepared `SELECT`, WAL, autocommit",
               a, b, 1.2)

    if want("lookup-diskcache"):
        import diskcache

        dc = diskcache.Cache(str(tmp / "diskcache"))
        for n in names:
            dc.set(n, f"/data/weights/{n}")
        for n in order[:20]:
            if dc.get(n) != lookup(n):
                failures.append(f"diskcache: answers differ for {n}")
        a, b = interleave(rounds, block, lambda i: lookup(order[i]), lambda i: dc.get(order[i]))
        report("lookup hit", "`cached_model_path`", "`diskcache.Cache.get` hit", a, b, 0.8)
        dc.close()

    # -- fallback --------------------------------------------------------------------
    if want("fallback"):
        sys.path.insert(0, str(FAKE_TFIMM))
        tfimm_own = importlib.import_module("tfimm.utils.cache")
        in_dir = [f"dir_model_{i:03d}" for i in range(50)]
        for n in in_dir:
            os.makedirs(os.path.join(os.environ["TFIMM_HOME"], n))
        for n in in_dir[:10]:
            if lookup(n) != tfimm_own.cached_model_path(n):
                failures.append(f"fallback: answers differ for {n}")
        a, b = interleave(rounds, block, lambda i: lookup(in_dir[i % 50]),
                          lambda i: tfimm_own.cached_model_path(in_dir[i % 50]))
        report("fallback lookup", "answered by `<dir>/<name>`",
               "tfimm's `cached_model_path` (dict miss + `os.path.exists`)", a, b, 2.0)

    # -- durable set -------------------------------------------------------------------
    if want("set"):
        # As tfimm_bench does: both sides are registry files with the same
        # schema and entries, filled in one transaction big enough to grow
        # the WAL past the checkpoint size, so every set reuses the WAL file
        # (the steady state of a long-lived process). The baseline upserts
        # the models row as a set does, without the history row.
        prefill = 3000 if not smoke else 100
        files = {side: str(tmp / f"durable-{side}.db") for side in ("ours", "base")}
        for file in files.values():
            with tfimm_cache.Registry(file).transaction() as tx:
                for i in range(prefill):
                    tx.set_model_cache(f"prefill_{i}", f"/data/prefill/{i}")
        base_db = sqlite3.connect(files["base"], isolation_level=None)
        base_db.execute("PRAGMA synchronous=FULL")
        assert base_db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        upsert = ("INSERT INTO models(name, path, created_at, updated_at) VALUES (?1, ?2, ?3, ?3) "
                  "ON CONFLICT(name) DO UPDATE SET path = excluded.path, "
                  "updated_at = excluded.updated_at, missing_since = NULL")
        set_rounds, set_block = (2, 5) if smoke else (30, 10)
        set_names = [f"durable_{i}" for i in range(set_block)]

        def base_set(i):
            base_db.execute("BEGIN IMMEDIATE")
            base_db.execute(upsert, (set_names[i], f"/data/new/{i}", int(time.time() * 1000)))
            base_db.execute("COMMIT")

        os.environ["TFIMM_REGISTRY"] = files["ours"]
        for i in range(set_block):  # warm up: both sides insert the names once
            tfimm_cache.set_model_cache(set_names[i], f"/data/new/{i}")
            base_set(i)
        a, b = interleave(set_rounds, set_block,
                          lambda i: tfimm_cache.set_model_cache(set_names[i], f"/data/new/{i}"),
                          base_set)
        if lookup(set_names[3]) != "/data/new/3":
            failures.append("set: the registry does not hold the value set")
        os.environ["TFIMM_REGISTRY"] = str(tmp / "registry.db")
        report("durable set", "`set_model_cache`",
               "`sqlite3` upsert, WAL + `synchronous=FULL`, same schema", a, b, 1.2, 1e3, "ms")

    # -- import time -------------------------------------------------------------------
    if want("import"):
        probe = ("import time; t = time.perf_counter(); import {m}; "
                 "print(time.perf_counter() - t)")
        runs = 4 if smoke else 30
        a, b = [], []
        for r in range(runs):
            for module, out in (("tfimm_cache", a), ("sqlite3", b)):
                out.append(float(subprocess.run(
                    [sys.executable, "-c", probe.format(m=module)], capture_output=True,
                    text=True, check=True).stdout))
        report("import time", "`import tfimm_cache`", "`import sqlite3`", a, b, 3.0, 1e3, "ms")

    if failures:
        print("\n".join(failures), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
