#include "cni/plugin.h"

#include "cni/addressing.h"
#include "cni/config.h"
#include "cni/container_netns.h"
#include "cni/naming.h"
#include "cni/plugin_log.h"
#include "cni/result.h"
#include "netlink/rtnl.h"
#include "store/database.h"
#include "store/ipam.h"
#include "store/local_node.h"


#include <fcntl.h>
#include <linux/rtnetlink.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <functional>
#include <future>
#include <memory>

namespace meshd::cni {

namespace {

using store::AttachmentKey;

CniError net_error(const Error& e) { return cni_error(kNetworkSetup, e.message); }

bool file_exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

// The store itself waits out SQLITE_BUSY for its busy timeout (10 s), also
// while hundreds of ADDs open one file at once; an error here is real.
// Never migrates: the schema is meshd's to change, and a plugin older or
// newer than the daemon is refused with both versions named.
// Lease transactions then wait in short steps and do not fsync their commit
// (burst_writer: a commit survives kill -9, not power loss, like the pods).
CniResult<std::unique_ptr<store::Database>> open_db(const PluginConfig& conf) {
  auto db = store::Database::open({.path = conf.database, .migrate = false, .burst_writer = true});
  if (!db)
    return cni_error(kIoFailure, "cannot open the meshd database " + conf.database,
                     db.error().message);
  return std::move(*db);
}

// The node's pod CIDR, when it may hand out addresses (settled).
struct NodeNetwork {
  IpPrefix cidr;
  IpAddress gateway;
  unsigned node_mtu = 0;
};

CniResult<NodeNetwork> node_network(store::Database& db, const PluginConfig& conf) {
  auto node = store::LocalNodeRepo(db).get();
  if (!node) return cni_error(kIoFailure, "cannot read this node from " + conf.database, node.error().message);
  if (!node->pod_cidr)
    return cni_error(kTryAgainLater, "this node has no pod CIDR yet",
                     "meshd assigns one when the node joins its cluster; retry later");
  if (!node->pod_cidr_settled)
    return cni_error(kTryAgainLater,
                     "this node's pod CIDR " + node->pod_cidr->to_string() + " is not settled yet",
                     "meshd settles it once the cluster has acknowledged it; retry later");
  auto gw = pod_gateway(*node->pod_cidr);
  if (!gw) return cni_error(kInvalidConfig, gw.error().message);
  return NodeNetwork{node->pod_cidr->network(), *gw, node->mtu};
}

// ptp does the same: a host that routes pods must forward.
Result<void> enable_ip_forward() {
  const char* path = "/proc/sys/net/ipv4/ip_forward";
  int fd = ::open(path, O_RDWR | O_CLOEXEC);
  if (fd < 0) return fail(errno, std::string("open ") + path);
  char c = 0;
  Result<void> r;
  if (::read(fd, &c, 1) != 1 || c != '1') {
    if (::pwrite(fd, "1", 1, 0) != 1) r = fail(errno, std::string("enable IPv4 forwarding in ") + path);
  }
  ::close(fd);
  return r;
}

// Undo steps of a half-done ADD, run in reverse unless the ADD completes.
class Rollback {
 public:
  ~Rollback() {
    if (done_) return;
    for (auto it = steps_.rbegin(); it != steps_.rend(); ++it) (*it)();
  }
  void add(std::function<void()> f) { steps_.push_back(std::move(f)); }
  void commit() { done_ = true; }

 private:
  std::vector<std::function<void()>> steps_;
  bool done_ = false;
};

CniResult<void> injected_failure(const InvokeOptions& opts, std::string_view step) {
  if (opts.fail_after && opts.fail_after(step))
    return cni_error(kNetworkSetup, "injected failure after step \"" + std::string(step) + "\"",
                     "test build");
  return {};
}

// Tells this ADD's claim on a lease from a concurrent ADD's (see
// store::Ipam::release_if_claimed): random, non-zero.
std::int64_t new_claimant() {
  std::uint64_t v = 0;
  while (v == 0) {
    if (::getrandom(&v, sizeof v, 0) != static_cast<ssize_t>(sizeof v)) v = 0;
    v &= 0x7fffffffffffffffULL;
  }
  return static_cast<std::int64_t>(v);
}

nl::Route pod_route(const IpPrefix& dst, int oif, std::optional<IpAddress> gw, bool link_scope) {
  nl::Route r;
  r.dst = dst;
  r.oif = oif;
  r.gateway = gw;
  r.protocol = nl::kMeshdCniRouteProtocol;
  r.scope = link_scope ? RT_SCOPE_LINK : RT_SCOPE_UNIVERSE;
  return r;
}

IpPrefix host_prefix(const IpAddress& a) { return IpPrefix{a, 32}; }

// ---- ADD -------------------------------------------------------------------
// Steps, each undone by the rollback if a later one fails: lease (on another
// thread), veth pair, host end, host route, pod end (address, then routes).

CniError lease_error(const Error& e) {
  if (e.is(ENOSPC)) return cni_error(kPoolExhausted, e.message);
  return cni_error(kIoFailure, "cannot allocate an address", e.message);
}

// The pod's interface must not exist yet (SPEC: ADD, error 102 is ours to
// report; the runtime picks CNI_IFNAME).
CniResult<void> check_pod_ifname_free(nl::Rtnl& pod, const CniEnv& env) {
  auto existing = pod.get_link(env.ifname);
  if (existing)
    return cni_error(kInterfaceExists, "interface " + env.ifname + " already exists in " + env.netns,
                     "pick another CNI_IFNAME or delete the interface first");
  if (!existing.error().is(ENODEV)) return net_error(existing.error());
  return {};
}

// Both ends in one request: the pod end is born in the pod's namespace.
CniResult<void> create_pair(nl::Rtnl& host, const std::string& host_name, const CniEnv& env,
                            int pod_netns_fd, unsigned mtu) {
  if (auto r = host.create_veth(host_name, env.ifname, pod_netns_fd, mtu); !r) {
    if (r.error().is(EEXIST))
      return cni_error(kNetworkSetup, "host interface " + host_name + " already exists",
                       "a leftover of an earlier attachment? DEL or GC it first (" +
                           r.error().message + ")");
    return net_error(r.error());
  }
  return {};
}

// Host end: the gateway as a /32 (as ptp does), up.
CniResult<nl::Link> set_up_host_end(nl::Rtnl& host, const std::string& host_name,
                                    const IpAddress& gateway) {
  auto link = host.get_link(host_name);
  if (!link) return net_error(link.error());
  if (auto r = host.add_address({link->index, host_prefix(gateway)}); !r) return net_error(r.error());
  if (auto r = host.set_up(host_name, true); !r) return net_error(r.error());
  return *link;
}

// The node reaches the pod through a /32 on the host end, and forwards.
CniResult<void> route_to_pod(nl::Rtnl& host, int host_index, const IpAddress& pod_address) {
  if (auto r = host.replace_route(pod_route(host_prefix(pod_address), host_index, std::nullopt, true));
      !r)
    return net_error(r.error());
  if (auto r = enable_ip_forward(); !r) return net_error(r.error());
  return {};
}

// Pod end: MTU, the leased address with the pod CIDR's prefix length, up.
CniResult<nl::Link> address_pod_end(nl::Rtnl& pod, const std::string& ifname, unsigned mtu,
                                    const IpPrefix& pod_addr) {
  auto link = pod.get_link(ifname);
  if (!link) return net_error(link.error());
  if (link->mtu != mtu)
    if (auto r = pod.set_mtu(ifname, mtu); !r) return net_error(r.error());
  if (auto r = pod.add_address({link->index, pod_addr}); !r) return net_error(r.error());
  if (auto r = pod.set_up(ifname, true); !r) return net_error(r.error());
  return *link;
}

// As ptp: the connected subnet route is replaced by routes via the gateway,
// so every packet (also to a neighbour pod) goes through the host's routing.
CniResult<void> route_pod_end(nl::Rtnl& pod, int pod_index, const NodeNetwork& net) {
  nl::Route connected;
  connected.dst = net.cidr;
  connected.oif = pod_index;
  connected.protocol = RTPROT_KERNEL;
  connected.scope = RT_SCOPE_LINK;
  if (auto r = pod.delete_route(connected); !r) return net_error(r.error());
  for (const auto& rt : {pod_route(host_prefix(net.gateway), pod_index, std::nullopt, true),
                         pod_route(*IpPrefix::parse("0.0.0.0/0"), pod_index, net.gateway, false),
                         pod_route(net.cidr, pod_index, net.gateway, false)})
    if (auto r = pod.replace_route(rt); !r) return net_error(r.error());
  return {};
}

CniResult<std::string> cmd_add(const CniEnv& env, const PluginConfig& conf,
                               const InvokeOptions& opts) {
  const AttachmentKey key{conf.name, env.container_id, env.ifname};
  auto pod_fd = open_container_netns(env.netns);
  if (!pod_fd) return pod_fd.error();
  if (!file_exists(conf.database))
    return cni_error(kTryAgainLater, "the meshd database " + conf.database + " does not exist yet",
                     "start meshd (or point \"database\" at its state file) and retry");
  auto db = open_db(conf);
  if (!db) return db.error();
  auto net = node_network(**db, conf);
  if (!net) return net.error();
  const unsigned mtu = choose_mtu(conf.mtu, net->node_mtu);
  auto pool = pool_for(net->cidr);
  if (!pool) return cni_error(kInvalidConfig, pool.error().message);

  // One visit (setns) to the pod: each costs milliseconds on a busy node.
  auto pod = nl::Rtnl::open_in_netns(pod_fd->get());
  if (!pod) return net_error(pod.error());
  if (auto r = check_pod_ifname_free(*pod, env); !r) return r.error();
  auto host = nl::Rtnl::open();
  if (!host) return net_error(host.error());

  // The lease is allocated on another thread while this one builds the veth
  // pair: the allocation's commit waits on fsync and the veth creation on
  // the kernel, and neither needs the other until the address is set.
  // Only that thread touches the database until it is joined.
  const std::string host_name = host_veth_name(conf.name, env.container_id, env.ifname);
  store::Ipam ipam(**db);
  const store::LeaseRequest request{.key = key,
                                    .pool = *pool,
                                    .host_interface = host_name,
                                    .claimant = new_claimant(),
                                    .now = static_cast<std::int64_t>(::time(nullptr))};
  auto allocation = std::async(std::launch::async, [&]() -> CniResult<store::Acquired> {
    auto acquired = ipam.acquire(request);
    if (!acquired) return lease_error(acquired.error());
    return *acquired;
  });
  std::optional<CniResult<store::Acquired>> allocated;
  auto join_allocation = [&]() -> CniResult<store::Acquired>& {
    if (!allocated) allocated = allocation.get();
    return *allocated;
  };
  Rollback rollback;
  rollback.add([&] {  // registered first, so it runs last, after the links are gone
    // Only a lease this ADD created, and only while no concurrent ADD of the
    // same attachment has claimed it since (that one may be using it).
    auto& a = join_allocation();
    if (a && a->created)
      if (auto r = ipam.release_if_claimed(key, request.claimant); !r)
        log_error("rollback: " + r.error().message);
  });

  if (auto r = create_pair(*host, host_name, env, pod_fd->get(), mtu); !r) return r.error();
  rollback.add([&] {  // the pod end and every route through it go with it
    if (auto r = host->delete_link(host_name); !r) log_error("rollback: " + r.error().message);
  });
  if (auto r = injected_failure(opts, "veth"); !r) return r.error();

  auto host_link = set_up_host_end(*host, host_name, net->gateway);
  if (!host_link) return host_link.error();
  auto& lease_result = join_allocation();
  if (!lease_result) return lease_result.error();
  const store::Lease& lease = lease_result->lease;
  if (auto r = injected_failure(opts, "lease"); !r) return r.error();
  if (auto r = route_to_pod(*host, host_link->index, lease.address); !r) return r.error();
  if (auto r = injected_failure(opts, "host-route"); !r) return r.error();

  const IpPrefix pod_addr{lease.address, net->cidr.length};
  auto pod_link = address_pod_end(*pod, env.ifname, mtu, pod_addr);
  if (!pod_link) return pod_link.error();
  if (auto r = injected_failure(opts, "pod-address"); !r) return r.error();
  if (auto r = route_pod_end(*pod, pod_link->index, *net); !r) return r.error();
  if (auto r = injected_failure(opts, "pod-routes"); !r) return r.error();

  // The MACs come with the link replies (IFLA_ADDRESS): no further lookup.
  AddResult result;
  result.interfaces.push_back({host_name, host_link->mac, "", mtu});
  result.interfaces.push_back({env.ifname, pod_link->mac, env.netns, mtu});
  result.ips.push_back({pod_addr, net->gateway, 1});
  result.routes = pod_result_routes(net->gateway);
  result.dns_json = conf.dns_json;
  rollback.commit();
  log_info("ADD " + conf.name + " " + env.container_id + " " + env.ifname + ": " +
           pod_addr.to_string() + " via " + net->gateway.to_string() + " on " + host_name +
           " (mtu " + std::to_string(mtu) + ")");
  return encode_result(result, conf.cni_version);
}

// ---- DEL -------------------------------------------------------------------

// Best effort and idempotent (SPEC: DEL): the lease goes even when the
// namespace is gone; only a store we cannot write is an error, because then
// the address would leak. The pod's CNI_IFNAME is never deleted by name:
// the veth ends are created in one RTM_NEWLINK and destroyed together, so
// deleting our host end removes exactly our pod end, and with our host end
// gone, whatever carries that name in the pod is not ours (a runtime may
// have put another interface there).
CniResult<std::string> cmd_del(const CniEnv& env, const PluginConfig& conf) {
  const AttachmentKey key{conf.name, env.container_id, env.ifname};
  const std::string host_name = host_veth_name(conf.name, env.container_id, env.ifname);

  // The lease is released on another thread while this one deletes the
  // links: the commit waits on fsync, the link deletion on the kernel
  // (unregistering a netdev waits for RCU), and they do not depend on each other.
  auto release = std::async(std::launch::async, [&]() -> std::optional<CniError> {
    if (!file_exists(conf.database)) return std::nullopt;  // nothing was ever leased
    auto db = open_db(conf);
    if (!db) return db.error();
    if (auto r = store::Ipam(**db).release(key); !r)
      return cni_error(kIoFailure,
                       "cannot release the lease of " + env.container_id + "/" + env.ifname,
                       r.error().message);
    return std::nullopt;
  });

  if (auto host = nl::Rtnl::open(); host) {
    // Only a veth: the name is ours by derivation, yet anything else under
    // it was not made by an ADD.
    if (auto link = host->get_link(host_name); link && link->kind == "veth") {
      if (auto r = host->delete_link(host_name); !r) log_warn("DEL: " + r.error().message);
    } else if (link) {
      log_warn("DEL: " + host_name + " is a " + (link->kind.empty() ? "device" : link->kind) +
               ", not a veth of ours; left alone");
    } else if (!link.error().is(ENODEV)) {
      log_warn("DEL: " + link.error().message);
    }
  } else {
    log_warn("DEL: " + host.error().message);
  }
  if (auto err = release.get()) return *err;
  log_info("DEL " + conf.name + " " + env.container_id + " " + env.ifname + " (netns \"" +
           env.netns + "\")");
  return std::string();
}

// ---- CHECK -----------------------------------------------------------------

CniError check_failed(std::string what) { return cni_error(kCheckFailed, std::move(what)); }

CniResult<std::string> cmd_check(const CniEnv& env, const PluginConfig& conf) {
  const AttachmentKey key{conf.name, env.container_id, env.ifname};
  auto pod_fd = open_container_netns(env.netns);
  if (!pod_fd) return pod_fd.error();
  if (!file_exists(conf.database))
    return check_failed("the meshd database " + conf.database + " does not exist");
  auto db = open_db(conf);
  if (!db) return db.error();
  auto net = node_network(**db, conf);
  if (!net) return net.error();
  auto lease = store::Ipam(**db).find(key);
  if (!lease) return cni_error(kIoFailure, "cannot read leases", lease.error().message);
  if (!*lease)
    return check_failed("no address lease for " + env.container_id + "/" + env.ifname + " in network " +
                        conf.name);
  const IpPrefix pod_addr{(*lease)->address, net->cidr.length};
  if (conf.prev_result) {
    bool found = false;
    for (const auto& ip : conf.prev_result->ips) found = found || ip.address == pod_addr;
    if (!found)
      return check_failed("prevResult does not list the leased address " + pod_addr.to_string());
  }

  auto pod = nl::Rtnl::open_in_netns(pod_fd->get());
  if (!pod) return net_error(pod.error());
  auto link = pod->get_link(env.ifname);
  if (!link) return check_failed("interface " + env.ifname + " is missing in " + env.netns);
  if (!link->up) return check_failed("interface " + env.ifname + " in " + env.netns + " is down");
  auto addrs = pod->list_addresses(link->index, AF_INET);
  if (!addrs) return net_error(addrs.error());
  bool has_addr = false;
  for (const auto& a : *addrs) has_addr = has_addr || a.prefix == pod_addr;
  if (!has_addr)
    return check_failed("address " + pod_addr.to_string() + " is missing on " + env.ifname);
  auto routes = pod->list_routes({.family = AF_INET, .oif = link->index});
  if (!routes) return net_error(routes.error());
  bool has_default = false, has_gw = false;
  for (const auto& r : *routes) {
    if (r.dst.length == 0 && r.gateway == net->gateway) has_default = true;
    if (r.dst == host_prefix(net->gateway)) has_gw = true;
  }
  if (!has_gw) return check_failed("route to the gateway " + net->gateway.to_string() + " is missing in the pod");
  if (!has_default)
    return check_failed("default route via " + net->gateway.to_string() + " is missing in the pod");

  auto host = nl::Rtnl::open();
  if (!host) return net_error(host.error());
  const std::string host_name = host_veth_name(conf.name, env.container_id, env.ifname);
  auto hlink = host->get_link(host_name);
  if (!hlink) return check_failed("host interface " + host_name + " is missing");
  auto hroutes = host->list_routes({.protocol = nl::kMeshdCniRouteProtocol, .family = AF_INET,
                                    .oif = hlink->index});
  if (!hroutes) return net_error(hroutes.error());
  bool has_host_route = false;
  for (const auto& r : *hroutes) has_host_route = has_host_route || r.dst == host_prefix((*lease)->address);
  if (!has_host_route)
    return check_failed("host route to " + (*lease)->address.to_string() + " via " + host_name +
                        " is missing");
  return std::string();
}

// ---- STATUS ----------------------------------------------------------------

CniResult<std::string> cmd_status(const PluginConfig& conf) {
  if (!file_exists(conf.database))
    return cni_error(kPluginNotAvailable, "the meshd database " + conf.database + " does not exist yet");
  auto db = open_db(conf);
  if (!db) return cni_error(kPluginNotAvailable, db.error().msg, db.error().details);
  auto net = node_network(**db, conf);
  if (!net) return cni_error(kPluginNotAvailable, net.error().msg, net.error().details);
  auto leases = store::Ipam(**db).list(conf.name);
  if (leases && leases->size() >= pool_capacity(net->cidr))
    return cni_error(kPluginNotAvailable,
                     "the pod address pool " + net->cidr.to_string() + " is exhausted");
  return std::string();
}

// ---- GC --------------------------------------------------------------------

// Releases the leases of this network that no valid attachment owns, and
// deletes the host veth each of them records. Interfaces are chosen by what
// the leases name, never by a name prefix: the prefix is 16 bits of the
// network name's hash, which another network may share.
CniResult<std::string> cmd_gc(const PluginConfig& conf) {
  if (!conf.valid_attachments)
    return cni_error(kInvalidConfig,
                     "invalid network configuration field \"cni.dev/valid-attachments\"",
                     "GC needs the list of valid attachments");
  std::vector<AttachmentKey> keep;
  for (const auto& a : *conf.valid_attachments) keep.push_back({conf.name, a.container_id, a.ifname});
  if (!file_exists(conf.database)) return std::string();  // nothing was ever leased
  auto db = open_db(conf);
  if (!db) return db.error();
  auto released = store::Ipam(**db).release_all_except(conf.name, keep);
  if (!released) return cni_error(kIoFailure, "cannot release stale leases", released.error().message);

  std::optional<CniError> err;
  std::optional<nl::Rtnl> host;
  for (const auto& l : *released) {
    log_info("GC " + conf.name + ": released " + l.address.to_string() + " of " +
             l.key.container_id + "/" + l.key.ifname);
    // Leases from before schema 3 record no interface: theirs is the derived name.
    const std::string name = l.host_interface.empty()
                                 ? host_veth_name(conf.name, l.key.container_id, l.key.ifname)
                                 : l.host_interface;
    if (!host) {
      auto r = nl::Rtnl::open();
      if (!r) return net_error(r.error());
      host.emplace(std::move(*r));
    }
    auto link = host->get_link(name);
    if (!link || link->kind != "veth") continue;  // already gone, or not ours
    if (auto r = host->delete_link(name); !r) {
      log_warn("GC: " + r.error().message);
      if (!err) err = net_error(r.error());
    } else {
      log_info("GC " + conf.name + ": deleted stale host interface " + name);
    }
  }
  if (err) return *err;
  return std::string();
}

}  // namespace

Reply invoke(const std::function<const char*(const char*)>& getenv, std::string_view stdin_json,
             const InvokeOptions& opts) {
  const std::string version = requested_version(stdin_json).value_or("");
  auto error_reply = [&](const CniError& e) {
    log_warn(std::to_string(e.code) + ": " + e.msg + (e.details.empty() ? "" : ": ") + e.details);
    return Reply{1, encode_error(e, version)};
  };
  auto env = parse_env(getenv);
  if (!env) return error_reply(env.error());
  if (env->command == Command::kVersion) return Reply{0, encode_version(version)};
  auto conf = parse_config(stdin_json);
  if (!conf) return error_reply(conf.error());
  log_to_file(conf->log_file);

  CniResult<std::string> out = std::string();
  try {
    switch (env->command) {
      case Command::kAdd: out = cmd_add(*env, *conf, opts); break;
      case Command::kDel: out = cmd_del(*env, *conf); break;
      case Command::kCheck: out = cmd_check(*env, *conf); break;
      case Command::kStatus: out = cmd_status(*conf); break;
      case Command::kGc: out = cmd_gc(*conf); break;
      case Command::kVersion: break;
    }
  } catch (const std::exception& e) {  // a broken invariant still answers in CNI's format
    out = cni_error(kIoFailure, std::string(to_string(env->command)) + " failed", e.what());
  }
  if (!out) return error_reply(out.error());
  return Reply{0, std::move(*out)};
}

}  // namespace meshd::cni
