// Writes the planted-file fuzz seeds: real meshd databases at the latest
// schema (with a row in every table), at schema 1 and 0, another
// application's SQLite file and a file that is not SQLite. Pages are shrunk
// to 512 bytes so the seeds stay small and mutations reach every page.
//   store_fuzz_seeds OUTDIR
#include "keys/identity.h"
#include "keys/token.h"
#include "keys/wg_key.h"
#include "store/cluster.h"
#include "store/database.h"
#include "store/events.h"
#include "store/local_node.h"
#include "store/records.h"
#include "store/tokens.h"

#include <SQLiteCpp/Database.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

using namespace meshd;
using namespace meshd::store;

namespace {

void shrink(const std::string& path) {
  SQLite::Database raw(path, SQLite::OPEN_READWRITE);
  raw.exec("PRAGMA journal_mode = DELETE");
  raw.exec("PRAGMA page_size = 512");
  raw.exec("VACUUM");
  raw.exec("PRAGMA journal_mode = WAL");
}

void full(const std::string& path) {
  Database db(DatabaseOptions{.path = path});
  ClusterInfo cluster{"c-seed", IpPrefix::parse("10.244.0.0/16").value(), 24, 1700000000};
  cluster.founder.fill(9);
  ClusterRepo(db).set(cluster).value();
  LocalNodeRepo local(db);
  local.set_name("node-a").value();
  local.set_pod_cidr(IpPrefix::parse("10.244.1.0/24").value(), true).value();
  local.set_mtu(1420).value();
  local.set_wg_private_key(keys::PrivateKey::generate()).value();
  local.set_identity_key(keys::IdentitySecretKey::generate()).value();
  local.set_pending_wg_key(keys::PrivateKey::generate(), 1700000003000).value();
  SignedRow record;
  record.identity.fill(9);
  record.version = 3;
  record.body.assign(120, 0x5a);
  record.signature.fill(4);
  SignedRow tomb;
  tomb.identity.fill(11);
  tomb.tombstone = true;
  tomb.version = kTombstoneRowVersion;
  tomb.body.assign(80, 0x6b);
  tomb.signature.fill(5);
  RecordRepo(db).put(std::vector{record, tomb}).value();
  keys::Token t = keys::Token::generate();
  Token row = stored_form(t);
  row.usages_left = 3;
  row.created_at = 1700000000;
  TokenRepo tokens(db);
  tokens.create(row).value();
  std::vector<std::uint8_t> nonce(24, 0x42);
  (void)tokens.consume(t, nonce, 1700000001).value();
  EventRepo(db).append(1700000002, "node-joined", "node-b", "joined through node-a").value();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s OUTDIR\n", argv[0]);
    return 2;
  }
  const std::string out = argv[1];
  ::mkdir(out.c_str(), 0700);
  for (const char* name : {"current.db", "v1.db", "v0.db", "foreign.db"})
    ::unlink((out + "/" + name).c_str());

  full(out + "/current.db");
  shrink(out + "/current.db");

  Database::create_at_version(out + "/v1.db", 1);
  {
    SQLite::Database raw(out + "/v1.db", SQLite::OPEN_READWRITE);
    raw.exec("INSERT INTO cluster VALUES (1, 'c-1', '10.244.0.0/16', 24, 100)");
    raw.exec("INSERT INTO nodes (name, wg_public_key, identity_public_key, endpoints, version) "
             "VALUES ('b', zeroblob(32), zeroblob(32), '192.0.2.1:51820', 1)");
  }
  shrink(out + "/v1.db");

  Database::create_at_version(out + "/v0.db", 0);
  shrink(out + "/v0.db");

  {
    SQLite::Database raw(out + "/foreign.db", SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
    raw.exec("PRAGMA page_size = 512");
    raw.exec("PRAGMA application_id = 305419896");
    raw.exec("CREATE TABLE photos (id INTEGER PRIMARY KEY, title TEXT)");
    raw.exec("INSERT INTO photos (title) VALUES ('holiday')");
  }
  std::ofstream(out + "/not-sqlite.txt") << "[state]\ndatabase = \"/var/lib/meshd/meshd.db\"\n";
  return 0;
}
