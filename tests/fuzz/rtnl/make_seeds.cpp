// Writes the seeds of rtnl_parse_fuzz into SEED_DIR from the raw kernel
// replies in CAPTURE_DIR (links.bin, addrs.bin, routes4.bin, routes6.bin,
// error_ext_ack.bin: datagrams a NETLINK_ROUTE socket received for dumps in a
// test namespace, and an extended-ack error). Each seed is one operation byte
// (see rtnl_parse_fuzz.cpp) and the datagrams for it in the replay format of
// tests/unit/rtnl/replay_transport.h, stamped with the replay socket's port
// id and sequence numbers.
// Usage: rtnl_fuzz_seeds CAPTURE_DIR SEED_DIR
#include "netlink/nl_socket.h"
#include "tests/unit/rtnl/replay_transport.h"

#include <libmnl/libmnl.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>

#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>

using namespace meshd;
using meshd::testing::ack_datagram;
using testing::Datagram;

namespace {

Datagram read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) {
    std::fprintf(stderr, "cannot read %s\n", path.c_str());
    std::exit(1);
  }
  return Datagram(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

void write(const std::string& path, std::uint8_t op, const std::vector<Datagram>& datagrams) {
  auto bytes = testing::join_frames(datagrams);
  bytes.insert(bytes.begin(), op);
  std::ofstream(path, std::ios::binary)
      .write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  std::printf("%s: %zu datagrams, %zu bytes\n", path.c_str(), datagrams.size(), bytes.size());
}

std::vector<Datagram> messages(const Datagram& d) {
  std::vector<Datagram> out;
  (void)nl::for_each_message(d, [&](const nlmsghdr& m) -> Result<void> {
    const auto* p = reinterpret_cast<const std::uint8_t*>(&m);
    out.emplace_back(p, p + NLMSG_ALIGN(m.nlmsg_len));
    return {};
  });
  return out;
}

Datagram done(std::uint32_t seq) {
  Datagram d(NLMSG_HDRLEN + sizeof(int), 0);
  nlmsghdr* h = mnl_nlmsg_put_header(d.data());
  h->nlmsg_type = NLMSG_DONE;
  h->nlmsg_flags = NLM_F_MULTI;
  mnl_nlmsg_put_extra_header(h, sizeof(int));
  testing::stamp(d, seq);
  return d;
}

// A dump reply: the captured messages (without any NLMSG_DONE of their own),
// then NLMSG_DONE, all with sequence number `seq`.
Datagram dump(const Datagram& capture, std::uint32_t seq) {
  Datagram out;
  for (auto& m : messages(capture)) {
    nlmsghdr h;
    std::memcpy(&h, m.data(), sizeof h);
    if (h.nlmsg_type == NLMSG_DONE) continue;
    out.insert(out.end(), m.begin(), m.end());
  }
  auto d = done(seq);
  out.insert(out.end(), d.begin(), d.end());
  testing::stamp(out, seq);
  return out;
}

// Events carry sequence number 0 and port id 0 (the kernel's multicast).
Datagram events(const Datagram& capture) {
  Datagram out = dump(capture, 0);
  out.resize(out.size() - NLMSG_ALIGN(NLMSG_HDRLEN + sizeof(int)));  // no NLMSG_DONE
  testing::stamp(out, 0, 0);
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s CAPTURE_DIR SEED_DIR\n", argv[0]);
    return 2;
  }
  const std::string in = argv[1], out = argv[2];
  Datagram links = read_file(in + "/links.bin"), addrs = read_file(in + "/addrs.bin"),
           routes4 = read_file(in + "/routes4.bin"), routes6 = read_file(in + "/routes6.bin"),
           ext_ack = read_file(in + "/error_ext_ack.bin");

  write(out + "/list_links.bin", 0, {dump(links, 1)});
  write(out + "/list_addresses.bin", 1, {dump(addrs, 1)});
  write(out + "/list_routes4.bin", 2, {dump(routes4, 1)});
  // Across datagrams, and interrupted once first (re-requested with seq 2).
  Datagram intr = dump(routes6, 1);
  reinterpret_cast<nlmsghdr*>(intr.data())->nlmsg_flags |= NLM_F_DUMP_INTR;
  std::vector<Datagram> r6 = {intr};
  for (auto& m : messages(dump(routes6, 2))) r6.push_back(m);
  write(out + "/list_routes6_interrupted.bin", 2, r6);

  // route_mtu: RTM_GETROUTE answered by one route and an ack, then
  // RTM_GETLINK for its interface answered by one link and an ack.
  Datagram route = messages(routes4).at(0), link = messages(links).at(0);
  testing::stamp(route, 1);
  testing::stamp(link, 2);
  write(out + "/route_mtu.bin", 3, {route, ack_datagram(0, 1), link, ack_datagram(0, 2)});

  write(out + "/events.bin", 4, {events(links), events(addrs), events(routes4)});

  // A batch of two routes: one acked, one refused (and named by its link).
  Datagram link3 = link;
  testing::stamp(link3, 3);
  write(out + "/replace_routes.bin", 5, {ack_datagram(0, 1), ack_datagram(-EINVAL, 2), link3, ack_datagram(0, 3)});

  Datagram ext = ext_ack;
  testing::stamp(ext, 1);
  write(out + "/create_link_ext_ack.bin", 6, {ext});
  write(out + "/delete_route_missing.bin", 7, {ack_datagram(-ESRCH, 1)});
  return 0;
}
