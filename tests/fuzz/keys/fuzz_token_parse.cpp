// Bootstrap tokens arrive from operators and joiners: parsing must never
// crash, anything accepted must have the documented form and round-trip, and
// a parsed token must verify against its own verifier.
#include "keys/token.h"

#include <cstdint>
#include <cstdlib>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto t = meshd::keys::Token::parse(text);
  if (!t) return 0;
  if (t->reveal() != text) std::abort();
  if (t->id() != text.substr(0, 6)) std::abort();
  for (std::size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    bool ok = i == 6 ? c == '.' : ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'));
    if (!ok) std::abort();
  }
  if (!meshd::keys::verify_token(*t, meshd::keys::token_verifier(meshd::keys::derive_token_key(*t))))
    std::abort();
  return 0;
}
