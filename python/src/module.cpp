// tfimm_cache._native: the C++ library for Python. Only conversions live
// here; the pure-Python layer (python/tfimm_cache/) gives them their Python
// shape (dataclasses, the transaction context manager, patch_tfimm()).
//
// Rules every binding follows:
// - Arguments are converted while the GIL is held, then the GIL is released
//   for the call into the library (which may wait on the disk or on another
//   process's lock), then results are converted with the GIL held again.
// - Names must be str; a lone surrogate becomes bytes that are not UTF-8, so
//   the library refuses them as InvalidName. Paths are str, bytes or
//   os.PathLike, encoded like os.fsencode(); paths come back decoded like
//   os.fsdecode(), so a path that is not UTF-8 survives the round trip.
//   Both are passed with their length: a NUL is refused, never truncated.
// - The library's exceptions become the classes of tfimm_cache._errors.
// - No Python code runs while a Registry call holds its lock: audit and
//   prune run on a thread of their own and the calling thread reports their
//   progress (see run_checks).
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "tfimm/cache.hpp"
#include "tfimm/names.hpp"
#include "tfimm/paths.hpp"
#include "tfimm/registry.hpp"
#include "tfimm/transfer.hpp"

namespace py = pybind11;

namespace {

using tfimm::Registry;

// -- arguments ----------------------------------------------------------------

std::string type_name(py::handle value) { return Py_TYPE(value.ptr())->tp_name; }

std::string encoded(PyObject* bytes) {
  char* data = nullptr;
  Py_ssize_t size = 0;
  if (PyBytes_AsStringAndSize(bytes, &data, &size) != 0) throw py::error_already_set();
  return std::string(data, static_cast<std::size_t>(size));
}

std::string name_arg(py::handle value) {
  if (!PyUnicode_Check(value.ptr())) {
    throw py::type_error("a model name must be a str, not " + type_name(value));
  }
  // surrogateescape keeps undecodable bytes of os.fsdecode() as they were;
  // any other lone surrogate is written as is. Either way the result is not
  // UTF-8 and the library names the rule it breaks.
  PyObject* bytes = PyUnicode_AsEncodedString(value.ptr(), "utf-8", "surrogateescape");
  if (bytes == nullptr) {
    PyErr_Clear();
    bytes = PyUnicode_AsEncodedString(value.ptr(), "utf-8", "surrogatepass");
    if (bytes == nullptr) throw py::error_already_set();
  }
  auto owned = py::reinterpret_steal<py::object>(bytes);
  return encoded(owned.ptr());
}

std::string path_arg(py::handle value) {
  auto path = py::reinterpret_steal<py::object>(PyOS_FSPath(value.ptr()));
  if (!path) throw py::error_already_set();  // TypeError naming the type
  if (PyBytes_Check(path.ptr())) return encoded(path.ptr());
  PyObject* bytes = PyUnicode_EncodeFSDefault(path.ptr());
  if (bytes == nullptr) {
    PyErr_Clear();
    throw tfimm::InvalidPath("path " + py::repr(value).cast<std::string>() +
                             " cannot be encoded for the file system; pass it as bytes");
  }
  auto owned = py::reinterpret_steal<py::object>(bytes);
  return encoded(owned.ptr());
}

// -- results ------------------------------------------------------------------

py::object fs_str(const std::string& path) {
  return py::reinterpret_steal<py::object>(
      PyUnicode_DecodeFSDefaultAndSize(path.data(), static_cast<Py_ssize_t>(path.size())));
}

py::object fs_str(const std::optional<std::string>& path) {
  return path ? fs_str(*path) : py::none();
}

// Names are valid UTF-8 (the library refuses others), so a plain str.
py::list names_list(const std::vector<std::string>& names) {
  py::list out;
  for (const auto& name : names) out.append(py::str(name));
  return out;
}

const char* source_name(tfimm::DirSource source) {
  switch (source) {
    case tfimm::DirSource::Override:
      return "override";
    case tfimm::DirSource::RegistrySetting:
      return "registry";
    case tfimm::DirSource::TfimmHome:
      return "TFIMM_HOME";
    case tfimm::DirSource::XdgCacheHome:
      return "XDG_CACHE_HOME";
    case tfimm::DirSource::Default:
      return "default";
  }
  return "unknown";
}

const char* source_name(tfimm::RegistrySource source) {
  switch (source) {
    case tfimm::RegistrySource::Explicit:
      return "explicit";
    case tfimm::RegistrySource::EnvRegistry:
      return "TFIMM_REGISTRY";
    case tfimm::RegistrySource::XdgStateHome:
      return "XDG_STATE_HOME";
    case tfimm::RegistrySource::Default:
      return "default";
  }
  return "unknown";
}

const char* source_name(tfimm::ResolveSource source) {
  switch (source) {
    case tfimm::ResolveSource::Entry:
      return "entry";
    case tfimm::ResolveSource::CacheDir:
      return "cache_dir";
    case tfimm::ResolveSource::None:
      return "none";
  }
  return "unknown";
}

py::list ignored_list(const std::vector<tfimm::IgnoredVariable>& ignored) {
  py::list out;
  for (const auto& v : ignored) out.append(py::make_tuple(v.name, fs_str(v.value)));
  return out;
}

py::dict location_dict(const tfimm::RegistryLocation& location) {
  py::dict d;
  d["path"] = fs_str(location.path);
  d["source"] = source_name(location.source);
  d["ignored"] = ignored_list(location.ignored);
  return d;
}

py::dict cache_dir_dict(const tfimm::CacheDir& dir) {
  py::dict d;
  d["path"] = fs_str(dir.path);
  d["source"] = source_name(dir.source);
  py::list layers;
  for (const auto& layer : dir.layers) {
    layers.append(py::make_tuple(source_name(layer.source), fs_str(layer.path)));
  }
  d["layers"] = layers;
  d["ignored"] = ignored_list(dir.ignored);
  return d;
}

py::object entry_dict(const std::optional<tfimm::Entry>& entry) {
  if (!entry) return py::none();
  py::dict d;
  d["name"] = py::str(entry->name);
  d["path"] = fs_str(entry->path);
  d["created_at"] = entry->created_at;
  d["updated_at"] = entry->updated_at;
  d["locked"] = entry->locked;
  d["lock_reason"] = py::str(entry->lock_reason);
  d["missing_since"] = entry->missing_since ? py::cast(*entry->missing_since) : py::none();
  d["local_to"] = fs_str(entry->local_to);
  return std::move(d);
}

py::dict resolution_dict(const tfimm::Resolution& r) {
  py::dict d;
  d["name"] = py::str(r.name);
  d["path"] = fs_str(r.path);
  d["source"] = source_name(r.source);
  d["exists"] = r.exists;
  d["entry"] = entry_dict(r.entry);
  d["cache_dir"] = cache_dir_dict(r.cache_dir);
  d["fallback_path"] = fs_str(r.fallback_path);
  d["fallback_exists"] = r.fallback_exists;
  d["status"] = tfimm::to_string(r.status);
  d["detail"] = fs_str(r.detail);
  d["fallback_status"] = tfimm::to_string(r.fallback_status);
  d["fallback_detail"] = fs_str(r.fallback_detail);
  return d;
}

py::list audit_items(const std::vector<tfimm::AuditItem>& items) {
  py::list out;
  for (const auto& item : items) {
    py::dict d;
    d["entry"] = entry_dict(item.entry);
    d["status"] = tfimm::to_string(item.status);
    d["is_symlink"] = item.is_symlink;
    d["detail"] = fs_str(item.detail);
    out.append(d);
  }
  return out;
}

py::dict audit_dict(const tfimm::AuditReport& report) {
  py::dict d;
  d["items"] = audit_items(report.items);
  d["cache_dir"] = cache_dir_dict(report.cache_dir);
  d["cache_dir_status"] = tfimm::to_string(report.cache_dir_status);
  d["recorded"] = report.recorded;
  return d;
}

py::list prune_items(const std::vector<tfimm::PruneItem>& items) {
  py::list out;
  for (const auto& item : items) {
    py::dict d;
    d["entry"] = entry_dict(item.entry);
    d["status"] = tfimm::to_string(item.status);
    out.append(d);
  }
  return out;
}

py::dict prune_dict(const tfimm::PruneReport& report) {
  py::dict d;
  d["removed"] = prune_items(report.removed);
  d["kept_locked"] = prune_items(report.kept_locked);
  d["kept_young"] = prune_items(report.kept_young);
  d["other_host"] = prune_items(report.other_host);
  d["checked"] = report.checked;
  d["dry_run"] = report.dry_run;
  return d;
}

py::list history_list(const std::vector<tfimm::HistoryRecord>& records) {
  py::list out;
  for (const auto& r : records) {
    py::dict d;
    d["id"] = r.id;
    d["at"] = r.at;
    d["action"] = r.action;
    d["name"] = py::str(r.name);
    d["old_path"] = fs_str(r.old_path);
    d["new_path"] = fs_str(r.new_path);
    d["user"] = fs_str(r.user);
    d["host"] = fs_str(r.host);
    d["pid"] = r.pid;
    d["change_set"] = r.change_set;
    d["undoes"] = r.undoes ? py::object(py::int_(*r.undoes)) : py::object(py::none());
    out.append(d);
  }
  return out;
}

py::dict undo_dict(const tfimm::UndoReport& r) {
  py::list changes;
  for (const auto& c : r.changes) {
    py::dict d;
    d["name"] = py::str(c.name);
    d["setting"] = py::str(c.setting);
    d["old_path"] = fs_str(c.old_path);
    d["new_path"] = fs_str(c.new_path);
    d["old_locked"] = c.old_locked;
    d["old_lock_reason"] = fs_str(c.old_lock_reason);
    d["new_locked"] = c.new_locked;
    d["new_lock_reason"] = fs_str(c.new_lock_reason);
    changes.append(d);
  }
  py::list conflicts;
  for (const auto& c : r.conflicts) {
    py::dict d;
    d["name"] = py::str(c.name);
    d["setting"] = py::str(c.setting);
    d["change_set"] = c.change_set;
    d["action"] = c.action;
    conflicts.append(d);
  }
  py::dict d;
  d["change_set"] = r.change_set;
  d["recorded"] = r.recorded == 0 ? py::object(py::none()) : py::object(py::int_(r.recorded));
  d["changes"] = changes;
  d["conflicts"] = conflicts;
  d["dry_run"] = r.dry_run;
  return d;
}

py::dict import_dict(const tfimm::ImportReport& r) {
  py::dict d;
  d["added"] = r.added;
  d["changed"] = r.changed;
  d["unchanged"] = r.unchanged;
  d["removed"] = r.removed;
  d["locked"] = r.locked;
  d["unlocked"] = r.unlocked;
  d["locks_kept"] = r.locks_kept;
  d["cache_dir_changed"] = r.cache_dir_changed;
  return d;
}

// -- exceptions ---------------------------------------------------------------

// The classes of tfimm_cache._errors, looked up once at import. Leaked on
// purpose: they must outlive every translation, including one at exit.
struct ErrorClasses {
  py::handle error, invalid_name, invalid_path, invalid_input, unknown_model, transaction_misuse;
  py::handle registry_error, not_a_registry, too_new, corrupt, busy, read_only, full;
};
ErrorClasses* classes = nullptr;

void raise(py::handle cls, const std::exception& e, const std::string* path = nullptr) {
  py::object instance = cls(py::str(e.what()));
  if (path != nullptr) instance.attr("path") = fs_str(*path);
  PyErr_SetObject(cls.ptr(), instance.ptr());
}

void raise_registry(py::handle cls, const tfimm::RegistryError& e) { raise(cls, e, &e.path()); }

void translate(std::exception_ptr p) {
  const auto& c = *classes;
  try {
    std::rethrow_exception(p);
  } catch (const tfimm::RegistryTooNew& e) {
    py::object instance = c.too_new(py::str(e.what()));
    instance.attr("path") = fs_str(e.path());
    instance.attr("found_version") = e.found_version();
    instance.attr("known_version") = e.known_version();
    PyErr_SetObject(c.too_new.ptr(), instance.ptr());
  } catch (const tfimm::NotARegistry& e) {
    raise_registry(c.not_a_registry, e);
  } catch (const tfimm::RegistryCorrupt& e) {
    raise_registry(c.corrupt, e);
  } catch (const tfimm::RegistryBusy& e) {
    raise_registry(c.busy, e);
  } catch (const tfimm::RegistryReadOnly& e) {
    raise_registry(c.read_only, e);
  } catch (const tfimm::RegistryFull& e) {
    raise_registry(c.full, e);
  } catch (const tfimm::RegistryError& e) {
    raise_registry(c.registry_error, e);
  } catch (const tfimm::InvalidName& e) {
    raise(c.invalid_name, e);
  } catch (const tfimm::InvalidPath& e) {
    raise(c.invalid_path, e);
  } catch (const tfimm::UnknownModel& e) {
    raise(c.unknown_model, e);
  } catch (const tfimm::InvalidInput& e) {
    raise(c.invalid_input, e);
  } catch (const tfimm::TransactionMisuse& e) {
    raise(c.transaction_misuse, e);
  } catch (const tfimm::Error& e) {
    raise(c.error, e);
  }
  // Anything else falls through to pybind11's own translations.
}

// -- calls without the GIL ----------------------------------------------------

// Runs `call` with the GIL released and returns its result. Not with
// py::gil_scoped_release: at interpreter exit, taking the GIL back ends a
// daemon thread with pthread_exit(), whose forced unwinding aborts the
// process (std::terminate) when it starts in a destructor, as the guard's
// would. Here it starts in plain code and unwinds through pybind11.
template <class Call>
auto nogil(Call&& call) -> decltype(call()) {
  using Result = decltype(call());
  PyThreadState* saved = PyEval_SaveThread();
  if constexpr (std::is_void_v<Result>) {
    try {
      call();
    } catch (...) {
      PyEval_RestoreThread(saved);
      throw;
    }
    PyEval_RestoreThread(saved);
  } else {
    std::optional<Result> result;
    try {
      result.emplace(call());
    } catch (...) {
      PyEval_RestoreThread(saved);
      throw;
    }
    PyEval_RestoreThread(saved);
    return std::move(*result);
  }
}

// audit(), check_entries() and prune() on a thread of their own, with the
// GIL released; their progress reaches `progress` (a Python callable or
// None) on the calling thread. So Python code never runs while the
// Registry's call lock is held: a callback that calls the registry, another
// Python thread waiting for the registry, or os.fork() in another thread
// never waits for a thread that waits for the GIL.
template <class Result>
Result run_checks(py::handle progress, unsigned threads,
                  const std::function<Result(const tfimm::AuditOptions&)>& call) {
  struct State {
    std::mutex m;
    std::condition_variable cv;
    std::size_t done = 0, total = 0;
    bool fresh = false, finished = false;
  } state;
  tfimm::AuditOptions options;
  options.threads = threads;
  const bool report = !progress.is_none();
  if (report) {
    options.progress = [&state](std::size_t done, std::size_t total) {
      std::lock_guard<std::mutex> lock(state.m);
      state.done = done;
      state.total = total;
      state.fresh = true;
      state.cv.notify_all();
    };
  }
  std::optional<Result> result;
  std::exception_ptr failure;
  PyObject *error_type = nullptr, *error_value = nullptr, *error_trace = nullptr;
  const pid_t pid = ::getpid();
  // Joins the checking thread however this function is left, before the
  // state it uses goes: also when taking the GIL back ends this thread at
  // interpreter exit (see nogil).
  struct Worker {
    std::thread thread;
    ~Worker() {
      if (thread.joinable()) thread.join();
    }
  } worker;
  PyThreadState* saved = PyEval_SaveThread();
  worker.thread = std::thread([&] {
    try {
      result = call(options);
    } catch (...) {
      failure = std::current_exception();
    }
    std::lock_guard<std::mutex> lock(state.m);
    state.finished = true;
    state.cv.notify_all();
  });
  bool cancelled = false;
  while (true) {
    std::unique_lock<std::mutex> lock(state.m);
    state.cv.wait_for(lock, std::chrono::milliseconds(100),
                      [&] { return state.fresh || state.finished; });
    if (state.finished && !state.fresh) break;
    const bool deliver = state.fresh && report && !cancelled;
    const std::size_t done = state.done, total = state.total;
    state.fresh = false;
    lock.unlock();
    if (cancelled) continue;
    PyEval_RestoreThread(saved);
    // Ctrl-C cannot stop the checks already running (the library has no
    // way to cancel them); it stops the callbacks, and is raised when the
    // checks return.
    if (PyErr_CheckSignals() == 0 && deliver) {
      if (PyObject* r = PyObject_CallFunction(progress.ptr(), "nn", static_cast<Py_ssize_t>(done),
                                              static_cast<Py_ssize_t>(total))) {
        Py_DECREF(r);
      }
    }
    if (PyErr_Occurred() != nullptr) {
      PyErr_Fetch(&error_type, &error_value, &error_trace);
      cancelled = true;
    }
    if (::getpid() != pid) {
      // Forked inside the callback: the checking thread stayed in the
      // parent. The C++ rule is the same: _exit() or exec() in there.
      PyErr_Restore(error_type, error_value, error_trace);
      error_type = error_value = error_trace = nullptr;
      worker.thread.detach();
      throw tfimm::TransactionMisuse(
          "a process forked inside an audit or prune progress callback cannot return from "
          "it: the checks stayed in the parent; call os._exit() or exec there");
    }
    saved = PyEval_SaveThread();
  }
  worker.thread.join();
  PyEval_RestoreThread(saved);
  if (error_type != nullptr) {
    PyErr_Restore(error_type, error_value, error_trace);
    throw py::error_already_set();
  }
  if (failure) std::rethrow_exception(failure);
  return std::move(*result);
}

// -- transactions ---------------------------------------------------------------

// One operation of a transaction block, as recorded by the Python layer.
struct Op {
  enum Kind { Set = 0, Clear = 1, SetDir = 2, UnsetDir = 3 } kind;
  std::string name;
  std::string path;
};

std::vector<Op> ops_arg(py::handle ops) {
  std::vector<Op> out;
  for (py::handle item : ops) {
    auto t = py::reinterpret_borrow<py::tuple>(item);
    Op op{static_cast<Op::Kind>(t[0].cast<int>()), {}, {}};
    if (!t[1].is_none()) op.name = name_arg(t[1]);
    if (!t[2].is_none()) op.path = path_arg(t[2]);
    out.push_back(std::move(op));
  }
  return out;
}

void replay(tfimm::Transaction& tx, const std::vector<Op>& ops) {
  for (const auto& op : ops) {
    switch (op.kind) {
      case Op::Set:
        tx.set_model_cache(op.name, op.path);
        break;
      case Op::Clear:
        tx.clear_model_cache(op.name);
        break;
      case Op::SetDir:
        tx.set_dir(op.path);
        break;
      case Op::UnsetDir:
        tx.unset_dir();
        break;
    }
  }
}

// Thrown out of a transaction body to roll back a read-only replay.
struct Rollback {};

}  // namespace

PYBIND11_MODULE(_native, m) {
  m.doc() = "tfimm-cache C++ library; use the tfimm_cache package, not this module.";
  {
    py::module_ errors = py::module_::import("tfimm_cache._errors");
    auto get = [&](const char* name) { return py::object(errors.attr(name)).release(); };
    classes =
        new ErrorClasses{get("Error"),           get("InvalidName"),  get("InvalidPath"),
                         get("InvalidInput"),    get("UnknownModel"), get("TransactionMisuse"),
                         get("RegistryError"),   get("NotARegistry"), get("RegistryTooNew"),
                         get("RegistryCorrupt"), get("RegistryBusy"), get("RegistryReadOnly"),
                         get("RegistryFull")};
  }
  py::register_exception_translator(translate);

  m.def("version", [] { return std::string(tfimm::version()); });
  m.def("schema_version", &tfimm::schema_version);

  // -- names and paths: pure, except normalize_path (working directory,
  // password database).
  m.def("check_name", [](py::handle name) { tfimm::check_name(name_arg(name)); });
  m.def("normalize_path", [](py::handle path) {
    auto p = path_arg(path);
    return fs_str(nogil([&] { return tfimm::normalize_path(p); }));
  });
  m.def("default_registry_location",
        [] { return location_dict(nogil([] { return tfimm::default_registry_location(); })); });

  // -- tfimm's functions on the default registry.
  m.def("get_dir", [] { return fs_str(nogil([] { return tfimm::get_dir(); })); });
  m.def("get_dir_origin",
        [] { return cache_dir_dict(nogil([] { return tfimm::get_dir_origin(); })); });
  m.def(
      "set_dir",
      [](py::handle d) {
        auto p = path_arg(d);
        nogil([&] { tfimm::set_dir(p); });
      },
      py::arg("d"));
  m.def("unset_dir", [] { nogil([] { tfimm::unset_dir(); }); });
  m.def(
      "set_model_cache",
      [](py::handle model_name, py::handle model_path) {
        auto name = name_arg(model_name);
        auto path = path_arg(model_path);
        nogil([&] { tfimm::set_model_cache(name, path); });
      },
      py::arg("model_name"), py::arg("model_path"));
  m.def(
      "clear_model_cache",
      [](py::handle model_name) {
        auto name = name_arg(model_name);
        nogil([&] { tfimm::clear_model_cache(name); });
      },
      py::arg("model_name"));
  m.def("list_cached_models",
        [] { return names_list(nogil([] { return tfimm::list_cached_models(); })); });
  m.def(
      "cached_model_path",
      [](py::handle model_name) {
        auto name = name_arg(model_name);
        return fs_str(nogil([&] { return tfimm::cached_model_path(name); }));
      },
      py::arg("model_name"));

  // -- the process-local override (no file is touched).
  m.def(
      "set_dir_override",
      [](py::handle d) {
        auto p = path_arg(d);
        nogil([&] { tfimm::set_dir_override(p); });
      },
      py::arg("d"));
  m.def("clear_dir_override", [] { tfimm::clear_dir_override(); });
  m.def("dir_override", [] { return fs_str(tfimm::dir_override()); });

  m.def("parse_duration", [](const std::string& text) {
    return static_cast<double>(tfimm::parse_duration(text).count()) / 1000.0;
  });

  py::class_<Registry>(m, "Registry")
      .def(py::init([](py::handle location, double busy_timeout) {
             tfimm::RegistryOptions options;
             options.busy_timeout =
                 std::chrono::milliseconds(static_cast<std::int64_t>(busy_timeout * 1000.0));
             if (location.is_none()) return std::make_unique<Registry>(options);
             auto path = path_arg(location);
             return nogil([&] { return std::make_unique<Registry>(path, options); });
           }),
           py::arg("location"), py::arg("busy_timeout"))
      .def_property_readonly("path", [](const Registry& r) { return fs_str(r.path()); })
      .def("location", [](const Registry& r) { return location_dict(r.location()); })
      .def("get_dir", [](Registry& r) { return fs_str(nogil([&] { return r.get_dir(); })); })
      .def("cache_dir",
           [](Registry& r) { return cache_dir_dict(nogil([&] { return r.cache_dir(); })); })
      .def("set_dir",
           [](Registry& r, py::handle d) {
             auto p = path_arg(d);
             nogil([&] { r.set_dir(p); });
           })
      .def("unset_dir", [](Registry& r) { nogil([&] { r.unset_dir(); }); })
      .def("stored_dir", [](Registry& r) { return fs_str(nogil([&] { return r.stored_dir(); })); })
      .def("set_model_cache",
           [](Registry& r, py::handle model_name, py::handle model_path) {
             auto name = name_arg(model_name);
             auto path = path_arg(model_path);
             nogil([&] { r.set_model_cache(name, path); });
           })
      .def("clear_model_cache",
           [](Registry& r, py::handle model_name) {
             auto name = name_arg(model_name);
             return nogil([&] { return r.clear_model_cache(name); });
           })
      .def("list_cached_models",
           [](Registry& r) { return names_list(nogil([&] { return r.list_cached_models(); })); })
      .def("entries",
           [](Registry& r) {
             auto entries = nogil([&] { return r.entries(); });
             py::list out;
             for (const auto& e : entries) out.append(entry_dict(e));
             return out;
           })
      .def("entry",
           [](Registry& r, py::handle model_name) {
             auto name = name_arg(model_name);
             return entry_dict(nogil([&] { return r.entry(name); }));
           })
      .def("cached_model_path",
           [](Registry& r, py::handle model_name) {
             auto name = name_arg(model_name);
             return fs_str(nogil([&] { return r.cached_model_path(name); }));
           })
      .def("resolve",
           [](Registry& r, py::handle model_name) {
             auto name = name_arg(model_name);
             return resolution_dict(nogil([&] { return r.resolve(name); }));
           })
      .def("lock",
           [](Registry& r, py::handle model_name, const std::string& reason) {
             auto name = name_arg(model_name);
             nogil([&] { r.lock(name, reason); });
           })
      .def("unlock",
           [](Registry& r, py::handle model_name) {
             auto name = name_arg(model_name);
             return nogil([&] { return r.unlock(name); });
           })
      .def("audit",
           [](Registry& r, unsigned threads, py::handle progress, bool all_hosts) {
             return audit_dict(run_checks<tfimm::AuditReport>(progress, threads,
                                                              [&](const tfimm::AuditOptions& o) {
                                                                auto with = o;
                                                                with.all_hosts = all_hosts;
                                                                return r.audit(with);
                                                              }));
           })
      .def("check_entries",
           [](Registry& r, unsigned threads, py::handle progress) {
             return audit_items(run_checks<std::vector<tfimm::AuditItem>>(
                 progress, threads,
                 [&](const tfimm::AuditOptions& o) { return r.check_entries(o); }));
           })
      .def("prune",
           [](Registry& r, bool dry_run, double expire, unsigned threads, py::handle progress,
              bool all_hosts) {
             tfimm::PruneOptions options;
             options.dry_run = dry_run;
             options.expire = std::chrono::milliseconds(static_cast<std::int64_t>(expire * 1000));
             return prune_dict(run_checks<tfimm::PruneReport>(progress, threads,
                                                              [&](const tfimm::AuditOptions& o) {
                                                                auto with = options;
                                                                with.audit = o;
                                                                with.audit.all_hosts = all_hosts;
                                                                return r.prune(with);
                                                              }));
           })
      .def("history",
           [](Registry& r, py::handle model_name, std::size_t limit) {
             std::optional<std::string> name;
             if (!model_name.is_none()) name = name_arg(model_name);
             return history_list(nogil([&] { return r.history(name, limit); }));
           })
      .def("undo",
           [](Registry& r, std::int64_t id, bool force, bool dry_run) {
             tfimm::UndoOptions options;
             options.force = force;
             options.dry_run = dry_run;
             return undo_dict(nogil([&] { return r.undo(id, options); }));
           })
      .def("export_json",
           [](Registry& r) { return nogil([&] { return tfimm::to_json(r.snapshot()); }); })
      .def("import_json",
           [](Registry& r, const std::string& text, bool replace,
              const std::vector<std::pair<py::object, py::object>>& rewrites, bool dry_run) {
             tfimm::ImportOptions options;
             options.replace = replace;
             options.dry_run = dry_run;
             for (const auto& [from, to] : rewrites) {
               options.rewrites.emplace_back(path_arg(from), path_arg(to));
             }
             return import_dict(
                 nogil([&] { return r.import(tfimm::parse_snapshot(text), options); }));
           })
      // The operations of a `with reg.transaction()` block, all or nothing.
      .def("apply",
           [](Registry& r, py::handle ops) {
             auto all = ops_arg(ops);
             nogil([&] { r.transaction([&](tfimm::Transaction& tx) { replay(tx, all); }); });
           })
      // A read inside a block: its operations, then the read, rolled back.
      .def("read_within",
           [](Registry& r, py::handle ops, const std::string& what,
              py::handle model_name) -> py::object {
             auto all = ops_arg(ops);
             std::string name;
             if (!model_name.is_none()) name = name_arg(model_name);
             std::optional<std::string> path;
             std::vector<std::string> names;
             bool found = false;
             nogil([&] {
               try {
                 r.transaction([&](tfimm::Transaction& tx) {
                   replay(tx, all);
                   if (what == "cached_model_path") {
                     path = tx.cached_model_path(name);
                   } else if (what == "list_cached_models") {
                     names = tx.list_cached_models();
                   } else if (what == "has_entry") {
                     // Whether a clear would remove an entry: clear it
                     // inside this rolled-back replay.
                     found = tx.clear_model_cache(name);
                   }
                   throw Rollback{};
                 });
               } catch (const Rollback&) {
               }
             });
             if (what == "cached_model_path") return fs_str(path);
             if (what == "list_cached_models") return names_list(names);
             return py::bool_(found);
           });
}
