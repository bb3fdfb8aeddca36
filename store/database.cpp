#include "store/database.h"

#include "common/unique_fd.h"

#include "store/schema.h"
#include "store/sql_util.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
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

// SQLite calls the handler on the thread running the statement, with count
// 0 for each new wait: the deadline of that wait lives there.
thread_local std::chrono::steady_clock::time_point t_deadline;

// SQLite's default handler sleeps 1, 2, 5, 10, 15, 20, 25, 25, 25, 50, 50,
// 100 ms: a waiter in a burst of a hundred writers that each hold the lock
// for well under a millisecond keeps sleeping long after the lock is free.
// Short sleeps, randomized so waiters do not retry in lockstep.
// `arg` carries the timeout in milliseconds.
int short_busy_wait(void* arg, int count) {
  const auto now = std::chrono::steady_clock::now();
  if (count == 0)
    t_deadline = now + std::chrono::milliseconds(reinterpret_cast<std::intptr_t>(arg));
  if (now >= t_deadline) return 0;  // SQLITE_BUSY to the caller
  std::uint32_t r = 0;
  if (::getrandom(&r, sizeof r, GRND_NONBLOCK) != static_cast<ssize_t>(sizeof r)) r = 0;
  std::this_thread::sleep_for(std::chrono::microseconds(100 + r % 900));
  return 1;
}

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
  // Hand-read only: tables seen in page 1 although `objects` was zeroed.
  bool tables_without_id = false;
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

std::string knows() { return std::to_string(Database::latest_schema_version()); }

// Refuses what must never be written: a foreign database, or one from a
// newer meshd. An empty SQLite database (no id, no version, no tables) is
// adopted as a new one, except by an open that never migrates, which
// accepts only the schema it knows. A header read by hand from the main file
// alone (`authoritative` false) may be older than the one in the -wal, so
// only a newer or foreign one is judged from it.
void check_header(const DatabaseOptions& opts, const Header& h, bool authoritative = true) {
  const std::string& path = opts.path;
  if (h.application_id != kApplicationId &&
      !(h.application_id == 0 && h.user_version == 0 && h.objects == 0))
    throw ErrorException(refuse(
        EINVAL, path + " is not a meshd database (application_id " + hex32(h.application_id) +
                    ", expected " + hex32(kApplicationId) +
                    " \"mshd\"); refusing to open it: point meshd at its own state file"));
  // user_version is a signed 32-bit field: a negative one is no schema any
  // meshd wrote (and must not index the migration list).
  if (h.user_version < 0)
    throw ErrorException(refuse(
        EINVAL, path + " is not a usable meshd database (schema version " +
                    std::to_string(h.user_version) +
                    " is negative: the file is damaged); refusing to open it: restore a backup"));
  if (!opts.migrate && (authoritative || h.user_version > Database::latest_schema_version())) {
    if (h.user_version == 0)
      throw ErrorException(refuse(
          ENOENT, "open database " + path +
                      ": no meshd schema in it yet (meshd creates it when it starts)"));
    if (h.user_version != Database::latest_schema_version())
      throw ErrorException(refuse(
          ENOTSUP, path + " has schema " + std::to_string(h.user_version) +
                       " but this program knows only schema " + knows() +
                       " and never migrates: restart meshd to migrate, or use the matching "
                       "meshd-cni"));
  }
  if (h.user_version > Database::latest_schema_version())
    throw ErrorException(refuse(
        ENOTSUP, path + " was created by a newer meshd: schema " +
                     std::to_string(h.user_version) + ", this meshd knows up to " + knows() +
                     "; upgrade meshd or restore a backup"));
}

std::uint32_t be32(const unsigned char* p) {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) |
         std::uint32_t{p[3]};
}

// The header fields of an SQLite file, from its first 108 bytes
// (https://sqlite.org/fileformat2.html#the_database_header).
Header parse_header(const unsigned char* buf) {
  Header h;
  h.user_version = static_cast<int>(be32(&buf[60]));
  h.application_id = static_cast<std::int32_t>(be32(&buf[68]));
  // sqlite_master is rooted in page 1: a leaf (0x0d) with no cells = no tables.
  h.objects = buf[100] == 0x0d ? (buf[103] << 8 | buf[104]) : 1;
  // "No id" is decided by SQLite itself, before the first write (see the
  // constructor): a file another process is creating right now may be read
  // here half-written, and must not be mistaken for a foreign database.
  if (h.application_id == 0 && h.user_version == 0) {
    h.tables_without_id = h.objects != 0;
    h.objects = 0;
  }
  return h;
}

std::string octal_mode(mode_t m) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "%04o", static_cast<unsigned>(m & 07777));
  return buf;
}

// Hardening of every connection (https://sqlite.org/security.html): a
// defensive connection cannot be made to corrupt the file through
// writable_schema or shadow tables, and with trusted_schema off, functions
// and virtual tables are not run from views and triggers stored in the file.
void harden(SQLite::Database& db) {
  int on = 0;
  if (sqlite3_db_config(db.getHandle(), SQLITE_DBCONFIG_DEFENSIVE, 1, &on) != SQLITE_OK || on != 1)
    throw ErrorException(refuse(EIO, "enable SQLite defensive mode on " + db.getFilename()));
  db.exec("PRAGMA trusted_schema = OFF");
}

// SQLite connections meshd opens: a symbolic link anywhere in the path is
// refused (SQLITE_OPEN_NOFOLLOW; the side files are lstat-checked by us).
constexpr int kNoFollow = SQLITE_OPEN_NOFOLLOW;

// The file holds private keys and root (the CNI plugin) writes it: only a
// file of our own user, private to it, is trusted, like a key file
// (keys/key_file.cpp). Checked on an opened descriptor or an lstat, never by
// following a link.
void check_private(const std::string& path, const struct stat& st, const char* what) {
  if (!S_ISREG(st.st_mode))
    throw ErrorException(refuse(EINVAL, what + std::string(" ") + path +
                                            " is not a regular file; remove it, it is not meshd's"));
  const uid_t me = ::geteuid();
  if (st.st_uid != me)
    throw ErrorException(refuse(
        EPERM, what + std::string(" ") + path + " is owned by uid " + std::to_string(st.st_uid) +
                   ", not by this process's uid " + std::to_string(me) +
                   "; the database holds private keys and is trusted only from its own user: run "
                   "`chown " + std::to_string(me) + " " + path +
                   "` if it is meshd's (and consider its keys leaked if another user could write "
                   "it)"));
  if ((st.st_mode & 077) != 0)
    throw ErrorException(refuse(
        EPERM, what + std::string(" ") + path + " is accessible by group or others (mode " +
                   octal_mode(st.st_mode) +
                   "); the database holds private keys and must be readable by its owner only: "
                   "run `chmod 600 " + path +
                   "` (and consider its keys leaked if others could read it)"));
}

// SQLite's side files: a -wal planted by someone else would be replayed into
// the database on open, so they get the same checks, by lstat (a symbolic
// link is refused, not followed).
void check_side_files(const std::string& path) {
  for (const char* suffix : {"-wal", "-shm"}) {
    const std::string side = path + suffix;
    struct stat st{};
    if (::lstat(side.c_str(), &st) != 0) {
      if (errno == ENOENT) continue;
      throw ErrorException(Error::from_errno(errno, "stat database file " + side));
    }
    if (S_ISLNK(st.st_mode))
      throw ErrorException(refuse(ELOOP, "database file " + side +
                                             " is a symbolic link; refusing to follow it: remove "
                                             "it (SQLite recreates it)"));
    check_private(side, st, "database file");
  }
}

std::string parent_dir(const std::string& path) {
  auto slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

// Whoever can write the directory can swap the file or plant its -wal
// between our checks and SQLite's open: the directory must be ours (or
// root's) and not writable by group or others. A missing one is created
// 0700 when this open may create the database.
void check_directory(const DatabaseOptions& opts) {
  const std::string dir = parent_dir(opts.path);
  struct stat st{};
  if (::stat(dir.c_str(), &st) != 0) {
    if (errno != ENOENT) throw ErrorException(Error::from_errno(errno, "stat directory " + dir));
    if (!opts.migrate)
      throw ErrorException(Error::from_errno(
          ENOENT, "open database " + opts.path + " (meshd creates it when it starts)"));
    if (opts.read_only) throw ErrorException(Error::from_errno(ENOENT, "open database " + opts.path));
    std::filesystem::path p(dir);
    std::filesystem::path partial;
    for (const auto& part : p) {
      partial /= part;
      if (::mkdir(partial.c_str(), 0700) != 0 && errno != EEXIST)
        throw ErrorException(Error::from_errno(errno, "create directory " + partial.string() +
                                                          " for database " + opts.path));
    }
    if (::stat(dir.c_str(), &st) != 0)
      throw ErrorException(Error::from_errno(errno, "stat directory " + dir));
  }
  if (!S_ISDIR(st.st_mode))
    throw ErrorException(refuse(ENOTDIR, "open database " + opts.path + ": " + dir +
                                             " is not a directory"));
  const uid_t me = ::geteuid();
  if (st.st_uid != me && st.st_uid != 0)
    throw ErrorException(refuse(
        EPERM, "directory " + dir + " of database " + opts.path + " is owned by uid " +
                   std::to_string(st.st_uid) + ", neither this process's uid " +
                   std::to_string(me) +
                   " nor root; its owner could replace the database: keep the database in a "
                   "directory of meshd's own (such as /var/lib/meshd, mode 0700)"));
  if ((st.st_mode & 022) != 0)
    throw ErrorException(refuse(
        EPERM, "directory " + dir + " of database " + opts.path +
                   " is writable by group or others (mode " + octal_mode(st.st_mode) +
                   "); they could replace the database or plant its -wal: run `chmod go-w " + dir +
                   "`, or keep the database in a directory of meshd's own (such as "
                   "/var/lib/meshd, mode 0700)"));
}

// Looks at an existing file, through `fd` (opened without following a
// link), without writing a byte of it. The header is parsed by hand (SQLite
// is never handed a file that is not SQLite, and a read-only SQLite
// connection to a WAL database would leave an empty -wal file behind); the
// content verdict comes first, so a wrong path gets "not a meshd database"
// rather than advice to chmod someone else's file. Then the ownership and
// mode of the file and its side files. Only when a non-empty -wal exists,
// which may hold a newer header than the main file, is a read-only SQLite
// connection asked.
void inspect_existing(const DatabaseOptions& opts, int fd, const struct stat& st) {
  const std::string& path = opts.path;
  Header h;
  if (st.st_size > 0) {
    std::array<unsigned char, 108> buf{};  // database header + page 1's b-tree header
    ssize_t n = ::pread(fd, buf.data(), buf.size(), 0);
    if (n < 0) throw ErrorException(Error::from_errno(errno, "read database " + path));
    static constexpr char kMagic[] = "SQLite format 3";  // 16 bytes with its NUL
    if (n < static_cast<ssize_t>(buf.size()) || std::memcmp(buf.data(), kMagic, 16) != 0)
      throw ErrorException(refuse(EINVAL, path +
                                              " is not a meshd database (not an SQLite 3 file); "
                                              "refusing to open it: point meshd at its own state "
                                              "file"));
    h = parse_header(buf.data());
    check_header(opts, h, /*authoritative=*/false);
  }
  // A file half-written by a concurrent meshd is ours and private; tables
  // without an id in a file that is not are another application's.
  if (h.tables_without_id && (st.st_uid != ::geteuid() || (st.st_mode & 077) != 0))
    check_header(opts, Header{.objects = 1});
  check_private(path, st, "database");
  check_side_files(path);

  struct stat wal{};
  if (st.st_size > 0 && ::lstat((path + "-wal").c_str(), &wal) == 0 && wal.st_size > 0) {
    try {
      // Concurrent writers (many CNI ADDs at once) hold the WAL briefly:
      // wait like the main connection does instead of failing "locked".
      SQLite::Database ro(path, SQLite::OPEN_READONLY | kNoFollow, opts.busy_timeout_ms);
      harden(ro);
      h = read_header(ro);
    } catch (const SQLite::Exception& e) {
      throw ErrorException(refuse(detail::errno_for_sqlite(e.getExtendedErrorCode()),
                                  "cannot read database " + path + ": " + e.what()));
    }
    check_header(opts, h, /*authoritative=*/false);
  }
}

// Prepares the file before SQLite sees it: checks the directory, refuses
// links, foreign, newer or untrusted files, creates a missing one with mode
// 0600 (SQLite gives its -wal and -shm files the mode and owner of the
// database file).
void prepare_file(const DatabaseOptions& opts) {
  check_directory(opts);
  for (int attempt = 0;; ++attempt) {
    struct stat lst{};
    if (::lstat(opts.path.c_str(), &lst) == 0) {
      if (S_ISLNK(lst.st_mode))
        throw ErrorException(refuse(ELOOP, "database " + opts.path +
                                               " is a symbolic link; meshd opens its database "
                                               "only directly: point it at the real file"));
      if (!S_ISREG(lst.st_mode))
        throw ErrorException(
            refuse(EINVAL, opts.path + " is not a meshd database (not a regular file)"));
      UniqueFd f(::open(opts.path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC));
      if (!f.valid()) throw ErrorException(Error::from_errno(errno, "open database " + opts.path));
      // Judge the file we opened, not the path.
      struct stat st{};
      if (::fstat(f.get(), &st) != 0)
        throw ErrorException(Error::from_errno(errno, "stat database " + opts.path));
      if (!S_ISREG(st.st_mode))
        throw ErrorException(
            refuse(EINVAL, opts.path + " is not a meshd database (not a regular file)"));
      inspect_existing(opts, f.get(), st);
      return;
    }
    if (errno != ENOENT)
      throw ErrorException(Error::from_errno(errno, "stat database " + opts.path));
    if (!opts.migrate)
      throw ErrorException(Error::from_errno(
          ENOENT, "open database " + opts.path + " (meshd creates it when it starts)"));
    if (opts.read_only)
      throw ErrorException(Error::from_errno(ENOENT, "open database " + opts.path));
    if (attempt > 0)  // created and then gone again: someone else is at work here
      throw ErrorException(Error::from_errno(ENOENT, "create database " + opts.path));
    // No O_EXCL: a concurrent meshd or CNI process may create it first; both
    // then migrate under BEGIN IMMEDIATE and the second finds nothing to do.
    // Then round again: the file is checked like any existing one.
    UniqueFd f(::open(opts.path.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (!f.valid()) throw ErrorException(Error::from_errno(errno, "create database " + opts.path));
  }
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
    if (memory)
      flags |= SQLite::OPEN_CREATE;
    else
      flags |= kNoFollow;
    db_ = std::make_unique<SQLite::Database>(opts_.path, flags, opts_.busy_timeout_ms);
    if (opts_.burst_writer)
      ::sqlite3_busy_handler(db_->getHandle(), &short_busy_wait,
                             reinterpret_cast<void*>(static_cast<std::intptr_t>(opts_.busy_timeout_ms)));
    harden(*db_);
    db_->exec("PRAGMA foreign_keys = ON");

    if (opts_.read_only) {
      Header h = read_header(*db_);
      check_header(opts_, h);
      if (h.user_version < latest_schema_version())
        throw ErrorException(refuse(
            ENOTSUP, opts_.path + " has schema " + std::to_string(h.user_version) +
                         ", older than this meshd's " + std::to_string(latest_schema_version()) +
                         "; open it read-write once (start meshd) to migrate it"));
      return;
    }

    // The authoritative check, through SQLite and in one snapshot, before the
    // first write. Only now is the file written to.
    check_header(opts_, read_header(*db_));
    // A database that is never migrated here is meshd's, already in WAL mode
    // (persistent in the file): switching modes would be a write.
    if (opts_.migrate) db_->exec("PRAGMA journal_mode = WAL");
    // FULL: a commit survives power loss too (a consumed token stays consumed);
    // NORMAL for a burst writer (DatabaseOptions::burst_writer).
    db_->exec(opts_.burst_writer ? "PRAGMA synchronous = NORMAL" : "PRAGMA synchronous = FULL");
    // Overwritten or deleted secrets are zeroed in the file, not left in free pages.
    db_->exec("PRAGMA secure_delete = ON");

    // Fast path: already ours and current, nothing to write.
    Header h = read_header(*db_);
    check_header(opts_, h);
    if (h.application_id == kApplicationId && h.user_version >= target_version) return;

    // One transaction per migration, re-checking the header under the write
    // lock: another process may have migrated (or replaced) it meanwhile.
    const auto migrations = detail::migrations();
    for (;;) {
      SQLite::Transaction tx(*db_, SQLite::TransactionBehavior::IMMEDIATE);
      h = read_header(*db_);
      check_header(opts_, h);
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
    if (e.getExtendedErrorCode() == SQLITE_CANTOPEN_SYMLINK)
      throw ErrorException(refuse(ELOOP, "open database " + opts_.path +
                                             ": the path goes through a symbolic link; meshd "
                                             "opens its database only by its real path"));
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
