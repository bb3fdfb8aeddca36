// Conversions between meshd's address values and Asio's TCP endpoints, for
// the control plane's network edges.
#pragma once

#include "common/ip.h"
#include "common/result.h"
#include "common/unique_fd.h"

#include <boost/asio/ip/tcp.hpp>

#include <sys/socket.h>

#include <cstring>
#include <string>

namespace meshd::controlplane {

inline boost::asio::ip::tcp::endpoint to_asio(const Endpoint& e) {
  sockaddr_storage ss{};
  const std::size_t len = e.to_sockaddr(ss);
  boost::asio::ip::tcp::endpoint out;
  std::memcpy(out.data(), &ss, len);
  out.resize(len);
  return out;
}

inline Endpoint from_asio(const boost::asio::ip::tcp::endpoint& e) {
  auto r = Endpoint::from_sockaddr(e.data(), e.size());
  return r ? *r : Endpoint{};
}

// Opens `a` listening on `at` (close-on-exec, SO_REUSEADDR); throws
// ErrorException naming `where` on failure.
inline void listen_on(boost::asio::ip::tcp::acceptor& a, const Endpoint& at, const std::string& where) {
  using boost::asio::ip::tcp;
  const tcp::endpoint ep = to_asio(at);
  boost::system::error_code ec;
  if (!a.open(ep.protocol(), ec)) {
    set_cloexec(a.native_handle());
    a.set_option(tcp::acceptor::reuse_address(true), ec);
  }
  if (!ec) a.bind(ep, ec);
  if (!ec) a.listen(boost::asio::socket_base::max_listen_connections, ec);
  if (ec) throw ErrorException(fail(ec.value(), where));
}

}  // namespace meshd::controlplane
