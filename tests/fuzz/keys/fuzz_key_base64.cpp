// Key text from outside (config, REST, peers' records, key files, the UAPI's
// hex keys) must never crash the parsers, and anything they accept must be
// canonical: encoding the parsed key gives back the same text, and its file
// form parses the same way. A refused hex text is never quoted in the error.
#include "keys/key_file.h"
#include "keys/wg_key.h"

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

namespace {

// wg's acceptance rule written the obvious way (table lookup, branches): the
// constant-time decoder must agree with it on every input.
bool reference_accepts(std::string_view s) {
  static const std::string_view alphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  if (s.size() != 44 || s[43] != '=') return false;
  for (std::size_t i = 0; i < 43; ++i)
    if (alphabet.find(s[i]) == std::string_view::npos) return false;
  return (alphabet.find(s[42]) & 3) == 0;
}

// The UAPI's rule: exactly 64 hex digits, either case.
bool reference_hex_accepts(std::string_view s) {
  if (s.size() != 64) return false;
  for (char c : s)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) return false;
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  if (meshd::keys::key_from_base64(text).has_value() != reference_accepts(text)) std::abort();

  if (auto k = meshd::keys::key_from_base64(text)) {
    if (meshd::keys::key_to_base64(*k) != text) std::abort();  // round trip
    meshd::keys::PrivateKey priv(*k);
    auto pub = meshd::keys::PublicKey::from_base64(priv.public_key().to_base64());
    if (!pub || *pub != priv.public_key()) std::abort();
  }

  auto hex = meshd::keys::key_from_hex(text);
  if (hex.has_value() != reference_hex_accepts(text)) std::abort();
  if (hex) {
    std::string lower(text);
    for (char& c : lower)
      if (c >= 'A' && c <= 'F') c = static_cast<char>(c - 'A' + 'a');
    if (meshd::keys::key_to_hex(*hex) != lower) std::abort();
  } else {
    // The text may be a private key: the error may depend on which bytes are
    // hex digits (and how many there are), never on the digits themselves.
    std::string shape(text);
    for (char& c : shape) c = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') ? '0' : 'g';
    if (meshd::keys::key_from_hex(shape).error().message != hex.error().message) std::abort();
  }

  // The key-file reader: a prefix key plus tolerated trailing bytes.
  auto f = meshd::keys::parse_key_file_contents(text, "fuzz.key");
  if (f) {
    if (size < 44) std::abort();
    if (meshd::keys::key_to_base64(f->bytes()) != text.substr(0, 44)) std::abort();
  }
  return 0;
}
