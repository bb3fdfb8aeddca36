// meshctl: the operator's command line. Key commands work offline and behave
// exactly like their wireguard-tools counterparts (same input rules, output,
// messages and exit codes), so scripts written for `wg genkey | wg pubkey`
// work unchanged. Commands that talk to the daemon's REST API join later,
// one function per subcommand, like these.
#include "common/version.h"
#include "keys/wg_key.h"

#include <CLI/CLI.hpp>
#include <sodium.h>

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

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }

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
