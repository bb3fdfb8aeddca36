// Key text from outside (config, REST, peers' records, key files) must never
// crash the parser, and anything it accepts must be canonical: encoding the
// parsed key gives back the same text, and its file form parses the same way.
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

  // The key-file reader: a prefix key plus tolerated trailing bytes.
  auto f = meshd::keys::parse_key_file_contents(text, "fuzz.key");
  if (f) {
    if (size < 44) std::abort();
    if (meshd::keys::key_to_base64(f->bytes()) != text.substr(0, 44)) std::abort();
  }
  return 0;
}
