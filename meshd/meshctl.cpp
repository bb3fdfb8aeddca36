// meshctl: the operator's command line. Key commands work offline and behave
// exactly like their wireguard-tools counterparts (same input rules, output,
// messages and exit codes), so scripts written for `wg genkey | wg pubkey`
// work unchanged. `status` reads the daemon's status file; commands that talk
// to the daemon's REST API join later, one function per subcommand.
#include "common/version.h"
#include "keys/wg_key.h"
#include "meshd/meshctl/status_view.h"

#include <CLI/CLI.hpp>
#include <sodium.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

namespace {

constexpr const char* kProg = "meshctl";

// Flushes stdout; wg ignores write errors, but a key lost to a full disk
// while the exit code says success is worse than a deviation.
int finish_stdout() {
  if (std::fflush(stdout) != 0 || std::ferror(stdout)) {
    std::fprintf(stderr, "%s: write to stdout: %s\n", kProg, std::strerror(errno));
    return 1;
  }
  return 0;
}

// Same check and words as `wg genkey`: only a regular file others can access
// is worth a warning; pipes and terminals are not.
void warn_if_world_accessible_stdout() {
  struct stat st {};
  if (::fstat(STDOUT_FILENO, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & S_IRWXO))
    std::fputs(
        "Warning: writing to world accessible file.\n"
        "Consider setting the umask to 077 and trying again.\n",
        stderr);
}

int print_secret(const std::string& base64) {
  std::puts(base64.c_str());
  return finish_stdout();
}

int run_genkey() {
  warn_if_world_accessible_stdout();
  std::string b64 = meshd::keys::PrivateKey::generate().to_base64_secret();
  int rc = print_secret(b64);
  sodium_memzero(b64.data(), b64.size());
  return rc;
}

int run_genpsk() {
  warn_if_world_accessible_stdout();
  std::string b64 = meshd::keys::PresharedKey::generate().to_base64_secret();
  int rc = print_secret(b64);
  sodium_memzero(b64.data(), b64.size());
  return rc;
}

// The input rules of `wg pubkey`: the first 44 bytes of stdin are the key;
// after them only whitespace (\t \n \v \f \r, space) and NUL bytes may follow.
int run_pubkey() {
  char b64[45] = {};
  auto fail_format = [&] {
    sodium_memzero(b64, sizeof b64);
    std::fprintf(stderr, "%s: Key is not the correct length or format\n", kProg);
    return 1;
  };
  if (std::fread(b64, 1, 44, stdin) != 44) return fail_format();
  for (;;) {
    int c = std::getc(stdin);
    if (c == EOF) break;
    if (c == 0 || c == ' ' || (c >= '\t' && c <= '\r')) continue;
    sodium_memzero(b64, sizeof b64);
    std::fprintf(stderr, "%s: Trailing characters found after key\n", kProg);
    return 1;
  }
  // wg reads the key as a C string: an embedded NUL shortens it, which the
  // 44-character rule then rejects; the base64 alphabet check does the same.
  auto key = meshd::keys::PrivateKey::from_base64(std::string_view(b64, 44));
  sodium_memzero(b64, sizeof b64);
  if (!key) return fail_format();
  std::puts(key->public_key().to_base64().c_str());
  return finish_stdout();
}

// Until the REST API exists, the daemon's status is the file it rewrites after
// a pass whose outcome changed (docs/dataplane.md); this prints it for a
// person (meshctl/status_view.h), or as it is with --json. Exit 0 when the
// last pass converged, 3 when it did not. The file is opened without
// following a symlink at its name and without becoming a controlling
// terminal, and must be a regular file of bounded size.
int run_status(const std::string& runtime_dir, bool json) {
  std::string path = runtime_dir + "/status.json";
  auto cannot_read = [&](int err) {
    std::fprintf(stderr, "%s status: cannot read %s: %s (is meshd running? its [state] runtime_dir is the --runtime-dir to give)\n",
                 kProg, path.c_str(), std::strerror(err));
    return 1;
  };
  int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return cannot_read(errno);
  constexpr std::size_t kMaxStatus = 16 << 20;
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    return cannot_read(err);
  }
  if (!S_ISREG(st.st_mode) || static_cast<std::size_t>(st.st_size) > kMaxStatus) {
    ::close(fd);
    std::fprintf(stderr, "%s status: %s is not a meshd status file (not a regular file of at most 16 MiB)\n",
                 kProg, path.c_str());
    return 1;
  }
  std::string text;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      ::close(fd);
      return cannot_read(err);
    }
    if (n == 0 || text.size() + static_cast<std::size_t>(n) > kMaxStatus) break;
    text.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  auto status = meshd::meshctl::parse_status(text);
  if (!status) {
    std::fprintf(stderr, "%s status: %s: %s\n", kProg, path.c_str(), status.error().message.c_str());
    return 1;
  }
  if (json)
    std::fwrite(text.data(), 1, text.size(), stdout);
  else
    std::fputs(meshd::meshctl::format_status(*status).c_str(), stdout);
  if (int rc = finish_stdout(); rc != 0) return rc;
  return status->in_sync ? 0 : 3;
}

// A subcommand that, like wg's, takes no arguments: anything extra prints
// the usage line and fails with 1, as `wg genkey extra` does.
CLI::App* add_plain(CLI::App& app, const std::string& name, const std::string& help) {
  CLI::App* sub = app.add_subcommand(name, help);
  sub->allow_extras();
  return sub;
}

bool usage_if_extras(const CLI::App* sub) {
  if (sub->remaining().empty()) return false;
  std::fprintf(stderr, "Usage: %s %s\n", kProg, sub->get_name().c_str());
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"meshctl: keys and management for meshd, a WireGuard pod network"};
  app.name(kProg);
  app.set_version_flag("--version", std::string(kProg) + " " + meshd::kVersion,
                       "Print the version and exit");

  CLI::App* genkey = add_plain(
      app, "genkey",
      "Generate a new WireGuard private key and print it in base64 (like `wg genkey`)");
  CLI::App* pubkey = add_plain(
      app, "pubkey",
      "Read a base64 private key on stdin and print its public key (like `wg pubkey`)");
  CLI::App* genpsk = add_plain(
      app, "genpsk", "Generate a new random preshared key and print it in base64 (like `wg genpsk`)");

  std::string runtime_dir = "/run/meshd";
  bool status_json = false;
  CLI::App* status = app.add_subcommand(
      "status", "Show the daemon's data-plane status: backend, device, peers, routes, errors");
  status->add_option("--runtime-dir", runtime_dir, "meshd's [state] runtime_dir")
      ->capture_default_str();
  status->add_flag("--json", status_json, "print the status file as it is");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }

  if (status->parsed()) return run_status(runtime_dir, status_json);

  struct Command {
    CLI::App* sub;
    int (*run)();
  };
  for (const Command& c : {Command{genkey, run_genkey}, Command{pubkey, run_pubkey},
                           Command{genpsk, run_genpsk}}) {
    if (!c.sub->parsed()) continue;
    if (usage_if_extras(c.sub)) return 1;
    try {
      return c.run();
    } catch (const std::exception& e) {  // e.g. libsodium without a random source
      std::fprintf(stderr, "%s %s: %s\n", kProg, c.sub->get_name().c_str(), e.what());
      return 1;
    }
  }
  std::fputs(app.help().c_str(), stderr);
  return 1;
}
