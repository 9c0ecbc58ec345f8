// JSON export and import of a registry's contents.
#include "tfimm/transfer.hpp"

#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "fs.hpp"
#include "quote.hpp"
#include "registry_impl.hpp"
#include "tfimm/names.hpp"
#include "tfimm/paths.hpp"

namespace tfimm {
namespace {

using json = nlohmann::json;
using Lock = std::lock_guard<std::recursive_mutex>;

constexpr const char* kFormatName = "tfimm-cache-export";

std::string record_label(std::size_t index, const std::string& name) {
  return "models[" + std::to_string(index) + "]" +
         (name.empty() ? std::string() : " (" + detail::quote(name) + ")");
}

// Checks one record; throws InvalidInput naming it.
Snapshot::Model checked(Snapshot::Model model, std::size_t index) {
  if (auto problem = name_problem(model.name)) {
    throw InvalidInput(record_label(index, model.name) + ": invalid name: " + *problem);
  }
  try {
    model.path = normalize_path(model.path);
  } catch (const InvalidPath& e) {
    throw InvalidInput(record_label(index, model.name) + ": " + e.what());
  }
  return model;
}

bool has_prefix(const std::string& path, const std::string& prefix) {
  if (prefix == "/") return true;
  return path == prefix ||
         (path.size() > prefix.size() && path.compare(0, prefix.size(), prefix) == 0 &&
          path[prefix.size()] == '/');
}

std::string rewrite(const std::string& path,
                    const std::vector<std::pair<std::string, std::string>>& rewrites) {
  for (const auto& [from, to] : rewrites) {
    if (has_prefix(path, from)) {
      return from == "/" ? lexically_normal(to + path)
                         : lexically_normal(to + path.substr(from.size()));
    }
  }
  return path;
}

}  // namespace

std::string to_json(const Snapshot& snapshot) {
  json doc;
  doc["format"] = kFormatName;
  doc["version"] = kExportFormatVersion;
  doc["cache_dir"] = snapshot.cache_dir ? json(*snapshot.cache_dir) : json(nullptr);
  doc["models"] = json::array();
  std::vector<const Snapshot::Model*> sorted;
  for (const auto& m : snapshot.models) sorted.push_back(&m);
  std::sort(sorted.begin(), sorted.end(),
            [](const auto* a, const auto* b) { return a->name < b->name; });
  for (const auto* m : sorted) {
    doc["models"].push_back({{"name", m->name},
                             {"path", m->path},
                             {"locked", m->locked},
                             {"lock_reason", m->lock_reason}});
  }
  // Names and paths need not be valid UTF-8 on every system; replace rather
  // than throw so that an export never fails.
  return doc.dump(2, ' ', false, json::error_handler_t::replace) + "\n";
}

Snapshot parse_snapshot(std::string_view text) {
  json doc;
  try {
    doc = json::parse(text.begin(), text.end());
  } catch (const json::parse_error& e) {
    throw InvalidInput(std::string("not a JSON document: ") + e.what());
  }
  if (!doc.is_object()) throw InvalidInput("an export file must be a JSON object");
  const auto format = doc.find("format");
  if (format == doc.end() || !format->is_string() || *format != kFormatName) {
    throw InvalidInput(std::string("not a tfimm-cache export: \"format\" must be \"") +
                       kFormatName + "\"");
  }
  const auto version = doc.find("version");
  if (version == doc.end() || !version->is_number_integer()) {
    throw InvalidInput("\"version\" must be an integer");
  }
  if (*version != kExportFormatVersion) {
    throw InvalidInput("export format version " + version->dump() + " is not supported; this " +
                       "build reads version " + std::to_string(kExportFormatVersion));
  }
  Snapshot snapshot;
  if (const auto dir = doc.find("cache_dir"); dir != doc.end() && !dir->is_null()) {
    if (!dir->is_string()) throw InvalidInput("\"cache_dir\" must be a string or null");
    try {
      snapshot.cache_dir = normalize_path(dir->get<std::string>());
    } catch (const InvalidPath& e) {
      throw InvalidInput(std::string("\"cache_dir\": ") + e.what());
    }
  }
  const auto models = doc.find("models");
  if (models == doc.end() || !models->is_array()) {
    throw InvalidInput("\"models\" must be an array");
  }
  std::set<std::string> seen;
  for (std::size_t i = 0; i < models->size(); ++i) {
    const auto& record = (*models)[i];
    if (!record.is_object()) throw InvalidInput(record_label(i, "") + " must be an object");
    Snapshot::Model model;
    const auto field = [&](const char* key) -> const json* {
      auto it = record.find(key);
      return it == record.end() ? nullptr : &*it;
    };
    const json* name = field("name");
    if (name == nullptr || !name->is_string()) {
      throw InvalidInput(record_label(i, "") + ": \"name\" must be a string");
    }
    model.name = name->get<std::string>();
    const json* path = field("path");
    if (path == nullptr || !path->is_string()) {
      throw InvalidInput(record_label(i, model.name) + ": \"path\" must be a string");
    }
    model.path = path->get<std::string>();
    if (const json* locked = field("locked")) {
      if (!locked->is_boolean()) {
        throw InvalidInput(record_label(i, model.name) + ": \"locked\" must be true or false");
      }
      model.locked = locked->get<bool>();
    }
    if (const json* reason = field("lock_reason")) {
      if (!reason->is_string()) {
        throw InvalidInput(record_label(i, model.name) + ": \"lock_reason\" must be a string");
      }
      model.lock_reason = reason->get<std::string>();
    }
    model = checked(std::move(model), i);
    if (!seen.insert(model.name).second) {
      throw InvalidInput(record_label(i, model.name) + ": the name appears more than once");
    }
    snapshot.models.push_back(std::move(model));
  }
  return snapshot;
}

Snapshot Registry::snapshot() {
  Lock lock(impl_->mutex);
  Snapshot snap;
  impl_->store.read([&] {
    for (auto& e : impl_->store.models()) {
      snap.models.push_back({std::move(e.name), std::move(e.path), e.locked, e.lock_reason});
    }
    snap.cache_dir = impl_->store.setting(detail::kCacheDirKey);
  });
  return snap;
}

ImportReport Registry::import(const Snapshot& snapshot, const ImportOptions& options) {
  // Check everything before changing anything.
  std::vector<std::pair<std::string, std::string>> rewrites;
  for (const auto& [from, to] : options.rewrites) {
    try {
      rewrites.emplace_back(normalize_path(from), normalize_path(to));
    } catch (const InvalidPath& e) {
      throw InvalidInput(std::string("invalid rewrite: ") + e.what());
    }
  }
  std::vector<Snapshot::Model> models;
  std::set<std::string> names;
  for (std::size_t i = 0; i < snapshot.models.size(); ++i) {
    auto model = checked(snapshot.models[i], i);
    model.path = rewrite(model.path, rewrites);
    if (!names.insert(model.name).second) {
      throw InvalidInput(record_label(i, model.name) + ": the name appears more than once");
    }
    models.push_back(std::move(model));
  }
  std::optional<std::string> cache_dir;
  if (snapshot.cache_dir) cache_dir = rewrite(normalize_path(*snapshot.cache_dir), rewrites);

  Lock lock(impl_->mutex);
  ImportReport report;
  auto& store = impl_->store;
  store.write(
      [&] {
        const auto now = detail::now_ms();
        std::map<std::string, Entry> existing;
        for (auto& e : store.models()) existing.emplace(e.name, std::move(e));
        for (const auto& m : models) {
          auto it = existing.find(m.name);
          const bool same_path = it != existing.end() && it->second.path == m.path;
          if (!same_path) {
            store.upsert_model(m.name, m.path, now);
            store.add_history(
                "import", m.name,
                it == existing.end() ? std::nullopt : std::optional<std::string>(it->second.path),
                m.path, now);
            ++(it == existing.end() ? report.added : report.changed);
          } else {
            ++report.unchanged;
          }
          const bool was_locked = it != existing.end() && it->second.locked;
          const bool lock_it = m.locked || (was_locked && !options.replace);
          if (lock_it != was_locked ||
              (lock_it && m.locked && it->second.lock_reason != m.lock_reason)) {
            store.set_lock(m.name, lock_it, lock_it && m.locked ? m.lock_reason : "");
          }
        }
        if (options.replace) {
          for (const auto& [name, e] : existing) {
            if (names.count(name) != 0) continue;
            store.delete_model(name);
            store.add_history("import", name, e.path, std::nullopt, now);
            ++report.removed;
          }
        }
        const auto current_dir = store.setting(detail::kCacheDirKey);
        if (cache_dir && cache_dir != current_dir) {
          impl_->set_dir(*cache_dir);
          report.cache_dir_changed = true;
        } else if (!cache_dir && options.replace && current_dir) {
          impl_->unset_dir();
          report.cache_dir_changed = true;
        }
      },
      !options.dry_run);
  return report;
}

}  // namespace tfimm
