// Every answer the etcd client reads from the gateway (etcd_json.h): any
// bytes, through every parser, must give a value or an error with a message,
// never a crash or a hang; and base64 decoding accepts exactly the canonical
// encodings (decode then encode gives the input back). The watch stream is
// fed the way the client feeds it: line by line.
#include "meshd/datastore/etcd_json.h"

#include <cstdint>
#include <cstdlib>
#include <string_view>

namespace {

using namespace meshd::datastore;

template <class T>
void check(const meshd::Result<T>& r) {
  if (!r && r.error().message.empty()) std::abort();
}

void check_printable(const std::string& s) {
  for (unsigned char c : s)
    if (c < 0x20 || c >= 0x7f) std::abort();  // goes to logs
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);

  auto range = parse_range_response(in);
  check(range);
  if (range && range->kvs.size() > size) std::abort();
  check(parse_header_revision(in));
  check(parse_delete_response(in));
  auto txn = parse_txn_response(in);
  check(txn);
  check(parse_lease_grant_response(in));
  check(parse_lease_keepalive_response(in));
  auto token = parse_authenticate_response(in);
  check(token);
  if (token) check_printable(*token);
  if (auto e = parse_error_body(in)) {
    if (e->message.empty()) std::abort();
    check_printable(e->message);
    (void)errno_for_answer(503, e);
  }

  std::size_t start = 0;
  while (start <= in.size()) {
    auto nl = in.find('\n', start);
    auto line = in.substr(start, nl == std::string_view::npos ? std::string_view::npos : nl - start);
    auto w = parse_watch_message(line);
    check(w);
    if (w) check_printable(w->cancel_reason);
    if (nl == std::string_view::npos) break;
    start = nl + 1;
  }

  std::string decoded;
  if (base64_decode_bytes(in, decoded)) {
    if (base64_encode_bytes(decoded) != in) std::abort();
  } else if (!decoded.empty()) {
    std::abort();  // a failed decode leaves nothing behind
  }
  return 0;
}
