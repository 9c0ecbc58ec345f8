// The "open" figure, baseline: a fresh process opens the registry file with
// the sqlite3 C API and runs one SELECT. Same output and exit codes as
// bench_open_ours.
#include <sqlite3.h>

#include <cstdio>

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: bench_open_raw REGISTRY NAME\n");
    return 2;
  }
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(argv[1], &db, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK) {
    std::fprintf(stderr, "bench_open_raw: cannot open %s\n", argv[1]);
    sqlite3_close(db);
    return 3;
  }
  sqlite3_stmt* st = nullptr;
  int code = 3;
  if (sqlite3_prepare_v2(db, "SELECT path FROM models WHERE name = ?", -1, &st, nullptr) ==
          SQLITE_OK &&
      sqlite3_bind_text(st, 1, argv[2], -1, SQLITE_STATIC) == SQLITE_OK) {
    const int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
      std::printf("%s\n", reinterpret_cast<const char*>(sqlite3_column_text(st, 0)));
      code = 0;
    } else if (rc == SQLITE_DONE) {
      code = 1;
    }
  }
  if (code == 3) std::fprintf(stderr, "bench_open_raw: %s\n", sqlite3_errmsg(db));
  sqlite3_finalize(st);
  sqlite3_close(db);
  return code;
}
