// The reply to set=1 is a single errno=N trailer; anything else must be a
// clean protocol error, and a success must only ever come from errno=0.
#include "meshd/dataplane/uapi.h"

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace meshd::dataplane::uapi;
  std::string_view in(reinterpret_cast<const char*>(data), size);
  auto r = decode_set_reply(in, "wg0");
  if (r) {
    // Success means the reply began with an errno of zero ("errno=0", "errno=-0", "errno=00"...).
    if (in.rfind("errno=", 0) != 0) std::abort();
  } else if (r.error().message.empty() || r.error().value() == 0) {
    std::abort();
  }
  return 0;
}
