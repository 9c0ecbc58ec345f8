"""patch_tfimm() against a stand-in tfimm laid out like tfimm's (fake_tfimm/):
tfimm/utils/cache.py holds module-level state; tfimm/__init__.py,
tfimm/utils/__init__.py and tfimm/models/factory.py import its functions by
name."""

import importlib
import os
import sys
import types

import pytest

import tfimm_cache
from conftest import FAKE_TFIMM

SIX = ("get_dir", "set_dir", "set_model_cache", "clear_model_cache", "list_cached_models",
       "cached_model_path")


def forget_tfimm():
    for name in [m for m in sys.modules if m == "tfimm" or m.startswith("tfimm.")]:
        del sys.modules[name]
    sys.modules.pop("user_script", None)


@pytest.fixture
def tfimm(env, monkeypatch):
    monkeypatch.syspath_prepend(str(FAKE_TFIMM))
    forget_tfimm()
    module = importlib.import_module("tfimm")
    yield module
    tfimm_cache.unpatch_tfimm()
    forget_tfimm()


def user_module_importing_before_the_patch():
    """A caller's module that bound a function under its own name."""
    user = types.ModuleType("user_script")
    exec("from tfimm import cached_model_path as where\nfrom tfimm.utils import set_model_cache",
         user.__dict__)
    sys.modules["user_script"] = user
    return user


def test_without_tfimm_patch_tfimm_raises_import_error_saying_so(env, monkeypatch):
    forget_tfimm()
    monkeypatch.setattr(sys, "path", [p for p in sys.path if "fake_tfimm" not in p])
    with pytest.raises(ImportError, match="patch_tfimm\\(\\) needs tfimm"):
        tfimm_cache.patch_tfimm()


def test_patch_rebinds_every_binding_including_one_imported_before_the_patch(tfimm, env):
    user = user_module_importing_before_the_patch()
    report = tfimm_cache.patch_tfimm()
    bound = set(report.bindings)
    for module in ("tfimm", "tfimm.utils", "tfimm.utils.cache"):
        for name in SIX:
            assert f"{module}.{name}" in bound
    assert "tfimm.models.factory.cached_model_path" in bound
    assert {"user_script.where", "user_script.set_model_cache"} <= bound
    assert user.where is tfimm_cache.cached_model_path
    assert sys.modules["tfimm.models.factory"].cached_model_path is tfimm_cache.cached_model_path


def test_create_model_finds_weights_registered_by_another_process(tfimm, env):
    tfimm_cache.patch_tfimm()
    with pytest.raises(ValueError, match="not found"):
        tfimm.create_model("resnet18", pretrained=True)
    env.python("import tfimm_cache; tfimm_cache.set_model_cache('resnet18', '/w/r18')")
    assert tfimm.create_model("resnet18", pretrained=True) == "/w/r18/weights.h5"
    # And tfimm's own set_model_cache now reaches every process.
    tfimm.set_model_cache("vit", "/w/vit")
    out = env.python("import tfimm_cache; print(tfimm_cache.cached_model_path('vit'))").stdout
    assert out.strip() == "/w/vit"


def test_patch_is_idempotent(tfimm, env):
    first = tfimm_cache.patch_tfimm()
    second = tfimm_cache.patch_tfimm()
    assert first.bindings and second.bindings == ()
    assert tfimm.cached_model_path is tfimm_cache.cached_model_path


def test_unpatch_restores_tfimms_functions_and_state(tfimm, env):
    user = user_module_importing_before_the_patch()
    original = tfimm.cached_model_path
    original_dict = sys.modules["tfimm.utils.cache"]._model_cache
    tfimm_cache.patch_tfimm()
    tfimm.set_model_cache("vit", "/w/vit")
    restored = tfimm_cache.unpatch_tfimm()
    assert "user_script.where" in restored.bindings
    assert tfimm.cached_model_path is original and user.where is original
    assert sys.modules["tfimm.utils.cache"]._model_cache is original_dict
    # tfimm is process-local again; the registry keeps what was registered.
    assert tfimm.cached_model_path("vit") is None
    assert tfimm_cache.cached_model_path("vit") == "/w/vit"
    assert tfimm_cache.unpatch_tfimm().bindings == ()


def test_what_tfimm_held_before_the_patch_is_carried_over(tfimm, env):
    tfimm.set_model_cache("early", "/w/early")
    tfimm.set_dir(env.path("tfimm-dir"))
    report = tfimm_cache.patch_tfimm()
    assert report.carried_over == ("early",)
    assert report.dir_override == env.path("tfimm-dir")
    assert tfimm.cached_model_path("early") == "/w/early"
    assert tfimm.get_dir() == env.path("tfimm-dir")
    assert tfimm_cache.get_dir_origin().source == "override"
    tfimm_cache.unpatch_tfimm()
    assert tfimm_cache.dir_override() is None
    assert tfimm.get_dir() == env.path("tfimm-dir")  # tfimm's own state again


def test_a_bad_name_in_tfimms_dict_refuses_the_patch_and_changes_nothing(tfimm, env):
    tfimm.set_model_cache("../escape", "/w/x")
    with pytest.raises(tfimm_cache.InvalidName):
        tfimm_cache.patch_tfimm()
    assert tfimm.cached_model_path is sys.modules["tfimm.utils.cache"].cached_model_path
    assert tfimm.cached_model_path("../escape") == "/w/x"
    assert not env.registry.exists()


def test_code_that_reads_tfimms_dict_directly_sees_the_registry(tfimm, env):
    tfimm_cache.patch_tfimm()
    cache = sys.modules["tfimm.utils.cache"]
    env.python("import tfimm_cache; tfimm_cache.set_model_cache('resnet18', '/w/r18')")
    assert "resnet18" in cache._model_cache
    assert cache._model_cache["resnet18"] == "/w/r18"
    assert list(cache._model_cache) == ["resnet18"]
    cache._model_cache["vit"] = "/w/vit"
    del cache._model_cache["resnet18"]
    assert tfimm_cache.list_cached_models() == ["vit"]
    with pytest.raises(KeyError):
        cache._model_cache["resnet18"]


def test_a_module_imported_after_the_patch_binds_the_registry_functions(tfimm, env):
    tfimm_cache.patch_tfimm()
    late = types.ModuleType("late")
    exec("from tfimm.utils.cache import cached_model_path", late.__dict__)
    assert late.cached_model_path is tfimm_cache.cached_model_path


def test_tfimms_dict_view_answers_like_a_dict(tfimm, env):
    tfimm_cache.patch_tfimm()
    view = sys.modules["tfimm.utils.cache"]._model_cache
    view["a"] = "/w/a"
    view.update({"b": "/w/b"})
    assert dict(view.items()) == {"a": "/w/a", "b": "/w/b"}
    assert list(view.values()) == ["/w/a", "/w/b"] and len(view) == 2
    assert view.get("nosuch") is None and view.pop("a") == "/w/a"
    assert tfimm_cache.list_cached_models() == ["b"]
