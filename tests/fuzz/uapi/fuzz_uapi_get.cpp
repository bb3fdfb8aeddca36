// A get=1 reply comes from whatever process owns the UAPI socket: decoding it
// must never crash, and whatever it decodes must encode back into one
// well-formed set request (no value can smuggle in a line or a blank line).
#include "meshd/dataplane/uapi.h"

#include <cstdint>
#include <cstdlib>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace meshd::dataplane::uapi;
  std::string_view in(reinterpret_cast<const char*>(data), size);
  (void)reply_end(in);
  auto dev = decode_get(in, "wg0");
  if (!dev) {
    if (dev.error().message.empty()) std::abort();  // every error explains itself
    return 0;
  }
  std::string req = encode_set(*dev);
  if (req.rfind("set=1\n", 0) != 0 || reply_end(req) != req.size()) std::abort();
  wipe(req);
  return 0;
}
