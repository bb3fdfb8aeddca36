// Every byte string as the JSON body of POST /v1/tokens: the strict body
// reader (types, unknown fields, depth) and the create handler.
#include "tests/fuzz/api/api_fuzz_fixture.h"

#include <cstdint>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static meshd::api::fuzz::Fixture fixture;
  meshd::api::Request req{"POST",
                          "/v1/tokens",
                          {{"Content-Type", "application/json"}},
                          std::string(reinterpret_cast<const char*>(data), size)};
  fixture.handle(req);
  return 0;
}
