// One registry shared by several hosts: a path on a host's own file system
// is judged only by that host. The other hosts are this machine in new UTS
// (host name) and mount namespaces (unshare -u -m), sharing the registry.
#include <unistd.h>

#include <catch2/catch.hpp>

#include "tool_test.hpp"

using tfimm::tooltest::Tool;

namespace {

// Whether this process may make namespaces (root, or a kernel that allows
// it): the tests below need them.
bool namespaces_work() {
  static const bool works =
      tfimm::test::run_process({"unshare", "-u", "-m", "true"}).exit_code == 0;
  return works;
}

// `script` (sh) run as host `host`, in mount and UTS namespaces of its own;
// `t ARGS` in it runs the tool on the test's registry. What it printed.
tfimm::test::ProcessResult as_host(const Tool& tool, const std::string& host,
                                   const std::string& script,
                                   const tfimm::tooltest::Env& env = {}) {
  auto full_env = env;
  full_env["HOME"] = tool.home();
  full_env["TOOL"] = TFIMM_TOOL;
  full_env["REGISTRY"] = tool.registry();
  const std::string prelude =
      "t() { \"$TOOL\" --registry \"$REGISTRY\" \"$@\"; }; hostname \"$0\" && ";
  return tfimm::test::run_process({"unshare", "-u", "-m", "sh", "-c", prelude + script, host}, "",
                                  full_env);
}

nlohmann::json entry_named(const nlohmann::json& list, const std::string& name) {
  for (const auto& item : list) {
    if (item.at("name") == name) return item;
  }
  FAIL("no entry " << name);
  return {};
}

std::string this_host() {
  char host[256] = {};
  REQUIRE(::gethostname(host, sizeof host - 1) == 0);
  return host;
}

}  // namespace

TEST_CASE(
    "a path on a local file system is local to the host that registered it, one on a network file "
    "system to none",
    "[hosts][conformance]") {
  Tool tool;
  tool.ok({"set", "here", tool.make_dir("models/here")});
  auto r =
      tool.run({"set", "shared", tool.make_dir("models/shared")}, "", {{"TFIMM_NETWORK_FS", "1"}});
  REQUIRE(r.exit_code == 0);
  tool.ok(
      {"import", "-"},
      R"({"format": "tfimm-cache-export", "version": 1, "models": [{"name": "imported", "path": ")" +
          tool.path("models/imported") + R"("}]})");
  const auto list = tool.json({"list", "--json"});
  CHECK(entry_named(list, "here").at("local_to") == this_host());
  CHECK(entry_named(list, "imported").at("local_to") == this_host());
  CHECK(entry_named(list, "shared").at("local_to") == "");
  // Registered again from a network file system: local to no host any more.
  r = tool.run({"set", "here", tool.path("models/here")}, "", {{"TFIMM_NETWORK_FS", "1"}});
  REQUIRE(r.exit_code == 0);
  CHECK(entry_named(tool.json({"list", "--json"}), "here").at("local_to") == "");
}

TEST_CASE("audit and prune leave alone a path local to another host; that host judges it",
          "[hosts][conformance]") {
  if (!namespaces_work()) {
    WARN("skipped: cannot make UTS and mount namespaces here (unshare -u -m)");
    return;
  }
  Tool tool;
  const std::string gone = tool.path("nowhere/model");  // absent on every host
  // Host node-b registers a path on its own disk, and one on a network share.
  auto r = as_host(tool, "node-b", "t set local-b '" + gone + "'");
  REQUIRE(r.exit_code == 0);
  r = as_host(tool, "node-b", "t set shared-b '" + gone + "-shared'", {{"TFIMM_NETWORK_FS", "1"}});
  REQUIRE(r.exit_code == 0);

  // Here: not checked, not stale, not forgotten, and said so.
  auto audit = tool.json({"audit", "--json"}, 1);  // shared-b is stale
  CHECK(entry_named(audit, "local-b").at("status") == "other_host");
  CHECK(entry_named(audit, "local-b").at("local_to") == "node-b");
  CHECK(entry_named(audit, "local-b").at("missing_since").is_null());
  CHECK(entry_named(audit, "shared-b").at("status") == "missing");
  auto text = tool.run({"audit"});
  CHECK(text.out.find("local to host node-b") != std::string::npos);
  CHECK(text.out.find("1 other_host") != std::string::npos);
  auto list = tool.json({"list", "--json"});
  CHECK(entry_named(list, "local-b").at("exists").is_null());

  auto dry = tool.run({"prune", "--dry-run"});
  CHECK(dry.exit_code == 0);
  CHECK(dry.out.find("kept (other host)") != std::string::npos);
  CHECK(dry.out.find("1 local to other hosts, not checked") != std::string::npos);
  tool.ok({"prune"});
  list = tool.json({"list", "--json"});
  REQUIRE(list.size() == 1);
  CHECK(list[0].at("name") == "local-b");

  // On node-b the path is judged: missing, and prune forgets it.
  r = as_host(tool, "node-b", "t audit --json");
  CHECK(r.exit_code == 1);
  CHECK(entry_named(nlohmann::json::parse(r.out), "local-b").at("status") == "missing");
  r = as_host(tool, "node-b", "t prune");
  REQUIRE(r.exit_code == 0);
  CHECK(tool.json({"list", "--json"}).empty());
}

TEST_CASE("audit --all-hosts and prune --all-hosts judge paths local to other hosts too",
          "[hosts][conformance]") {
  if (!namespaces_work()) {
    WARN("skipped: cannot make UTS and mount namespaces here (unshare -u -m)");
    return;
  }
  Tool tool;
  auto r = as_host(tool, "node-b", "t set local-b '" + tool.path("nowhere/model") + "'");
  REQUIRE(r.exit_code == 0);
  auto audit = tool.json({"audit", "--json", "--all-hosts"}, 1);
  CHECK(entry_named(audit, "local-b").at("status") == "missing");
  tool.ok({"prune", "--all-hosts"});
  CHECK(tool.json({"list", "--json"}).empty());
}

TEST_CASE(
    "two hosts with their own disks at one path each keep the other's entry when they audit and "
    "prune",
    "[hosts][conformance]") {
  if (!namespaces_work()) {
    WARN("skipped: cannot make UTS and mount namespaces here (unshare -u -m)");
    return;
  }
  Tool tool;
  const std::string disk = tool.make_dir("scratch");
  // Each host mounts its own disk (a tmpfs) at the same path; what one host
  // puts there the other cannot see.
  const std::string mount = "mount -t tmpfs none '" + disk + "' && ";
  auto r = as_host(tool, "node-a",
                   mount + "mkdir '" + disk + "/a' && t set a '" + disk + "/a' && t audit");
  INFO(r.out << r.err);
  REQUIRE(r.exit_code == 0);
  const std::string seen = tool.path("seen.json");
  r = as_host(tool, "node-b",
              mount + "mkdir '" + disk + "/b' && t set b '" + disk + "/b' && t audit --json > '" +
                  seen + "' && t prune");
  INFO(r.out << r.err);
  REQUIRE(r.exit_code == 0);
  const auto seen_by_b = nlohmann::json::parse(tfimm::test::read_file(seen));
  CHECK(entry_named(seen_by_b, "a").at("status") == "other_host");
  CHECK(entry_named(seen_by_b, "b").at("status") == "ok");
  // node-a again, its disk still holding a: both entries stand.
  r = as_host(tool, "node-a",
              mount + "mkdir '" + disk + "/a' && t prune && t audit --json > '" + seen + "'");
  INFO(r.out << r.err);
  REQUIRE(r.exit_code == 0);
  const auto seen_by_a = nlohmann::json::parse(tfimm::test::read_file(seen));
  CHECK(entry_named(seen_by_a, "a").at("status") == "ok");
  CHECK(entry_named(seen_by_a, "b").at("status") == "other_host");
  CHECK(tool.json({"list", "--json"}).size() == 2);
}

TEST_CASE("du leaves out a path local to another host, unless --all-hosts",
          "[hosts][du][conformance]") {
  if (!namespaces_work()) {
    WARN("skipped: cannot make UTS and mount namespaces here (unshare -u -m)");
    return;
  }
  Tool tool;
  // The same path holds a model here too: another disk, not node-b's.
  const std::string here = tool.make_dir("scratch/model");
  tfimm::test::write_file(here + "/weights.bin", std::string(10000, 'x'));
  auto r = as_host(tool, "node-b", "t set theirs '" + here + "'");
  REQUIRE(r.exit_code == 0);
  const auto du = tool.json({"du", "--json"});
  REQUIRE(du.at("models").size() == 1);
  CHECK(du["models"][0].at("status") == "other_host");
  CHECK(du["models"][0].at("files") == 0);
  CHECK(du.at("total").at("files") == 0);
  CHECK(du.at("complete") == true);
  auto text = tool.run({"du"});
  CHECK(text.exit_code == 0);
  CHECK(text.out.find("1 other_host") != std::string::npos);
  const auto all = tool.json({"du", "--json", "--all-hosts"});
  CHECK(all["models"][0].at("status") == "ok");
  CHECK(all["models"][0].at("files") == 1);
}

TEST_CASE("an export keeps which host each path is local to, and an import restores it",
          "[hosts][transfer][conformance]") {
  Tool tool;
  tool.ok({"set", "here", tool.make_dir("models/here")});
  auto r =
      tool.run({"set", "shared", tool.make_dir("models/shared")}, "", {{"TFIMM_NETWORK_FS", "1"}});
  REQUIRE(r.exit_code == 0);
  const std::string backup = tool.ok({"export", "-"});
  CHECK(backup.find("\"local_to\": \"\"") != std::string::npos);

  Tool fresh;
  fresh.ok({"import", "-"}, backup);
  CHECK(fresh.json({"list", "--json"}) == tool.json({"list", "--json"}));
  // A file from before hosts were recorded (version 1): the import decides.
  fresh.ok(
      {"import", "-"},
      R"({"format": "tfimm-cache-export", "version": 1, "models": [{"name": "old", "path": ")" +
          tool.path("models/old") + R"("}]})");
  CHECK(entry_named(fresh.json({"list", "--json"}), "old").at("local_to") == this_host());
}
