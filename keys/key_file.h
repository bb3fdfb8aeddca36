// Key files on disk, in the format `wg genkey > file` writes: the 44-character
// base64 key and a newline. Written atomically with mode 0600 from the first
// byte; refused on load when group or others could read or write them, since a
// key anyone else has read must be assumed leaked.
#pragma once

#include "common/result.h"
#include "keys/identity.h"
#include "keys/wg_key.h"

#include <string>
#include <string_view>

namespace meshd::keys {

// Writes `contents` to `path` so that readers see either the old file or the
// whole new one, never a torn or world-readable one: a temporary file in the
// same directory created 0600, written, fsynced, renamed over `path`, then the
// directory fsynced so the rename survives a crash.
Result<void> write_secret_file(const std::string& path, std::string_view contents);

// base64 + "\n" of the key, through write_secret_file.
Result<void> write_key_file(const std::string& path, const SecretKey& secret);
Result<void> write_identity_key_file(const std::string& path, const IdentitySecretKey& secret);

// Pure: parses key-file contents. Accepts what `wg pubkey` accepts on stdin: the
// 44-character key at the very start, followed only by whitespace or NUL bytes.
// `path` only names the file in the error.
Result<SecretKey> parse_key_file_contents(std::string_view contents, const std::string& path);

// Loads a key file after checking it is a regular file that neither group nor
// others can read or write (else the error says "chmod 600 <path>").
Result<PrivateKey> load_private_key_file(const std::string& path);
Result<PresharedKey> load_preshared_key_file(const std::string& path);
Result<IdentitySecretKey> load_identity_key_file(const std::string& path);

}  // namespace meshd::keys
