// Reading a small secret (a join token, an API bearer token, a TLS private
// key) from a file that must be as private as a key file: whoever else can
// read it holds the secret, whoever else can write it chooses it.
#pragma once

#include "common/result.h"

#include <cstddef>
#include <string>

namespace meshd {

inline constexpr std::size_t kMaxSecretFileBytes = 4096;
// A PEM private key: an RSA key of 8192 bits with its chain of comments is
// well under this.
inline constexpr std::size_t kMaxKeyFileBytes = 64 * 1024;

// The file's content without one trailing newline ("\n" or "\r\n").
// Refused (EPERM unless said otherwise), before a byte is read:
// - a symbolic link as the last component (O_NOFOLLOW: ELOOP);
// - anything but a regular file (EINVAL);
// - an owner other than root or this process's effective uid;
// - any permission bit for group or others (expected mode 0600 or 0400);
// - more than max_bytes (EFBIG).
// Errors name the path and the fix (chmod / chown); they never quote the
// content. The caller owns the returned secret and should wipe it.
Result<std::string> read_secret_file(const std::string& path, std::size_t max_bytes = kMaxSecretFileBytes);

}  // namespace meshd
