// A database file someone planted, or one corrupted on disk: the input is
// written as the whole file and opened with the store, as meshd and the CNI
// plugin open it. Every outcome must be a clean refusal (ErrorException) or
// an open database whose repositories answer with values or errors; anything
// else (another exception, a crash, a sanitizer report) is a finding. The
// file lives in a private directory on tmpfs so an iteration costs no disk
// I/O.
#include "store/cluster.h"
#include "store/database.h"
#include "store/events.h"
#include "store/local_node.h"
#include "store/records.h"
#include "store/tokens.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>

namespace {

std::string make_dir() {
  std::string base = ::access("/dev/shm", W_OK) == 0
                         ? std::string("/dev/shm")
                         : std::filesystem::temp_directory_path().string();
  std::string tmpl = base + "/meshd-fuzz-store-XXXXXX";
  if (!::mkdtemp(tmpl.data())) std::abort();  // 0700: a directory the store trusts
  return tmpl;
}

std::string g_dir;

void remove_dir() {
  std::error_code ec;
  std::filesystem::remove_all(g_dir, ec);
}

const std::string& dir() {
  if (g_dir.empty()) {
    g_dir = make_dir();
    std::atexit(remove_dir);
  }
  return g_dir;
}

void plant(const std::string& path, const std::uint8_t* data, std::size_t size) {
  for (const char* suffix : {"", "-wal", "-shm"}) ::unlink((path + suffix).c_str());
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) std::abort();
  while (size > 0) {
    ssize_t n = ::write(fd, data, size);
    if (n <= 0) std::abort();
    data += n;
    size -= static_cast<std::size_t>(n);
  }
  ::close(fd);
}

// Touches every repository's read path; results (values or errors) are
// dropped: only how they come back matters.
void read_everything(meshd::store::Database& db) {
  using namespace meshd::store;
  (void)ClusterRepo(db).get();
  LocalNodeRepo local(db);
  (void)local.get();
  (void)local.wg_private_key();
  (void)local.pending_wg_key();
  (void)local.identity_key();
  (void)RecordRepo(db).load_all();
  (void)TokenRepo(db).list();
  (void)EventRepo(db).list(100);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string path = dir() + "/meshd.db";
  // Both ways the file is opened: the CNI plugin's (never migrates) and
  // meshd's (may migrate an older schema in place).
  for (bool migrate : {false, true}) {
    plant(path, data, size);
    try {
      meshd::store::Database db(
          meshd::store::DatabaseOptions{.path = path, .busy_timeout_ms = 0, .migrate = migrate});
      read_everything(db);
    } catch (const meshd::ErrorException&) {
      // A clean refusal.
    }
  }
  return 0;
}
