// The "open" figure on PostgreSQL, baseline: a fresh process connects with
// raw libpq (PQconnectdb) and runs one SELECT. Same output and exit codes as
// bench_open_ours, which gets the same URL through $TFIMM_REGISTRY.
#include <libpq-fe.h>

#include <cstdio>

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: bench_open_pq URL NAME\n");
    return 2;
  }
  PGconn* conn = PQconnectdb(argv[1]);
  if (PQstatus(conn) != CONNECTION_OK) {
    std::fprintf(stderr, "bench_open_pq: %s", PQerrorMessage(conn));
    PQfinish(conn);
    return 3;
  }
  const char* values[] = {argv[2]};
  PGresult* r = PQexecParams(conn, "SELECT path FROM models WHERE name = $1::text::bytea", 1,
                             nullptr, values, nullptr, nullptr, 1);
  int code = 3;
  if (PQresultStatus(r) == PGRES_TUPLES_OK) {
    if (PQntuples(r) == 1) {
      std::fwrite(PQgetvalue(r, 0, 0), 1, static_cast<std::size_t>(PQgetlength(r, 0, 0)), stdout);
      std::fputc('\n', stdout);
      code = 0;
    } else {
      code = 1;
    }
  } else {
    std::fprintf(stderr, "bench_open_pq: %s", PQresultErrorMessage(r));
  }
  PQclear(r);
  PQfinish(conn);
  return code;
}
