// The server's request path from raw bytes: Beast's request parser with the
// server's limits (header 8 KiB, the router's body limit), then the router,
// then the response as the server writes it. Several requests in one input
// are read one after another, as on a keep-alive connection. Checks, besides
// the fixture's: a parse failure answers 400, 413 or 431 as a JSON error, and
// every answer serializes.
#include "meshd/api/wire.h"
#include "tests/fuzz/api/api_fuzz_fixture.h"

#include <boost/beast/http/error.hpp>
#include <boost/beast/http/write.hpp>

#include <cstdint>
#include <cstdlib>
#include <sstream>
#include <string_view>

namespace {

namespace http = boost::beast::http;
using namespace meshd::api;

constexpr std::size_t kMaxHeaderBytes = 8192;

void check_error(const Response& r) {
  if (r.status != 400 && r.status != 413 && r.status != 431) std::abort();
  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(r.body, ec);
  if (ec || !v.is_object() || !v.as_object().contains("error")) std::abort();
}

void serialize(const Response& r, unsigned version, bool keep_alive) {
  WireResponse wire = to_wire(r, version, keep_alive);
  std::ostringstream out;
  out << wire;
  if (out.str().empty()) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static fuzz::Fixture fixture;
  static const std::size_t max_body = RouterOptions{}.max_body_bytes;
  std::string_view in(reinterpret_cast<const char*>(data), size);
  while (!in.empty()) {
    RequestParser parser;
    apply_limits(parser, kMaxHeaderBytes, max_body);
    boost::system::error_code ec;
    // Fed in pieces, as reads deliver it: the parser must not depend on how
    // the bytes are split.
    while (!in.empty() && !parser.is_done()) {
      std::size_t n = parser.put(boost::asio::buffer(in.data(), in.size()), ec);
      in.remove_prefix(n);
      if (ec == http::error::need_more) {
        ec = {};
        if (n == 0) {
          in = {};  // the rest is a prefix of a request: the connection would wait or time out
          break;
        }
        continue;
      }
      if (ec) break;
    }
    if (ec) {
      Response r = parse_error_response(ec, kMaxHeaderBytes, max_body);
      check_error(r);
      serialize(r, 11, false);
      return 0;  // the server closes the connection after a parse error
    }
    if (!parser.is_done()) return 0;
    WireRequest wire = parser.release();
    Response r = fixture.handle(to_request(wire));
    serialize(r, wire.version(), wire.keep_alive());
    if (!wire.keep_alive()) return 0;
  }
  return 0;
}
