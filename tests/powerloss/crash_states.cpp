#include "crash_states.hpp"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>
#include <random>
#include <stdexcept>
#include <thread>
#include <unordered_map>

namespace powerloss {

const char* to_string(Damage damage) {
  switch (damage) {
    case Damage::UnsyncedLost:
      return "unsynced data lost";
    case Damage::SubsetKept:
      return "random subset kept";
    case Damage::TornSectors:
      return "torn sectors";
    case Damage::GarbageSectors:
      return "garbage sectors, garbage -shm";
    case Damage::DirectoryLost:
      return "unsynced directory entries lost";
  }
  return "?";
}

std::string canonical_state(const std::vector<std::array<std::string, 3>>& models,
                            const std::vector<std::pair<std::string, std::string>>& settings,
                            std::int64_t last_history_id) {
  std::string s;
  for (const auto& m : models) s += "model\t" + m[0] + "\t" + m[1] + "\t" + m[2] + "\n";
  for (const auto& [key, value] : settings) s += "setting\t" + key + "\t" + value + "\n";
  return s + "history\t" + std::to_string(last_history_id) + "\n";
}

std::uint64_t state_hash(const std::string& canonical) {
  std::uint64_t h = 1469598103934665603ull;  // FNV-1a
  for (const char c : canonical) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ull;
  return h;
}

std::size_t CheckResult::total(const std::array<std::size_t, kDamageModels>& a) const {
  std::size_t n = 0;
  for (const auto v : a) n += v;
  return n;
}

namespace {

using Bytes = std::vector<unsigned char>;

std::uint64_t mix(std::uint64_t a, std::uint64_t b) {
  std::uint64_t x = a ^ (b + 0x9E3779B97F4A7C15ull + (a << 6) + (a >> 2));
  x ^= x >> 31;
  x *= 0xBF58476D1CE4E5B9ull;
  return x ^ (x >> 29);
}

// A small fast generator (splitmix64): every image draws one number per
// sector and one per 8 bytes of garbage.
struct Rng {
  std::uint64_t state;
  std::uint64_t operator()() {
    std::uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  void fill(unsigned char* p, std::size_t n) {
    for (std::size_t i = 0; i < n; i += 8) {
      const std::uint64_t r = (*this)();
      std::memcpy(p + i, &r, std::min<std::size_t>(8, n - i));
    }
  }
};

// The disk as a power loss would find it, kept up to date op by op.
struct Disk {
  std::vector<Bytes> synced;             // per inode
  std::vector<std::uint64_t> synced_id;  // per inode: names `synced` exactly
  std::uint64_t next_id = 1;
  std::vector<std::vector<std::size_t>> pending;      // per inode: unsynced op indexes
  std::map<std::uint32_t, std::uint32_t> current;     // name -> inode
  std::map<std::uint32_t, std::uint32_t> dir_synced;  // as of the last directory sync
  std::vector<std::int64_t> started;                  // per group (thread): calls begun
  std::vector<std::int64_t> acked;                    // per group: calls acknowledged

  static void write(Bytes& content, std::int64_t offset, const unsigned char* data,
                    std::size_t length) {
    const auto end = static_cast<std::size_t>(offset) + length;
    if (content.size() < end) content.resize(end, 0);
    std::memcpy(content.data() + offset, data, length);
  }

  static void apply(const Log& log, const Op& op, Bytes& content) {
    if (op.kind == OpKind::Write) {
      write(content, op.offset, log.bytes.data() + op.data, op.length);
    } else {
      content.resize(static_cast<std::size_t>(op.offset), 0);
    }
  }

  void grow(std::size_t group) {
    if (started.size() <= group) {
      started.resize(group + 1, 0);
      acked.resize(group + 1, 0);
    }
  }

  void step(const Log& log, std::size_t i) {
    const Op& op = log.ops[i];
    switch (op.kind) {
      case OpKind::Write:
      case OpKind::Truncate:
        pending[op.file].push_back(i);
        break;
      case OpKind::Sync:
        if (!pending[op.file].empty()) synced_id[op.file] = next_id++;
        for (const auto j : pending[op.file]) apply(log, log.ops[j], synced[op.file]);
        pending[op.file].clear();
        break;
      case OpKind::Create:
        if (synced.size() <= op.file) {
          synced.resize(op.file + 1);
          pending.resize(op.file + 1);
          synced_id.resize(op.file + 1);
        }
        synced_id[op.file] = next_id++;
        current[op.name] = op.file;
        break;
      case OpKind::Delete:
        current.erase(op.name);
        break;
      case OpKind::DirSync:
        dir_synced = current;
        break;
      case OpKind::Begin:
        grow(op.file);
        started[op.file] = std::max(started[op.file], op.offset);
        break;
      case OpKind::Ack:
        grow(op.file);
        acked[op.file] = std::max(acked[op.file], op.offset);
        break;
    }
  }

  // What an image under `damage` is made of: per file, its synced content
  // and the pieces of unsynced writes that reached the disk (new bytes or
  // garbage). Its key names it exactly, so that an image met again (the
  // same synced contents, the same pieces) need not be opened twice.
  struct Piece {
    std::size_t op;
    std::int64_t from, to;  // bytes of the write; a truncate: whole
    std::uint64_t garbage;  // 0: the written bytes; else garbage from this seed
  };
  struct Plan {
    std::vector<std::pair<std::uint32_t, std::uint32_t>> files;  // name, inode
    std::vector<std::vector<Piece>> pieces;
    bool garbage_shm = false;
    std::uint64_t key = 0;
  };

  Plan plan(const Log& log, Damage damage, Rng& rng) const {
    Plan p;
    p.garbage_shm = damage == Damage::GarbageSectors;
    std::uint64_t key = mix(static_cast<std::uint64_t>(p.garbage_shm), 0x5EED);
    const auto& names = damage == Damage::DirectoryLost ? dir_synced : current;
    for (const auto& [name, inode] : names) {
      p.files.emplace_back(name, inode);
      auto& pieces = p.pieces.emplace_back();
      key = mix(mix(key, name), synced_id[inode]);
      for (const auto j : pending[inode]) {
        const Op& op = log.ops[j];
        const std::int64_t end = op.offset + op.length;
        switch (damage) {
          case Damage::UnsyncedLost:
          case Damage::DirectoryLost:
            break;
          case Damage::SubsetKept:
            if (rng() & 1) pieces.push_back({j, op.offset, end, 0});
            break;
          case Damage::TornSectors:
          case Damage::GarbageSectors:
            if (op.kind == OpKind::Truncate) {
              if (rng() & 1) pieces.push_back({j, op.offset, end, 0});
              break;
            }
            // Each 512-byte sector the write touches, on its own.
            for (std::int64_t at = op.offset; at < end;) {
              const std::int64_t to = std::min<std::int64_t>((at / 512 + 1) * 512, end);
              const auto choice = rng() % (damage == Damage::TornSectors ? 2 : 3);
              if (choice == 1) pieces.push_back({j, at, to, 0});
              if (choice == 2) pieces.push_back({j, at, to, rng() | 1});
              at = to;
            }
            break;
        }
      }
      for (const auto& piece : pieces) {
        key = mix(mix(mix(mix(key, piece.op), static_cast<std::uint64_t>(piece.from)),
                      static_cast<std::uint64_t>(piece.to)),
                  piece.garbage);
      }
    }
    p.key = key;
    return p;
  }

  // The files (base name -> content) of a plan.
  std::map<std::string, Bytes> image(const Log& log, const Plan& p) const {
    std::map<std::string, Bytes> files;
    for (std::size_t f = 0; f < p.files.size(); ++f) {
      Bytes content = synced[p.files[f].second];
      for (const auto& piece : p.pieces[f]) {
        const Op& op = log.ops[piece.op];
        if (op.kind == OpKind::Truncate) {
          apply(log, op, content);
        } else if (piece.garbage == 0) {
          write(content, piece.from, log.bytes.data() + op.data + (piece.from - op.offset),
                static_cast<std::size_t>(piece.to - piece.from));
        } else {
          Bytes garbage(static_cast<std::size_t>(piece.to - piece.from));
          Rng{piece.garbage}.fill(garbage.data(), garbage.size());
          write(content, piece.from, garbage.data(), garbage.size());
        }
      }
      files[log.names[p.files[f].first]] = std::move(content);
    }
    return files;
  }
};

void write_file(const std::string& path, const Bytes& content) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw std::runtime_error("cannot write " + path);
  std::size_t done = 0;
  while (done < content.size()) {
    const auto n = ::write(fd, content.data() + done, content.size() - done);
    if (n <= 0) {
      ::close(fd);
      throw std::runtime_error("cannot write " + path);
    }
    done += static_cast<std::size_t>(n);
  }
  ::close(fd);
}

// What an image holds, as the tests compare it.
struct ImageState {
  std::vector<std::array<std::string, 3>> models;  // sorted by name
  std::vector<std::pair<std::string, std::string>> settings;
  std::int64_t last_history_id = 0;
};

// Opens the image with the plain unix VFS: integrity_check, then the state.
// Returns nullopt with `problem` set when it cannot be read.
std::optional<ImageState> read_image(const std::string& db_path, bool exists,
                                     std::string* problem) {
  if (!exists) return ImageState{};  // no registry yet
  sqlite3* db = nullptr;
  struct Close {
    sqlite3*& db;
    ~Close() { sqlite3_close_v2(db); }
  } close{db};
  if (sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READWRITE, "unix") != SQLITE_OK) {
    *problem = std::string("open: ") + (db ? sqlite3_errmsg(db) : "out of memory");
    return std::nullopt;
  }
  // Looking must not change the image's files more than recovery does.
  sqlite3_db_config(db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, nullptr);
  auto rows = [&](const char* sql, int columns, std::vector<std::vector<std::string>>* out) {
    sqlite3_stmt* st = nullptr;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, nullptr);
    if (rc == SQLITE_OK) rc = SQLITE_ROW;
    while (rc == SQLITE_ROW && (rc = sqlite3_step(st)) == SQLITE_ROW) {
      std::vector<std::string> row;
      for (int c = 0; c < columns; ++c) {
        const auto* text = sqlite3_column_text(st, c);
        row.emplace_back(text ? reinterpret_cast<const char*>(text) : "NULL");
      }
      out->push_back(std::move(row));
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
      *problem = std::string(sql) + ": " + sqlite3_errmsg(db);
      return false;
    }
    return true;
  };
  std::vector<std::vector<std::string>> check, tables, models, settings, history;
  if (!rows("PRAGMA integrity_check", 1, &check)) return std::nullopt;
  if (check.size() != 1 || check[0][0] != "ok") {
    *problem = "integrity_check: " + (check.empty() ? std::string("no answer") : check[0][0]);
    return std::nullopt;
  }
  if (!rows("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'history'", 1,
            &tables)) {
    return std::nullopt;
  }
  if (tables.empty()) {
    // Before the schema's second migration committed: no change can be in.
    std::vector<std::vector<std::string>> any;
    if (rows("SELECT name FROM sqlite_master WHERE name = 'models'", 1, &any) && !any.empty() &&
        rows("SELECT name FROM models", 1, &models) && !models.empty()) {
      *problem = "entries in a registry whose schema is not complete";
      return std::nullopt;
    }
    return ImageState{};
  }
  if (!rows("SELECT name, path, locked FROM models ORDER BY name", 3, &models) ||
      !rows("SELECT key, value FROM settings ORDER BY key", 2, &settings) ||
      !rows("SELECT coalesce(max(id), 0) FROM history", 1, &history)) {
    return std::nullopt;
  }
  ImageState state;
  for (auto& r : models) state.models.push_back({r[0], r[1], r[2]});
  for (auto& r : settings) state.settings.emplace_back(r[0], r[1]);
  state.last_history_id = std::stoll(history[0][0]);
  return state;
}

// The state hash of each group: the whole registry when there is one
// group; else, for group g, the entries named "t<g>_..." (threads that each
// own their names).
std::vector<std::uint64_t> group_hashes(const ImageState& state, std::size_t groups) {
  if (groups <= 1) {
    return {state_hash(canonical_state(state.models, state.settings, state.last_history_id))};
  }
  std::vector<std::vector<std::array<std::string, 3>>> models(groups);
  for (const auto& m : state.models) {
    const auto g = static_cast<std::size_t>(std::atoi(m[0].c_str() + 1));
    if (m[0].size() > 1 && m[0][0] == 't' && g < groups) models[g].push_back(m);
  }
  std::vector<std::uint64_t> hashes;
  for (const auto& group : models) hashes.push_back(state_hash(canonical_state(group, {}, 0)));
  return hashes;
}

// A file as the checker last wrote it.
struct Written {
  Bytes content;
  struct stat st;
  bool unchanged(const std::string& path) const {
    struct stat now {};
    return ::stat(path.c_str(), &now) == 0 && now.st_ino == st.st_ino &&
           now.st_size == st.st_size && now.st_mtim.tv_sec == st.st_mtim.tv_sec &&
           now.st_mtim.tv_nsec == st.st_mtim.tv_nsec;
  }
};

// The ops a power loss is cut just before: every sync, directory sync,
// delete and acknowledgement, a sample of the rest, and the end.
std::vector<std::size_t> cut_points(const Log& log, const CheckOptions& options) {
  std::vector<std::size_t> cuts;
  std::mt19937_64 rng(mix(options.seed, 0xC075));
  std::uniform_real_distribution<double> coin(0.0, 1.0);
  for (std::size_t i = 0; i < log.ops.size(); ++i) {
    switch (log.ops[i].kind) {
      case OpKind::Sync:
      case OpKind::DirSync:
      case OpKind::Delete:
      case OpKind::Ack:
        cuts.push_back(i);
        break;
      default:
        if (coin(rng) < options.other_cut_rate) cuts.push_back(i);
    }
  }
  cuts.push_back(log.ops.size());
  return cuts;
}

}  // namespace

CheckResult check_crash_states(const Log& log,
                               const std::vector<std::vector<std::uint64_t>>& expected,
                               const CheckOptions& options) {
  // Per group: state -> calls done.
  std::vector<std::unordered_multimap<std::uint64_t, std::int64_t>> call_of(expected.size());
  for (std::size_t g = 0; g < expected.size(); ++g) {
    for (std::size_t k = 0; k < expected[g].size(); ++k) {
      call_of[g].emplace(expected[g][k], static_cast<std::int64_t>(k));
    }
  }
  std::vector<std::size_t> cuts;
  if (options.only) {
    cuts.push_back(options.only->cut);
  } else {
    cuts = cut_points(log, options);
  }
  CheckResult result;
  result.cuts = cuts.size();
  std::mutex mutex;
  const std::string registry = options.registry;
  auto worker = [&](unsigned t, unsigned threads) {
    const std::string dir = options.scratch + "/image-" + std::to_string(t);
    std::filesystem::create_directories(dir);
    CheckResult mine;
    Disk disk;
    std::map<std::string, std::optional<Written>> on_disk;
    // What each image opened so far held, by its plan's key.
    struct Outcome {
      std::optional<std::vector<std::uint64_t>> state;  // per group
      std::string problem;
    };
    std::unordered_map<std::uint64_t, Outcome> seen;
    std::size_t next = 0;
    for (std::size_t c = t; c < cuts.size(); c += threads) {
      for (; next < cuts[c]; ++next) disk.step(log, next);
      for (std::size_t model = 0; model < kDamageModels; ++model) {
        const auto damage = static_cast<Damage>(model);
        const bool random = damage == Damage::SubsetKept || damage == Damage::TornSectors ||
                            damage == Damage::GarbageSectors;
        const int variants = random ? options.variants : 1;
        for (int v = 0; v < variants; ++v) {
          if (options.only && (options.only->damage != damage || options.only->variant != v)) {
            continue;
          }
          Rng rng{mix(mix(options.seed, cuts[c]), model * 1000 + static_cast<std::uint64_t>(v))};
          const auto plan = disk.plan(log, damage, rng);
          auto known = seen.find(plan.key);
          if (known == seen.end()) {
            const auto files = disk.image(log, plan);
            for (const auto& name : log.names) {
              const auto found = files.find(name);
              // A file equal to the last one written here, and not changed
              // since (reading a WAL image changes neither file; rolling
              // back a hot journal does), is left as it is.
              const std::string path = dir + "/" + name;
              auto& last = on_disk[name];
              if (found == files.end()) {
                ::unlink(path.c_str());
                last.reset();
              } else if (!last || last->content != found->second || !last->unchanged(path)) {
                write_file(path, found->second);
                last = Written{found->second, {}};
                ::stat(path.c_str(), &last->st);
              }
            }
            const std::string shm = dir + "/" + registry + "-shm";
            if (plan.garbage_shm) {
              Bytes garbage(32768);
              rng.fill(garbage.data(), garbage.size());
              write_file(shm, garbage);
            } else {
              ::unlink(shm.c_str());
            }
            Outcome outcome;
            const auto state =
                read_image(dir + "/" + registry, files.count(registry) != 0, &outcome.problem);
            if (state) outcome.state = group_hashes(*state, expected.size());
            known = seen.emplace(plan.key, std::move(outcome)).first;
            ++mine.opened;
          }
          const auto& state = known->second.state;
          const auto& problem = known->second.problem;
          ++mine.checked[model];
          std::string verdict;
          if (!state) {
            ++mine.corrupt[model];
            verdict = "corrupt: " + problem;
          } else {
            disk.grow(expected.size() - 1);
            bool any_lost = false;
            for (std::size_t g = 0; g < expected.size() && verdict.empty(); ++g) {
              bool ok = false;
              bool earlier = false;
              for (auto [it, end] = call_of[g].equal_range((*state)[g]); it != end; ++it) {
                if (it->second >= disk.acked[g] && it->second <= disk.started[g]) ok = true;
                if (it->second < disk.acked[g]) earlier = true;
              }
              const std::string who = expected.size() > 1 ? " of thread " + std::to_string(g) : "";
              if (!ok && earlier) {
                any_lost = true;
                verdict = "lost: the state after fewer calls" + who + " than the " +
                          std::to_string(disk.acked[g]) + " acknowledged";
              } else if (!ok) {
                verdict = "phantom: a state after no prefix of the " +
                          std::to_string(disk.started[g]) + " started calls" + who;
              }
            }
            if (any_lost) {
              ++mine.lost[model];
            } else if (!verdict.empty()) {
              ++mine.phantom[model];
            }
          }
          if (!verdict.empty() && (mine.failures.size() < 5 || options.only)) {
            Failure f{cuts[c], damage, v, verdict, ""};
            if (!options.failure_dir.empty()) {
              f.kept = options.failure_dir + "/cut-" + std::to_string(cuts[c]) + "-model-" +
                       std::to_string(model) + "-variant-" + std::to_string(v);
              std::filesystem::create_directories(f.kept);
              for (const auto& [name, content] : disk.image(log, plan)) {
                write_file(f.kept + "/" + name, content);
              }
            }
            mine.failures.push_back(f);
          }
        }
      }
    }
    std::lock_guard<std::mutex> lock(mutex);
    for (std::size_t m = 0; m < kDamageModels; ++m) {
      result.checked[m] += mine.checked[m];
      result.lost[m] += mine.lost[m];
      result.corrupt[m] += mine.corrupt[m];
      result.phantom[m] += mine.phantom[m];
    }
    result.opened += mine.opened;
    for (auto& f : mine.failures) {
      if (result.failures.size() < 10) result.failures.push_back(std::move(f));
    }
  };
  const unsigned threads = options.only ? 1 : std::max(1u, options.threads);
  std::vector<std::thread> pool;
  for (unsigned t = 0; t < threads; ++t) pool.emplace_back(worker, t, threads);
  for (auto& th : pool) th.join();
  return result;
}

}  // namespace powerloss
