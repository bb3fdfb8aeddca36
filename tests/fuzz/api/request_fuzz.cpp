// The router and every handler behind it. Input: "METHOD TARGET\n" then
// "Name: value\n" header lines up to an empty line, then the body (the shape
// of an HTTP/1.1 request, without the version: the Beast parser in front of
// the router is not this target's subject).
#include "tests/fuzz/api/api_fuzz_fixture.h"

#include <cstdint>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static meshd::api::fuzz::Fixture fixture;
  std::string_view in(reinterpret_cast<const char*>(data), size);
  auto line = [&in]() {
    std::size_t nl = in.find('\n');
    std::string_view l = in.substr(0, nl);
    in = nl == std::string_view::npos ? std::string_view{} : in.substr(nl + 1);
    return l;
  };
  meshd::api::Request req;
  std::string_view first = line();
  std::size_t sp = first.find(' ');
  req.method = std::string(first.substr(0, sp));
  if (sp != std::string_view::npos) req.target = std::string(first.substr(sp + 1));
  for (std::string_view h = line(); !h.empty(); h = line()) {
    std::size_t colon = h.find(':');
    std::string_view value =
        colon == std::string_view::npos ? std::string_view{} : h.substr(colon + 1);
    while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    req.headers.emplace_back(std::string(h.substr(0, colon)), std::string(value));
  }
  req.body = std::string(in);
  fixture.handle(req);
  return 0;
}
