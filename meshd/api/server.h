// The API's listener: HTTP/1.1 (keep-alive) over a unix socket and,
// optionally, TCP (plain or TLS) with a bearer token, on the caller's
// io_context. It turns bytes into a Request, hands it to Router::dispatch,
// and writes the Response back; handlers never see a socket.
//
// Limits, so that slow, stalled or hostile clients cannot disturb others or
// the loop the daemon reconciles on:
//   - a request's header and body must arrive within read_timeout of its first
//     byte (a new connection's first byte within read_timeout of the accept),
//     a keep-alive connection may wait idle_timeout for its next request, a
//     response must be taken within write_timeout; past them the connection
//     is closed;
//   - a header over max_header_bytes answers 431, a body over the router's
//     max_body_bytes 413 (enforced while parsing, before the body is read),
//     a malformed request 400; each of these closes the connection;
//   - at max_connections (all listeners together) a new connection sheds the
//     oldest idle or half-received one; only when every connection is busy
//     (a response being written, a long poll) is the new one refused.
#pragma once

#include "common/ip.h"
#include "meshd/api/router.h"

#include <boost/asio/io_context.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

namespace meshd::api {

struct ServerOptions {
  // "" = none. Created mode 0660 (group below); a stale socket at that path is
  // replaced only if it is a socket owned by our user. Its directory must exist.
  std::string unix_socket;
  // "" = keep the process's group; else the socket is chowned to it (an
  // unknown group is an error).
  std::string unix_socket_group;
  std::optional<Endpoint> tcp;  // nothing = no TCP listener
  // Required (non-empty) with tcp; compared in constant time; never logged.
  std::string bearer_token;
  // Both or neither; with them the TCP listener speaks TLS only.
  std::string tls_cert_file, tls_key_file;
  std::size_t max_connections = 64;
  std::chrono::milliseconds read_timeout{10000};
  std::chrono::milliseconds write_timeout{10000};
  std::chrono::milliseconds idle_timeout{30000};
  std::size_t max_header_bytes = 8192;
  // How often a deferred answer (a long poll) is asked again.
  std::chrono::milliseconds poll_interval{200};
};

struct ServerCounters {
  std::uint64_t connections = 0;   // accepted, all listeners
  std::uint64_t requests = 0;      // parsed and answered
  std::uint64_t shed = 0;          // closed to make room, or refused at the limit
  std::uint64_t timeouts = 0;      // closed by a read, write or idle timeout
  std::uint64_t unauthorized = 0;  // 401s on TCP
};

class Server {
 public:
  // Listens at once; throws ErrorException naming the socket or address and
  // why. `router` must outlive the server.
  Server(boost::asio::io_context& ioc, ServerOptions opts, const Router& router);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  std::optional<Endpoint> tcp_endpoint() const;  // the bound address (port 0 = ephemeral)
  const ServerCounters& counters() const;
  std::size_t open_connections() const;
  // Stops accepting, closes every connection and removes the unix socket.
  void close();

  struct State;

 private:
  std::shared_ptr<State> state_;
};

// The daemon's rule for a TCP listener, checked before constructing: one on
// an address that is neither loopback nor `mesh_address` needs TLS; one
// anywhere needs a bearer token. Returns the refusal, saying why, or nothing.
std::optional<std::string> tcp_listener_refusal(const Endpoint& listen,
                                                const std::optional<IpAddress>& mesh_address,
                                                bool has_token, bool has_tls);

// Whether an Authorization header value carries `token` as a bearer token
// (RFC 6750 2.1; the scheme is case-insensitive), compared in constant time.
bool bearer_matches(std::string_view authorization, std::string_view token);

}  // namespace meshd::api
