// Conversions between meshd's address values and Asio's TCP endpoints, for
// the control plane's network edges.
#pragma once

#include "common/ip.h"

#include <boost/asio/ip/tcp.hpp>

#include <sys/socket.h>

#include <cstring>

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

}  // namespace meshd::controlplane
