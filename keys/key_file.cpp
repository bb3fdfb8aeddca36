#include "keys/key_file.h"

#include "common/atomic_file.h"
#include "common/unique_fd.h"

#include <sodium.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace meshd::keys {

namespace {

bool is_space_or_nul(unsigned char c) {
  // wg's char_is_space (\t \n \v \f \r and ' '), plus NUL, as `wg pubkey` skips.
  return c == 0 || c == ' ' || (c >= '\t' && c <= '\r');
}

// Reads a whole (small) key file from an open descriptor.
Result<std::string> read_small(int fd, const std::string& path) {
  std::string out;
  char buf[256];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      sodium_memzero(buf, sizeof buf);
      return fail(errno, "read key file " + path);
    }
    if (n == 0) break;
    out.append(buf, static_cast<std::size_t>(n));
    if (out.size() > 4096) {
      sodium_memzero(buf, sizeof buf);
      sodium_memzero(out.data(), out.size());
      return Error::invalid("key file " + path +
                            " is too large to be a key file: expected one base64 key and a "
                            "newline (as `wg genkey` writes)");
    }
  }
  sodium_memzero(buf, sizeof buf);
  return out;
}

Result<SecretKey> load_checked(const std::string& path) {
  UniqueFd f(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY));
  if (!f.valid()) return fail(errno, "open key file " + path);
  // Check the file we opened, not the path: no race with a chmod or rename.
  struct stat st {};
  if (::fstat(f.get(), &st) != 0) return fail(errno, "stat key file " + path);
  if (!S_ISREG(st.st_mode))
    return Error::invalid("key file " + path + " is not a regular file");
  if ((st.st_mode & 077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    return Error{{EPERM, boost::system::generic_category()},
                 "key file " + path + " is accessible by group or others (mode " + mode +
                     "); a private key must be readable by its owner only: run `chmod 600 " +
                     path + "` (and consider the key leaked if others could read it)"};
  }
  auto text = read_small(f.get(), path);
  if (!text) return text.error();
  auto key = parse_key_file_contents(*text, path);
  sodium_memzero(text->data(), text->size());
  return key;
}

}  // namespace

Result<void> write_secret_file(const std::string& path, std::string_view contents) {
  return write_file_atomically(path, contents, 0600);
}

Result<void> write_key_file(const std::string& path, const SecretKey& secret) {
  std::string text = key_to_base64(secret.bytes()) + "\n";
  auto r = write_secret_file(path, text);
  sodium_memzero(text.data(), text.size());
  return r;
}

Result<void> write_identity_key_file(const std::string& path, const IdentitySecretKey& secret) {
  std::string text = secret.to_base64_secret() + "\n";
  auto r = write_secret_file(path, text);
  sodium_memzero(text.data(), text.size());
  return r;
}

Result<SecretKey> parse_key_file_contents(std::string_view contents, const std::string& path) {
  constexpr std::size_t kLen = 44;
  bool ok = contents.size() >= kLen;
  for (std::size_t i = kLen; ok && i < contents.size(); ++i)
    ok = is_space_or_nul(static_cast<unsigned char>(contents[i]));
  Result<KeyBytes> k = ok ? key_from_base64(contents.substr(0, kLen))
                          : Result<KeyBytes>(Error::invalid(""));
  if (!k)
    return Error::invalid("key file " + path +
                          " does not hold a key: expected one line with a 44-character base64 "
                          "key ending in '=' (as `wg genkey > file` writes)");
  SecretKey s(*k);
  sodium_memzero(k->data(), k->size());
  return s;
}

Result<PrivateKey> load_private_key_file(const std::string& path) {
  auto s = load_checked(path);
  if (!s) return s.error();
  return PrivateKey(std::move(*s));
}

Result<PresharedKey> load_preshared_key_file(const std::string& path) {
  auto s = load_checked(path);
  if (!s) return s.error();
  return PresharedKey(std::move(*s));
}

Result<IdentitySecretKey> load_identity_key_file(const std::string& path) {
  auto s = load_checked(path);
  if (!s) return s.error();
  return IdentitySecretKey::from_seed(s->bytes());
}

}  // namespace meshd::keys
