// Opens CNI_NETNS for ADD and CHECK without trusting it: a path a runtime
// (or anyone who can exec the plugin) hands over might be a FIFO (a blocking
// open would hang the plugin), a regular file, another kind of namespace, or
// the node's own network namespace.
#pragma once

#include "cni/cni_error.h"
#include "cni/netns_facts.h"
#include "netlink/netns.h"

#include <string>

namespace meshd::cni {

// Opens with O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY (a FIFO opens at
// once, a terminal never becomes ours), gathers NetnsFacts and applies
// check_container_netns() against /proc/self/ns/net.
CniResult<nl::NetnsFd> open_container_netns(const std::string& path);

// The facts alone (for tests): `path` opened as above, then closed.
NetnsFacts netns_facts(const std::string& path);

}  // namespace meshd::cni
