// The underlay of the multi-node tests: a bridge in a namespace of its own,
// to which each node namespace is connected by a veth ("eth0" in the node).
// IPv6 is off on it: the kernel's own link-local chatter (router
// solicitations, MLD reports) would muddy "only WireGuard crosses it".
#pragma once

#include "tests/support/netns.h"

#include <signal.h>

#include <chrono>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>

namespace meshd::testing {

// Throws with `what` when a set-up command failed.
inline void must(int rc, const std::string& what = "set-up command") {
  if (rc != 0) throw std::runtime_error(what + " failed (status " + std::to_string(rc) + ")");
}

class Underlay {
 public:
  explicit Underlay(const std::string& prefix = "mu") : ns_(std::make_unique<Netns>(prefix)) {
    must(ns_->run("sysctl -qw net.ipv6.conf.default.disable_ipv6=1 net.ipv6.conf.all.disable_ipv6=1"),
         "disable IPv6 on the underlay");
    // IGMP noise off (snooping).
    must(ns_->run("ip link add br0 type bridge mcast_snooping 0"), "add the underlay bridge");
    must(ns_->run("ip link set br0 up"), "set the underlay bridge up");
  }
  Netns& ns() { return *ns_; }

  // A veth `port` on the bridge whose other end is "eth0" in `node`, with
  // `address` (e.g. "172.31.77.1/24"), both ends up.
  void attach(const Netns& node, const std::string& port, const std::string& address) {
    must(sh("ip link add " + port + " netns " + ns_->name() + " type veth peer name eth0 netns " +
            node.name()),
         "add underlay veth " + port);
    must(ns_->run("ip link set " + port + " master br0 up"), "bridge " + port);
    must(node.run("ip addr add " + address + " dev eth0"), "address " + address);
    must(node.run("ip link set eth0 up"), "eth0 up in " + node.name());
  }

 private:
  std::unique_ptr<Netns> ns_;
};

// Ends, by PID, every process left in a namespace the test made (wireguard-go
// outlives meshd by design; nothing else of anyone's runs there), so the
// namespace can go.
inline void end_processes_in(const Netns& ns) {
  for (int attempt = 0; attempt < 50; ++attempt) {
    std::string pids = sh_out("ip netns pids " + ns.name() + " 2>/dev/null");
    if (pids.find_first_of("0123456789") == std::string::npos) return;
    std::istringstream in(pids);
    for (pid_t pid; in >> pid;) ::kill(pid, SIGKILL);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

}  // namespace meshd::testing
