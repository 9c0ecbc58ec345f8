"""tfimm's six functions: the same answers as tfimm.utils.cache, case by case,
except where the registry is persistent by design (each difference is a test
of its own below). The fake tfimm in fake_tfimm/ implements tfimm's
documented behaviour; both run the same steps side by side."""

import importlib
import os
import sys
from pathlib import Path

import pytest

import tfimm_cache
from conftest import FAKE_TFIMM


@pytest.fixture
def tfimm_module(monkeypatch):
    monkeypatch.syspath_prepend(str(FAKE_TFIMM))
    for name in [m for m in sys.modules if m == "tfimm" or m.startswith("tfimm.")]:
        monkeypatch.delitem(sys.modules, name)
    cache = importlib.import_module("tfimm.utils.cache")
    yield cache
    for name in [m for m in sys.modules if m == "tfimm" or m.startswith("tfimm.")]:
        del sys.modules[name]


def both(cache, step):
    """The result of `step` on tfimm's functions and on ours."""
    return step(cache), step(tfimm_cache)


def test_a_registered_path_is_returned_as_given_when_absolute(env, tfimm_module):
    def step(m):
        m.set_model_cache("resnet18", env.path("w/resnet18"))
        return m.cached_model_path("resnet18")

    theirs, ours = both(tfimm_module, step)
    assert theirs == ours == env.path("w/resnet18")
    assert type(ours) is str


def test_an_unknown_model_with_nothing_in_the_cache_dir_is_none(env, tfimm_module):
    env.set("TFIMM_HOME", env.path("models"))
    assert both(tfimm_module, lambda m: m.cached_model_path("vit")) == (None, None)


def test_a_model_in_the_cache_directory_is_found_there(env, tfimm_module):
    env.set("TFIMM_HOME", env.path("models"))
    os.makedirs(env.path("models/vit"))
    theirs, ours = both(tfimm_module, lambda m: m.cached_model_path("vit"))
    assert theirs == ours == env.path("models/vit")


def test_the_model_specific_entry_wins_over_the_cache_directory(env, tfimm_module):
    env.set("TFIMM_HOME", env.path("models"))
    os.makedirs(env.path("models/vit"))

    def step(m):
        m.set_model_cache("vit", env.path("elsewhere/vit"))
        return m.cached_model_path("vit")

    theirs, ours = both(tfimm_module, step)
    assert theirs == ours == env.path("elsewhere/vit")


def test_clear_model_cache_of_an_absent_name_is_no_error_and_returns_none(env, tfimm_module):
    assert both(tfimm_module, lambda m: m.clear_model_cache("never-set")) == (None, None)


def test_clear_model_cache_falls_back_to_the_cache_directory(env, tfimm_module):
    env.set("TFIMM_HOME", env.path("models"))
    os.makedirs(env.path("models/vit"))

    def step(m):
        m.set_model_cache("vit", "/elsewhere/vit")
        m.clear_model_cache("vit")
        return m.cached_model_path("vit"), m.list_cached_models()

    theirs, ours = both(tfimm_module, step)
    assert theirs == ours == (env.path("models/vit"), [])


def test_list_cached_models_is_sorted_and_never_scans_the_cache_directory(env, tfimm_module):
    env.set("TFIMM_HOME", env.path("models"))
    os.makedirs(env.path("models/in-dir-only"))

    def step(m):
        for name in ("vit", "convnext", "resnet18"):
            m.set_model_cache(name, f"/w/{name}")
        return m.list_cached_models()

    theirs, ours = both(tfimm_module, step)
    assert theirs == ours == ["convnext", "resnet18", "vit"]
    assert all(type(n) is str for n in ours)


@pytest.mark.parametrize(
    "variables, expected",
    [
        ({}, "home/.cache/tfimm"),
        ({"XDG_CACHE_HOME": "xdg"}, "xdg/tfimm"),
        ({"TFIMM_HOME": "th", "XDG_CACHE_HOME": "xdg"}, "th"),
    ],
    ids=["default", "xdg-cache-home", "tfimm-home-wins"],
)
def test_get_dir_follows_tfimms_environment_precedence(env, tfimm_module, variables, expected):
    for name, value in variables.items():
        env.set(name, env.path(value))
    theirs, ours = both(tfimm_module, lambda m: m.get_dir())
    assert theirs == ours == env.path(expected)


def test_set_dir_wins_over_tfimm_home_as_in_tfimm(env, tfimm_module):
    env.set("TFIMM_HOME", env.path("th"))

    def step(m):
        m.set_dir(env.path("chosen"))
        return m.get_dir()

    theirs, ours = both(tfimm_module, step)
    assert theirs == ours == env.path("chosen")


def test_the_environment_is_read_on_every_call(env):
    env.set("TFIMM_HOME", env.path("one"))
    assert tfimm_cache.get_dir() == env.path("one")
    env.set("TFIMM_HOME", env.path("two"))
    assert tfimm_cache.get_dir() == env.path("two")
    tfimm_cache.set_model_cache("resnet18", "/w/a")
    env.set("TFIMM_REGISTRY", env.path("other.db"))
    assert tfimm_cache.list_cached_models() == []
    assert tfimm_cache.cached_model_path("resnet18") is None
    env.set("TFIMM_REGISTRY", str(env.registry))
    assert tfimm_cache.cached_model_path("resnet18") == "/w/a"


# -- where the registry differs from tfimm on purpose --------------------------


def test_difference_entries_persist_across_processes(env):
    env.python("import tfimm_cache; tfimm_cache.set_model_cache('resnet18', '/w/r18')")
    assert tfimm_cache.cached_model_path("resnet18") == "/w/r18"
    out = env.python("import tfimm_cache; print(tfimm_cache.list_cached_models())").stdout
    assert out.strip() == "['resnet18']"


def test_difference_set_dir_is_stored_for_every_process_and_the_override_is_not(env):
    tfimm_cache.set_dir(env.path("shared"))
    code = "import tfimm_cache; print(tfimm_cache.get_dir())"
    assert env.python(code).stdout.strip() == env.path("shared")
    tfimm_cache.set_dir_override(env.path("mine"))
    assert tfimm_cache.get_dir() == env.path("mine")
    assert tfimm_cache.get_dir_origin().source == "override"
    assert env.python(code).stdout.strip() == env.path("shared")
    tfimm_cache.clear_dir_override()
    tfimm_cache.unset_dir()
    assert tfimm_cache.get_dir() == env.path("home/.cache/tfimm")


def test_difference_paths_are_stored_absolute_with_tilde_expanded(env, monkeypatch):
    monkeypatch.chdir(env.root)
    tfimm_cache.set_model_cache("a", "~/w/a")
    tfimm_cache.set_model_cache("b", "rel/../w/b")
    assert tfimm_cache.cached_model_path("a") == env.path("home/w/a")
    assert tfimm_cache.cached_model_path("b") == env.path("w/b")


def test_paths_are_accepted_as_str_bytes_and_pathlike_and_returned_as_str(env):
    tfimm_cache.set_model_cache("p", Path(env.path("w/p")))
    tfimm_cache.set_model_cache("b", os.fsencode(env.path("w/b")))
    tfimm_cache.set_dir(Path(env.path("dir")))
    assert tfimm_cache.cached_model_path("p") == env.path("w/p")
    assert tfimm_cache.cached_model_path("b") == env.path("w/b")
    assert tfimm_cache.get_dir() == env.path("dir")
    assert {type(tfimm_cache.cached_model_path(n)) for n in ("p", "b")} == {str}


def test_a_path_that_is_not_utf8_round_trips_like_os_fsdecode(env):
    raw = os.fsencode(env.path("w")) + b"/caf\xe9"
    tfimm_cache.set_model_cache("latin1", raw)
    got = tfimm_cache.cached_model_path("latin1")
    assert isinstance(got, str) and os.fsencode(got) == raw
    # The str form os.listdir() gives is accepted as well and means the same file.
    tfimm_cache.set_model_cache("again", os.fsdecode(raw))
    assert os.fsencode(tfimm_cache.cached_model_path("again")) == raw


def test_get_dir_origin_names_the_winning_layer_and_every_layer(env):
    env.set("TFIMM_HOME", env.path("th"))
    origin = tfimm_cache.get_dir_origin()
    assert isinstance(origin, tfimm_cache.CacheDir)
    assert (origin.path, origin.source) == (env.path("th"), "TFIMM_HOME")
    assert [layer.source for layer in origin.layers] == [
        "override", "registry", "TFIMM_HOME", "XDG_CACHE_HOME", "default"]
    with pytest.raises(AttributeError):
        origin.path = "/x"  # type: ignore[misc]


def test_functions_accept_tfimms_keyword_names(env):
    tfimm_cache.set_model_cache(model_name="k", model_path="/w/k")
    assert tfimm_cache.cached_model_path(model_name="k") == "/w/k"
    tfimm_cache.clear_model_cache(model_name="k")
    tfimm_cache.set_dir(d=env.path("d"))
    assert tfimm_cache.get_dir() == env.path("d")
