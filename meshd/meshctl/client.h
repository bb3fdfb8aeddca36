// meshctl's HTTP/1.1 client of meshd's REST API (docs/api.md): one request
// per connection, over the unix socket (no token: the socket's file mode
// decides), plain TCP, or TLS verified against a CA file with the host name
// (or IP address) checked against the certificate. Every wait is bounded:
// connecting (resolving included) by connect_timeout, writing the request
// and reading the whole answer by the request's timeout.
#pragma once

#include "common/result.h"

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace meshd::meshctl {

inline constexpr const char* kDefaultSocket = "/run/meshd/meshd.sock";
// Answers larger than this are refused: 1000 nodes are well under 1 MiB.
inline constexpr std::size_t kMaxAnswerBytes = 64 << 20;

struct ServerUrl {
  bool tls = false;
  std::string host;  // as written, without brackets for IPv6
  std::uint16_t port = 0;
  std::string host_header;  // "host:port", brackets kept
};

// "http://HOST:PORT" or "https://HOST:PORT", an optional trailing "/", HOST a
// name, an IPv4 address or [an IPv6 address]. EINVAL naming the form.
Result<ServerUrl> parse_server_url(std::string_view url);

// The bearer token in `path`, read with read_secret_file (common/secret_file.h:
// a regular file, not a symlink, owned by root or by us, no group or other
// permission bits, at most 4 KiB); surrounding whitespace is dropped and the
// token must be printable ASCII without spaces (it becomes a header).
// Errors start with "--token-file: ", name the file and the fix, never the
// content.
Result<std::string> read_token_file(const std::string& path);

// A path segment with everything but RFC 3986 unreserved characters
// percent-encoded, so a node name or token id cannot change the route.
std::string encode_path_segment(std::string_view s);

struct ClientOptions {
  std::string socket_path = kDefaultSocket;  // used when `server` is empty
  std::string server;                        // "" or a URL for parse_server_url
  std::string bearer_token;                  // "" = no Authorization header
  std::string cacert_file;                   // https: "" = the system's CAs
  std::chrono::milliseconds connect_timeout{3000};
  std::chrono::milliseconds request_timeout{10000};
};

struct HttpAnswer {
  int status = 0;
  std::string content_type;
  std::string body;
};

class Client {
 public:
  // EINVAL for a malformed --server URL.
  static Result<Client> make(ClientOptions opts);

  // Sends one request and reads the whole answer. `timeout` overrides the
  // request timeout (long polls wait longer). A server that cannot be reached
  // is ECONNREFUSED/ENOENT/EACCES... with one sentence "cannot reach meshd at
  // WHERE: REASON (is meshd running?)"; a timeout is ETIMEDOUT.
  Result<HttpAnswer> request(std::string_view method, std::string_view target,
                             std::string_view body = {},
                             std::optional<std::chrono::milliseconds> timeout = {}) const;

  // The socket path or the server URL, for messages.
  const std::string& where() const { return where_; }

 private:
  ClientOptions opts_;
  std::optional<ServerUrl> url_;
  std::string where_;
};

// One line for an error answer: the server's `message` and `error` code when
// the body is meshd's error shape, else the HTTP status. Printable.
std::string describe_error_answer(const HttpAnswer& a);

}  // namespace meshd::meshctl
