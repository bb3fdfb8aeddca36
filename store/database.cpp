#include "store/database.h"

#include "store/schema.h"
#include "store/sql_util.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <chrono>
#include <cstring>
#include <thread>

namespace meshd::store {

namespace detail {

int errno_for_sqlite(int code) {
  switch (code & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED: return EBUSY;
    case SQLITE_NOMEM: return ENOMEM;
    case SQLITE_READONLY: return EROFS;
    case SQLITE_FULL: return ENOSPC;
    case SQLITE_CANTOPEN: return EACCES;
    case SQLITE_PERM:
    case SQLITE_AUTH: return EPERM;
    case SQLITE_CONSTRAINT: return EEXIST;
    case SQLITE_NOTADB:
    case SQLITE_CORRUPT: return EINVAL;
    default: return EIO;
  }
}

Error sql_error(const Database& db, const std::string& what, const SQLite::Exception& e) {
  return Error{{errno_for_sqlite(e.getExtendedErrorCode()), boost::system::generic_category()},
               what + " in " + db.path() + ": " + e.what()};
}

}  // namespace detail

namespace {

Error refuse(int err, std::string message) {
  return Error{{err, boost::system::generic_category()}, std::move(message)};
}

std::string hex32(std::int32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08x", static_cast<std::uint32_t>(v));
  return buf;
}

bool is_memory(const std::string& path) { return path.empty() || path == ":memory:"; }

struct Header {
  std::int32_t application_id = 0;
  int user_version = 0;
  int objects = 0;  // rows of sqlite_master
};

// One statement, hence one snapshot: read as three separate statements, a
// concurrent creator's commit could land in between and show "no id, but
// tables", which looks like a foreign database (seen with 50 processes).
Header read_header(SQLite::Database& db) {
  SQLite::Statement st(db,
                       "SELECT (SELECT application_id FROM pragma_application_id), "
                       "(SELECT user_version FROM pragma_user_version), "
                       "(SELECT count(*) FROM sqlite_master)");
  st.executeStep();
  Header h;
  h.application_id = st.getColumn(0).getInt();
  h.user_version = st.getColumn(1).getInt();
  h.objects = st.getColumn(2).getInt();
  return h;
}

// Refuses what must never be written: a foreign database, or one from a
// newer meshd. An empty SQLite database (no id, no version, no tables) is
// adopted as a new one.
void check_header(const std::string& path, const Header& h) {
  if (h.application_id != kApplicationId &&
      !(h.application_id == 0 && h.user_version == 0 && h.objects == 0))
    throw ErrorException(refuse(
        EINVAL, path + " is not a meshd database (application_id " + hex32(h.application_id) +
                    ", expected " + hex32(kApplicationId) +
                    " \"mshd\"); refusing to open it: point meshd at its own state file"));
  if (h.user_version > Database::latest_schema_version())
    throw ErrorException(refuse(
        ENOTSUP, path + " was created by a newer meshd: schema " +
                     std::to_string(h.user_version) + ", this meshd knows up to " +
                     std::to_string(Database::latest_schema_version()) +
                     "; upgrade meshd or restore a backup"));
}

std::uint32_t be32(const unsigned char* p) {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) |
         std::uint32_t{p[3]};
}

off_t file_size(const std::string& path) {
  struct stat st{};
  return ::stat(path.c_str(), &st) == 0 ? st.st_size : 0;
}

// Looks at an existing, non-empty file without writing a byte of it. The
// header is parsed by hand (SQLite is never handed a file that is not
// SQLite, and a read-only SQLite connection to a WAL database would leave an
// empty -wal file behind). Only when a non-empty -wal exists, which may hold
// a newer header than the main file, is a read-only SQLite connection asked.
void inspect_existing(const std::string& path, int busy_timeout_ms) {
  std::array<unsigned char, 108> buf{};  // database header + page 1's b-tree header
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw ErrorException(Error::from_errno(errno, "open database " + path));
  ssize_t n = ::read(fd, buf.data(), buf.size());
  int err = errno;
  ::close(fd);
  if (n < 0) throw ErrorException(Error::from_errno(err, "read database " + path));
  static constexpr char kMagic[] = "SQLite format 3";  // 16 bytes with its NUL
  if (n < static_cast<ssize_t>(buf.size()) || std::memcmp(buf.data(), kMagic, 16) != 0)
    throw ErrorException(refuse(EINVAL, path +
                                            " is not a meshd database (not an SQLite 3 file); "
                                            "refusing to open it: point meshd at its own state file"));
  Header h;
  h.user_version = static_cast<int>(be32(&buf[60]));
  h.application_id = static_cast<std::int32_t>(be32(&buf[68]));
  // sqlite_master is rooted in page 1: a leaf (0x0d) with no cells = no tables.
  h.objects = buf[100] == 0x0d ? (buf[103] << 8 | buf[104]) : 1;

  // "No id" is decided by SQLite itself, before the first write (see the
  // constructor): a file another process is creating right now may be read
  // here half-written, and must not be mistaken for a foreign database.
  if (h.application_id == 0 && h.user_version == 0) h.objects = 0;

  if (file_size(path + "-wal") > 0) {
    try {
      // Concurrent writers (many CNI ADDs at once) hold the WAL briefly:
      // wait like the main connection does instead of failing "locked".
      SQLite::Database ro(path, SQLite::OPEN_READONLY, busy_timeout_ms);
      h = read_header(ro);
    } catch (const SQLite::Exception& e) {
      throw ErrorException(refuse(detail::errno_for_sqlite(e.getExtendedErrorCode()),
                                  "cannot read database " + path + ": " + e.what()));
    }
  }
  check_header(path, h);
}

// Prepares the file before SQLite sees it: refuses foreign or newer files,
// creates a missing one with mode 0600 (SQLite gives its -wal and -shm files
// the mode of the database file).
void prepare_file(const DatabaseOptions& opts) {
  struct stat st{};
  if (::stat(opts.path.c_str(), &st) == 0) {
    if (!S_ISREG(st.st_mode))
      throw ErrorException(refuse(EINVAL, opts.path + " is not a meshd database (not a regular file)"));
    if (st.st_size > 0) inspect_existing(opts.path, opts.busy_timeout_ms);
    return;
  }
  if (errno != ENOENT) throw ErrorException(Error::from_errno(errno, "stat database " + opts.path));
  if (opts.read_only) throw ErrorException(Error::from_errno(ENOENT, "open database " + opts.path));
  // No O_EXCL: a concurrent meshd or CNI process may create it first; both
  // then migrate under BEGIN IMMEDIATE and the second finds nothing to do.
  int fd = ::open(opts.path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) throw ErrorException(Error::from_errno(errno, "create database " + opts.path));
  ::close(fd);
}

}  // namespace

int Database::latest_schema_version() {
  return detail::migrations().back().version;
}

Database::Database(DatabaseOptions opts) : Database(std::move(opts), latest_schema_version()) {}

Database::Database(DatabaseOptions opts, int target_version) : opts_(std::move(opts)) {
  if (opts_.path.empty()) opts_.path = ":memory:";
  if (target_version < 0 || target_version > latest_schema_version())
    throw ErrorException(Error::invalid("schema version " + std::to_string(target_version) +
                                        " does not exist: this meshd knows 0 to " +
                                        std::to_string(latest_schema_version())));
  const bool memory = is_memory(opts_.path);
  // Many processes may create and convert one file at once (concurrent CNI
  // ADDs on a fresh node). Switching a new file to WAL takes an exclusive
  // lock, and SQLite answers some lock upgrades with SQLITE_BUSY at once
  // rather than through the busy handler (to avoid deadlock): every step
  // below is idempotent, so start over until the busy timeout has passed.
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(opts_.busy_timeout_ms);
  for (int attempt = 0;; ++attempt) {
    if (!memory) prepare_file(opts_);
    try {
      open_and_migrate(memory, target_version);
      return;
    } catch (const ErrorException& e) {
      if (!e.error().is(EBUSY) || std::chrono::steady_clock::now() >= deadline) throw;
      db_.reset();
      std::this_thread::sleep_for(std::chrono::milliseconds(5 + 5 * std::min(attempt, 20)));
    }
  }
}

void Database::open_and_migrate(bool memory, int target_version) {
  try {
    int flags = opts_.read_only ? SQLite::OPEN_READONLY : SQLite::OPEN_READWRITE;
    if (memory) flags |= SQLite::OPEN_CREATE;
    db_ = std::make_unique<SQLite::Database>(opts_.path, flags, opts_.busy_timeout_ms);
    db_->exec("PRAGMA foreign_keys = ON");

    if (opts_.read_only) {
      Header h = read_header(*db_);
      check_header(opts_.path, h);
      if (h.user_version < latest_schema_version())
        throw ErrorException(refuse(
            ENOTSUP, opts_.path + " has schema " + std::to_string(h.user_version) +
                         ", older than this meshd's " + std::to_string(latest_schema_version()) +
                         "; open it read-write once (start meshd) to migrate it"));
      return;
    }

    // The authoritative check, through SQLite and in one snapshot, before the
    // first write. Only now is the file written to.
    check_header(opts_.path, read_header(*db_));
    db_->exec("PRAGMA journal_mode = WAL");
    // FULL: a commit survives power loss too (a consumed token stays consumed).
    db_->exec("PRAGMA synchronous = FULL");
    // Overwritten or deleted secrets are zeroed in the file, not left in free pages.
    db_->exec("PRAGMA secure_delete = ON");

    // Fast path: already ours and current, nothing to write.
    Header h = read_header(*db_);
    check_header(opts_.path, h);
    if (h.application_id == kApplicationId && h.user_version >= target_version) return;

    // One transaction per migration, re-checking the header under the write
    // lock: another process may have migrated (or replaced) it meanwhile.
    const auto migrations = detail::migrations();
    for (;;) {
      SQLite::Transaction tx(*db_, SQLite::TransactionBehavior::IMMEDIATE);
      h = read_header(*db_);
      check_header(opts_.path, h);
      if (h.application_id != kApplicationId)
        db_->exec("PRAGMA application_id = " + std::to_string(kApplicationId));
      if (h.user_version >= target_version) {
        tx.commit();
        break;
      }
      const detail::Migration& m = migrations[h.user_version];
      try {
        db_->exec(m.sql);
        db_->exec("PRAGMA user_version = " + std::to_string(m.version));
      } catch (const SQLite::Exception& e) {
        throw ErrorException(refuse(
            detail::errno_for_sqlite(e.getExtendedErrorCode()),
            "migrate " + opts_.path + " to schema " + std::to_string(m.version) + " (" +
                m.description + "): " + e.what() + "; the database is left at schema " +
                std::to_string(h.user_version)));
      }
      tx.commit();
    }
  } catch (const SQLite::Exception& e) {
    throw ErrorException(refuse(detail::errno_for_sqlite(e.getExtendedErrorCode()),
                                "open database " + opts_.path + ": " + e.what()));
  }
}

Database::~Database() = default;

Result<std::unique_ptr<Database>> Database::open(DatabaseOptions opts) {
  try {
    return std::make_unique<Database>(std::move(opts));
  } catch (const ErrorException& e) {
    return e.error();
  }
}

void Database::create_at_version(const std::string& path, int version) {
  Database db(DatabaseOptions{.path = path}, version);
}

int Database::schema_version() const {
  return db_->execAndGet("PRAGMA user_version").getInt();
}

const std::string& Database::path() const { return opts_.path; }

SQLite::Database& Database::sql() { return *db_; }

}  // namespace meshd::store
