#include "meshd/config/config.h"

#include "common/ifname.h"

#include "cni/conflist.h"
#include "common/pod_network.h"

#include <toml++/toml.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <set>
#include <sstream>

namespace meshd::config {

std::string_view to_string(BackendKind k) {
  switch (k) {
    case BackendKind::kAuto: return "auto";
    case BackendKind::kKernel: return "kernel";
    case BackendKind::kUserspace: return "userspace";
  }
  return "?";
}

std::string_view to_string(DatastoreKind k) {
  switch (k) {
    case DatastoreKind::kEmbedded: return "embedded";
    case DatastoreKind::kEtcd: return "etcd";
  }
  return "?";
}

namespace {

constexpr const char* kEtcdEndpointForm =
    "\"http://host:port\" or \"https://host:port\" (host: a.b.c.d, [ipv6] or a DNS name)";

// Text from the file, for a message: a control character would let a
// config value forge a log line, so each non-printable byte shows as '?'.
std::string shown(std::string_view text) {
  std::string out(text);
  for (char& ch : out)
    if (static_cast<unsigned char>(ch) < 0x20 || static_cast<unsigned char>(ch) > 0x7e) ch = '?';
  return out;
}

// RFC 1123 host name: dot-separated labels of 1-63 letters, digits and '-',
// not starting or ending with '-', 253 characters at most. A last label of
// digits only is no name (RFC 3696 2): "10.0.0.256" is a bad address.
bool dns_name(std::string_view h) {
  if (h.empty() || h.size() > 253) return false;
  std::size_t start = 0;
  bool last_all_digits = false;
  while (true) {
    std::size_t dot = h.find('.', start);
    std::string_view label = h.substr(start, dot == std::string_view::npos ? h.npos : dot - start);
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-')
      return false;
    last_all_digits = true;
    for (char ch : label) {
      const bool digit = ch >= '0' && ch <= '9';
      const bool alpha = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
      if (!digit && !alpha && ch != '-') return false;
      if (!digit) last_all_digits = false;
    }
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  return !last_all_digits;
}


[[noreturn]] void bad(const std::string& source, const std::string& key, const std::string& why) {
  throw ErrorException(Error::invalid(source + ": " + key + ": " + why));
}

// Walks one table, rejecting keys it does not know: a typo must not silently
// fall back to a default.
class Section {
 public:
  Section(const toml::table* t, std::string source, std::string prefix)
      : t_(t), source_(std::move(source)), prefix_(std::move(prefix)) {}

  template <class T>
  std::optional<T> get(const std::string& key, const char* expected) {
    known_.insert(key);
    if (!t_) return std::nullopt;
    const toml::node* n = t_->get(key);
    if (!n) return std::nullopt;
    if (auto v = n->value_exact<T>()) return *v;
    bad(source_, where(key), std::string("expected ") + expected);
  }

  std::string str(const std::string& key, std::string def) {
    return get<std::string>(key, "a string").value_or(std::move(def));
  }

  bool boolean(const std::string& key, bool def) {
    return get<bool>(key, "true or false").value_or(def);
  }

  std::int64_t integer(const std::string& key, std::int64_t def, std::int64_t lo, std::int64_t hi) {
    auto v = get<std::int64_t>(key, "an integer");
    if (!v) return def;
    if (*v < lo || *v > hi)
      bad(source_, where(key), "expected an integer from " + std::to_string(lo) + " to " +
                                   std::to_string(hi) + ", got " + std::to_string(*v));
    return *v;
  }

  std::vector<std::string> strings(const std::string& key) {
    known_.insert(key);
    std::vector<std::string> out;
    if (!t_) return out;
    const toml::node* n = t_->get(key);
    if (!n) return out;
    const toml::array* a = n->as_array();
    if (!a) bad(source_, where(key), "expected an array of strings");
    for (const auto& e : *a) {
      auto s = e.value_exact<std::string>();
      if (!s) bad(source_, where(key), "expected an array of strings");
      out.push_back(*s);
    }
    return out;
  }

  void reject_unknown() const {
    if (!t_) return;
    for (const auto& [k, v] : *t_) {
      (void)v;
      if (!known_.count(std::string(k.str())))
        bad(source_, where(std::string(k.str())), "unknown key (check its spelling)");
    }
  }

  // Whether the key is present at all (an empty array differs from none).
  bool has(const std::string& key) const { return t_ && t_->get(key); }

  std::string where(const std::string& key) const { return prefix_.empty() ? key : prefix_ + "." + key; }

 private:
  const toml::table* t_;
  std::string source_;
  std::string prefix_;
  std::set<std::string> known_;
};

const toml::table* table_or_null(const toml::table& root, const std::string& source,
                                 const char* name) {
  const toml::node* n = root.get(name);
  if (!n) return nullptr;
  if (const toml::table* t = n->as_table()) return t;
  bad(source, name, "expected a table ([" + std::string(name) + "])");
}

bool unspecified(const IpAddress& a) {
  for (std::size_t i = 0; i < a.size(); ++i)
    if (a.bytes[i] != 0) return false;
  return true;
}

constexpr const char* kEndpointForm = "\"a.b.c.d:port\" or \"[ipv6]:port\" (no host names)";

// An "address:port" key. `any_address`: whether 0.0.0.0 / [::] (every local
// address) makes sense, as for a listener; never for a peer to connect to.
std::optional<Endpoint> endpoint(Section& sec, const std::string& source, const std::string& key,
                                 bool any_address, bool empty_is_none = false) {
  auto text = sec.get<std::string>(key, (std::string("a string, ") + kEndpointForm).c_str());
  if (!text || (empty_is_none && text->empty())) return std::nullopt;
  auto e = Endpoint::parse(*text);
  if (!e) bad(source, sec.where(key), std::string("expected ") + kEndpointForm + ", got \"" + *text + "\"");
  if (e->port == 0) bad(source, sec.where(key), "expected a port from 1 to 65535, got \"" + *text + "\"");
  if (!any_address && unspecified(e->address))
    bad(source, sec.where(key),
        "expected a concrete address to reach, not " + e->address.to_string() + " (\"" + *text + "\")");
  return *e;
}

// An absolute path, or "" where `empty_ok`.
std::string abs_path(Section& sec, const std::string& source, const std::string& key, std::string def,
                 bool empty_ok) {
  std::string v = sec.str(key, std::move(def));
  if (v.empty() && empty_ok) return v;
  if (v.empty() || v.front() != '/')
    bad(source, sec.where(key), "expected an absolute path, got \"" + v + "\"");
  return v;
}

}  // namespace

Result<EtcdEndpoint> parse_etcd_endpoint(std::string_view text) {
  // A URL's user information ("https://user:secret@host") would put a
  // password in the file, in this message and in the daemon's log.
  if (text.find('@') != std::string_view::npos)
    return Error::invalid(std::string("expected ") + kEtcdEndpointForm +
                          ", got an endpoint with '@' (not shown: credentials go in username "
                          "and password_file, never in an endpoint)");
  auto wrong = [&](const std::string& why = "") {
    return Error::invalid(std::string("expected ") + kEtcdEndpointForm + ", got \"" + shown(text) +
                          "\"" + (why.empty() ? "" : " (" + why + ")"));
  };
  EtcdEndpoint e;
  std::string_view rest;
  if (text.starts_with("https://")) {
    e.tls = true;
    rest = text.substr(8);
  } else if (text.starts_with("http://")) {
    rest = text.substr(7);
  } else {
    return wrong();
  }
  if (rest.find_first_of("/?#") != std::string_view::npos) return wrong("no path");
  std::string_view host, port;
  if (rest.starts_with("[")) {
    const auto close = rest.find(']');
    if (close == std::string_view::npos) return wrong();
    host = rest.substr(1, close - 1);
    if (close + 1 >= rest.size() || rest[close + 1] != ':') return wrong("the port is required");
    port = rest.substr(close + 2);
    // A zone ("%eth0") names an interface of this host only.
    auto a = IpAddress::parse(host);
    if (host.find('%') != std::string_view::npos || !a || !a->is_v6()) return wrong();
    e.host_is_ipv6 = true;
  } else {
    const auto colon = rest.rfind(':');
    if (colon == std::string_view::npos) return wrong("the port is required");
    host = rest.substr(0, colon);
    port = rest.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) return wrong("an IPv6 address needs brackets");
    const bool numeric = !host.empty() && host.find_first_not_of("0123456789.") == std::string_view::npos;
    if (numeric) {
      auto a = IpAddress::parse(host);
      if (!a || !a->is_v4()) return wrong();
    } else if (!dns_name(host)) {
      return wrong();
    }
  }
  if (port.empty()) return wrong("the port is required");
  if (port.size() > 5 || port.find_first_not_of("0123456789") != std::string_view::npos)
    return wrong();
  const unsigned long n = std::stoul(std::string(port));
  if (n < 1 || n > 65535) return wrong("the port is from 1 to 65535");
  e.host = std::string(host);
  e.port = static_cast<std::uint16_t>(n);
  return e;
}

namespace {

// [datastore]: after [cluster] and [join], whose presence it needs.
void parse_datastore(const toml::table& root, const std::string& source, Config& c) {
  const toml::table* table = table_or_null(root, source, "datastore");
  Section ds(table, source, "datastore");
  const std::string kind = ds.str("kind", std::string(to_string(c.datastore_kind)));
  if (kind == "embedded") c.datastore_kind = DatastoreKind::kEmbedded;
  else if (kind == "etcd") c.datastore_kind = DatastoreKind::kEtcd;
  else bad(source, "datastore.kind", "expected \"embedded\" or \"etcd\", got \"" + shown(kind) + "\"");

  c.etcd_endpoints = ds.strings("endpoints");
  c.etcd_ca_file = abs_path(ds, source, "ca_file", "", true);
  c.etcd_cert_file = abs_path(ds, source, "cert_file", "", true);
  c.etcd_key_file = abs_path(ds, source, "key_file", "", true);
  c.etcd_username = ds.str("username", "");
  c.etcd_password_file = abs_path(ds, source, "password_file", "", true);
  c.etcd_prefix = ds.str("prefix", c.etcd_prefix);
  c.etcd_timeout_ms = static_cast<unsigned>(ds.integer("timeout_ms", c.etcd_timeout_ms, 100, 60000));
  c.etcd_resync_interval_s =
      static_cast<unsigned>(ds.integer("resync_interval_s", c.etcd_resync_interval_s, 10, 86400));
  c.etcd_lease_ttl_s = static_cast<unsigned>(ds.integer("lease_ttl_s", c.etcd_lease_ttl_s, 5, 3600));
  ds.reject_unknown();

  // The etcd keys mean nothing to the embedded mode: refusing them, rather
  // than ignoring them, tells an operator who forgot kind = "etcd" that
  // this node would not use etcd at all.
  if (c.datastore_kind != DatastoreKind::kEtcd) {
    for (const char* key : {"endpoints", "ca_file", "cert_file", "key_file", "username",
                            "password_file", "prefix", "timeout_ms", "resync_interval_s",
                            "lease_ttl_s"})
      if (ds.has(key))
        bad(source, std::string("datastore.") + key,
            "applies only to kind = \"etcd\", and datastore.kind is \"embedded\"; set kind = "
            "\"etcd\" or remove it");
    return;
  }

  // etcd holds a cluster's node table: without a cluster there is nothing
  // to keep in it.
  if (!c.cluster_mode)
    bad(source, "datastore.kind",
        "\"etcd\" holds a cluster's node table, and this file has no [cluster] or [join] section; "
        "add [cluster] (to found a cluster) or [join] (to join one), or remove [datastore]");
  if (c.etcd_endpoints.empty())
    bad(source, "datastore.endpoints",
        std::string("missing: kind = \"etcd\" needs at least one endpoint, ") + kEtcdEndpointForm);
  std::set<std::string> seen;
  bool any_tls = false, any_plain = false;
  for (std::size_t i = 0; i < c.etcd_endpoints.size(); ++i) {
    const std::string key = "datastore.endpoints[" + std::to_string(i) + "]";
    auto e = parse_etcd_endpoint(c.etcd_endpoints[i]);
    if (!e) bad(source, key, e.error().message);
    (e->tls ? any_tls : any_plain) = true;
    std::string canonical = std::string(e->tls ? "https://" : "http://") + e->host + ":" +
                            std::to_string(e->port);
    for (char& ch : canonical) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    if (!seen.insert(canonical).second)
      bad(source, key, "\"" + c.etcd_endpoints[i] + "\" is listed twice; expected each endpoint once");
  }
  // Failover between endpoints must not fall back to clear text: the token
  // and the records would then travel unencrypted to whoever answers.
  if (any_tls && any_plain)
    bad(source, "datastore.endpoints",
        "mixes http:// and https:// endpoints; expected one scheme for all (failing over to an "
        "http endpoint would send credentials in clear text)");
  if (any_tls && c.etcd_ca_file.empty())
    bad(source, "datastore.ca_file",
        "missing: https endpoints need ca_file, the absolute path of the CA certificate that "
        "signed etcd's server certificates");
  if (!any_tls)
    for (const auto& [key, value] : {std::pair{"ca_file", &c.etcd_ca_file},
                                     std::pair{"cert_file", &c.etcd_cert_file},
                                     std::pair{"key_file", &c.etcd_key_file}})
      if (!value->empty())
        bad(source, std::string("datastore.") + key,
            "applies only to https endpoints, and datastore.endpoints are http; use https:// "
            "endpoints or remove it");
  if (c.etcd_cert_file.empty() != c.etcd_key_file.empty())
    bad(source, c.etcd_cert_file.empty() ? "datastore.cert_file" : "datastore.key_file",
        "missing: a client certificate needs both datastore.cert_file and datastore.key_file");
  if (!c.etcd_username.empty() && c.etcd_password_file.empty())
    bad(source, "datastore.password_file",
        "missing: datastore.username needs password_file, the absolute path of a 0600 file "
        "holding the etcd user's password");
  if (c.etcd_username.empty() && !c.etcd_password_file.empty())
    bad(source, "datastore.username",
        "missing: datastore.password_file needs username, the etcd user the password belongs to");
  if (ds.has("username") && c.etcd_username.empty())
    bad(source, "datastore.username", "expected an etcd user name, got \"\"");
  if (c.etcd_username.size() > 128 ||
      std::any_of(c.etcd_username.begin(), c.etcd_username.end(), [](char ch) {
        return static_cast<unsigned char>(ch) < 0x21 || static_cast<unsigned char>(ch) > 0x7e;
      }))
    bad(source, "datastore.username",
        "expected at most 128 printable ASCII characters without spaces, got \"" +
            shown(c.etcd_username) + "\"");

  const std::string& p = c.etcd_prefix;
  if (p.empty() || p.size() > 128 || p.front() != '/' || p.back() != '/' ||
      std::any_of(p.begin(), p.end(), [](char ch) {
        return static_cast<unsigned char>(ch) < 0x21 || static_cast<unsigned char>(ch) > 0x7e;
      }))
    bad(source, "datastore.prefix",
        "expected a key prefix starting and ending with '/', of at most 128 printable ASCII "
        "characters without spaces, like \"/meshd/\", got \"" + shown(p) + "\"");

  // Liveness keys live on a lease that a keepalive renews about every
  // third of its TTL: one keepalive may time out and its retry on the next
  // endpoint must still land before the lease expires.
  if (std::uint64_t{c.etcd_timeout_ms} * 3 > std::uint64_t{c.etcd_lease_ttl_s} * 1000)
    bad(source, "datastore.timeout_ms",
        std::to_string(c.etcd_timeout_ms) + " ms is more than a third of datastore.lease_ttl_s (" +
            std::to_string(c.etcd_lease_ttl_s) +
            " s); expected a shorter timeout or a longer lease, so that a timed-out keepalive "
            "can be retried before the lease expires");
}

}  // namespace

Config parse_config(std::string_view text, const std::string& source) {
  toml::table root;
  try {
    root = toml::parse(text, source);
  } catch (const toml::parse_error& e) {
    std::ostringstream msg;
    msg << source << ":" << e.source().begin.line << ":" << e.source().begin.column
        << ": invalid TOML: " << e.description();
    throw ErrorException(Error::invalid(msg.str()));
  }

  static const std::set<std::string> kSections = {"node", "wireguard", "userspace", "state",
                                                   "reconcile", "cni", "cluster", "join",
                                                   "liveness", "rotation", "egress", "datastore",
                                                   "api", "peers"};
  for (const auto& [k, v] : root) {
    (void)v;
    if (!kSections.count(std::string(k.str())))
      bad(source, std::string(k.str()),
          "unknown section (expected one of node, wireguard, userspace, state, reconcile, cni, "
          "cluster, join, liveness, rotation, egress, datastore, api, peers)");
  }

  Config c;
  c.source = source;

  Section node(table_or_null(root, source, "node"), source, "node");
  c.node_name = node.str("name", "");
  if (auto cidr = node.get<std::string>("pod_cidr", "a string like \"10.244.1.0/24\"")) {
    auto p = IpPrefix::parse(*cidr);
    if (!p) bad(source, "node.pod_cidr", p.error().message);
    if (p->network() != *p)
      bad(source, "node.pod_cidr",
          "\"" + *cidr + "\" has host bits set; did you mean " + p->network().to_string() + "?");
    // The CNI plugin refuses a CIDR without a gateway: refuse it here too.
    if (auto gw = pod_gateway(*p); !gw) bad(source, "node.pod_cidr", gw.error().message);
    c.pod_cidr = *p;
  }
  node.reject_unknown();

  Section wg(table_or_null(root, source, "wireguard"), source, "wireguard");
  c.interface = wg.str("interface", c.interface);
  if (auto r = check_interface_name(c.interface, source + ": wireguard.interface"); !r)
    throw ErrorException(r.error());
  c.listen_port = static_cast<std::uint16_t>(wg.integer("listen_port", c.listen_port, 1, 65535));
  std::string backend = wg.str("backend", "auto");
  if (backend == "auto") c.backend = BackendKind::kAuto;
  else if (backend == "kernel") c.backend = BackendKind::kKernel;
  else if (backend == "userspace") c.backend = BackendKind::kUserspace;
  else bad(source, "wireguard.backend", "expected \"auto\", \"kernel\" or \"userspace\", got \"" + backend + "\"");
  c.mtu = static_cast<unsigned>(wg.integer("mtu", 0, 0, 65535));
  if (c.mtu != 0 && c.mtu < 1280)
    bad(source, "wireguard.mtu", "expected 0 (derive from the underlay) or at least 1280, got " +
                                     std::to_string(c.mtu));
  c.underlay_interface = wg.str("underlay_interface", "");
  if (!c.underlay_interface.empty())
    if (auto r = check_interface_name(c.underlay_interface, source + ": wireguard.underlay_interface"); !r)
      throw ErrorException(r.error());
  c.persistent_keepalive =
      static_cast<std::uint16_t>(wg.integer("persistent_keepalive", c.persistent_keepalive, 0, 65535));
  wg.reject_unknown();

  Section us(table_or_null(root, source, "userspace"), source, "userspace");
  c.userspace_binary = us.str("binary", c.userspace_binary);
  c.userspace_socket_dir = us.str("socket_dir", c.userspace_socket_dir);
  us.reject_unknown();

  Section st(table_or_null(root, source, "state"), source, "state");
  c.database = st.str("database", c.database);
  c.runtime_dir = st.str("runtime_dir", c.runtime_dir);
  st.reject_unknown();

  Section rc(table_or_null(root, source, "reconcile"), source, "reconcile");
  c.resync_interval_ms =
      static_cast<unsigned>(rc.integer("resync_interval_ms", c.resync_interval_ms, 100, 3600000));
  rc.reject_unknown();

  Section cni(table_or_null(root, source, "cni"), source, "cni");
  c.cni_conf_dir = cni.str("conf_dir", c.cni_conf_dir);
  c.cni_network = cni.str("network", c.cni_network);
  if (c.cni_network.empty() || c.cni_network.find_first_of("/ \t") != std::string::npos)
    bad(source, "cni.network", "expected a network name without '/' or spaces, got \"" + c.cni_network + "\"");
  c.cni_conflist = cni.str("conflist", "");
  if (!c.cni_conflist.empty() &&
      (c.cni_conflist.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                        "0123456789._-") != std::string::npos ||
       c.cni_conflist.front() == '.' ||
       c.cni_conflist.size() <= 9 ||
       c.cni_conflist.compare(c.cni_conflist.size() - 9, 9, ".conflist") != 0))
    bad(source, "cni.conflist",
        "expected a file name of [A-Za-z0-9._-] ending in .conflist, not starting with '.', got \"" +
            c.cni_conflist + "\"");
  if (cni.has("bin_dirs")) c.cni_bin_dirs = cni.strings("bin_dirs");
  for (const auto& d : c.cni_bin_dirs)
    if (d.empty() || d.front() != '/')
      bad(source, "cni.bin_dirs", "expected absolute directory paths, got \"" + d + "\"");
  if (cni.has("chained_plugins")) c.cni_chained = cni.strings("chained_plugins");
  for (const auto& t : c.cni_chained)
    if (!cni::find_chainable(t))
      bad(source, "cni.chained_plugins",
          "expected plugin types from \"portmap\", \"bandwidth\", got \"" + t + "\"");
  c.cni_mtu = static_cast<unsigned>(cni.integer("mtu", 0, 0, 65535));
  if (c.cni_mtu != 0 && c.cni_mtu < 68)
    bad(source, "cni.mtu", "expected 0 (the mesh MTU) or 68 to 65535, got " + std::to_string(c.cni_mtu));
  c.cni_log_file = cni.str("log_file", "");
  if (!c.cni_log_file.empty() && c.cni_log_file.front() != '/')
    bad(source, "cni.log_file", "expected an absolute path, got \"" + c.cni_log_file + "\"");
  cni.reject_unknown();

  const toml::table* cluster_table = table_or_null(root, source, "cluster");
  const toml::table* join_table = table_or_null(root, source, "join");
  c.cluster_mode = cluster_table || join_table;
  if (c.cluster_mode && c.pod_cidr)
    bad(source, "node.pod_cidr",
        "is the static mode's pod CIDR; with a [" +
            std::string(cluster_table ? "cluster" : "join") +
            "] section the cluster allocates each node's pod CIDR: remove node.pod_cidr, or the "
            "[cluster] and [join] sections for static mode");

  Section cl(cluster_table, source, "cluster");
  if (auto cidr = cl.get<std::string>("cidr", "a string like \"10.244.0.0/16\"")) {
    auto p = IpPrefix::parse(*cidr);
    if (!p) bad(source, "cluster.cidr", p.error().message);
    if (p->network() != *p)
      bad(source, "cluster.cidr",
          "\"" + *cidr + "\" has host bits set; did you mean " + p->network().to_string() + "?");
    c.cluster_cidr = *p;
  }
  // A node's CIDR needs room for its gateway and pods: at least a /30 (v4)
  // or /126 (v6), and the cluster must hold more than one node.
  const int max_node = c.cluster_cidr.address.is_v4() ? 30 : 126;
  const bool prefix_set = cl.has("node_prefix");
  c.node_prefix_length =
      static_cast<std::uint8_t>(cl.integer("node_prefix", c.node_prefix_length, 1, 128));
  if (c.node_prefix_length <= c.cluster_cidr.length || c.node_prefix_length > max_node)
    bad(source, "cluster.node_prefix",
        std::string(prefix_set ? "" : "(default) ") + "/" + std::to_string(c.node_prefix_length) +
            " does not fit cluster.cidr " + c.cluster_cidr.to_string() + ": expected " +
            (c.cluster_cidr.length + 1 > max_node
                 ? "a larger cluster.cidr (a node prefix is at most /" + std::to_string(max_node) + ")"
                 : "a length from " + std::to_string(c.cluster_cidr.length + 1) + " to " +
                       std::to_string(max_node)));
  if (auto e = endpoint(cl, source, "join_listen", true)) c.join_listen = *e;
  c.sync_port = static_cast<std::uint16_t>(cl.integer("sync_port", c.sync_port, 1, 65535));
  // Both are TCP listeners: a wildcard join listener holds its port on the
  // mesh address too, where the sync channel binds.
  if (c.sync_port == c.join_listen.port && unspecified(c.join_listen.address))
    bad(source, "cluster.sync_port",
        std::to_string(c.sync_port) + " is also cluster.join_listen's port (" +
            c.join_listen.to_string() + ", every address); expected another port");
  c.anti_entropy_interval_ms = static_cast<unsigned>(
      cl.integer("anti_entropy_interval_ms", c.anti_entropy_interval_ms, 100, 600000));
  c.advertise_endpoint = endpoint(cl, source, "advertise_endpoint", false, true);
  cl.reject_unknown();

  Section jn(join_table, source, "join");
  c.join_target = endpoint(jn, source, "target", false);
  c.join_token_file = abs_path(jn, source, "token_file", "", true);
  jn.reject_unknown();
  if (join_table && !c.join_target)
    bad(source, "join.target",
        "missing: [join] needs target, a member's cluster.join_listen \"address:port\", and "
        "token_file");
  if (c.join_target && c.join_token_file.empty())
    bad(source, "join.token_file",
        "missing: joining through join.target needs token_file, the absolute path of a 0600 file "
        "holding the bootstrap token \"id.secret\"");

  // Liveness, rotation and egress apply on a reload like the data plane's
  // keys: nothing holds them for the process's life.
  Section lv(table_or_null(root, source, "liveness"), source, "liveness");
  c.liveness_silent_after_s =
      static_cast<unsigned>(lv.integer("silent_after_s", c.liveness_silent_after_s, 1, 31536000));
  c.liveness_prune_after_s =
      static_cast<unsigned>(lv.integer("prune_after_s", c.liveness_prune_after_s, 0, 31536000));
  lv.reject_unknown();
  // Pruning a member that is not even reported silent yet would remove a
  // node nobody was warned about.
  if (c.liveness_prune_after_s != 0 && c.liveness_prune_after_s <= c.liveness_silent_after_s)
    bad(source, "liveness.prune_after_s",
        std::to_string(c.liveness_prune_after_s) + " is not above liveness.silent_after_s (" +
            std::to_string(c.liveness_silent_after_s) +
            "); expected 0 (never prune) or more seconds than silent_after_s");

  Section rot(table_or_null(root, source, "rotation"), source, "rotation");
  c.rotation_interval_s =
      static_cast<unsigned>(rot.integer("interval_s", c.rotation_interval_s, 0, 31536000));
  c.rotation_lead_ms = static_cast<unsigned>(rot.integer("lead_ms", c.rotation_lead_ms, 100, 600000));
  c.rotation_grace_ms = static_cast<unsigned>(rot.integer("grace_ms", c.rotation_grace_ms, 0, 600000));
  rot.reject_unknown();
  // A rotation is in flight for lead + grace: a schedule shorter than that
  // would start the next one before peers have dropped the previous key.
  if (c.rotation_interval_s != 0 &&
      std::uint64_t{c.rotation_interval_s} * 1000 <= std::uint64_t{c.rotation_lead_ms} + c.rotation_grace_ms)
    bad(source, "rotation.interval_s",
        std::to_string(c.rotation_interval_s) + " s is not longer than rotation.lead_ms + rotation.grace_ms (" +
            std::to_string(c.rotation_lead_ms) + " + " + std::to_string(c.rotation_grace_ms) +
            " ms); expected 0 (rotate only on request) or a longer interval");

  Section eg(table_or_null(root, source, "egress"), source, "egress");
  c.egress_masquerade = eg.boolean("masquerade", c.egress_masquerade);
  eg.reject_unknown();

  parse_datastore(root, source, c);

  Section api(table_or_null(root, source, "api"), source, "api");
  // The socket lives in the runtime directory unless configured elsewhere:
  // two meshd with their own runtime directories never share one.
  std::string default_socket =
      !c.runtime_dir.empty() && c.runtime_dir.front() == '/' ? c.runtime_dir + "/meshd.sock" : "";
  c.api_socket = abs_path(api, source, "socket", default_socket, true);
  // sockaddr_un.sun_path holds 108 bytes, the terminating NUL included.
  if (c.api_socket.size() > 107)
    bad(source, "api.socket",
        "expected a path of at most 107 bytes (a unix socket address), got " +
            std::to_string(c.api_socket.size()));
  c.api_socket_group = api.str("socket_group", "");
  if (!c.api_socket_group.empty() &&
      (c.api_socket_group.size() > 32 || c.api_socket_group.front() == '-' ||
       c.api_socket_group.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                            "0123456789._-") != std::string::npos))
    bad(source, "api.socket_group",
        "expected a group name of 1-32 characters of [A-Za-z0-9._-], not starting with '-', got \"" +
            c.api_socket_group + "\"");
  if (!c.api_socket_group.empty() && c.api_socket.empty())
    bad(source, "api.socket_group", "is set but api.socket is \"\" (no unix socket); remove one");
  c.api_listen = endpoint(api, source, "listen", true);
  c.api_bearer_token_file = abs_path(api, source, "bearer_token_file", "", true);
  c.api_tls_cert_file = abs_path(api, source, "tls_cert_file", "", true);
  c.api_tls_key_file = abs_path(api, source, "tls_key_file", "", true);
  c.api_max_connections =
      static_cast<std::size_t>(api.integer(
      "max_connections", static_cast<std::int64_t>(c.api_max_connections), 1, 4096));
  c.api_idle_timeout_ms =
      static_cast<unsigned>(api.integer("idle_timeout_ms", c.api_idle_timeout_ms, 100, 3600000));
  api.reject_unknown();
  if (c.api_listen && c.api_bearer_token_file.empty())
    bad(source, "api.bearer_token_file",
        "missing: a TCP listener (api.listen " + c.api_listen->to_string() +
            ") needs bearer_token_file, the absolute path of a 0600 file holding the token clients send");
  const std::pair<const char*, const std::string*> tcp_only[] = {
      {"bearer_token_file", &c.api_bearer_token_file},
      {"tls_cert_file", &c.api_tls_cert_file},
      {"tls_key_file", &c.api_tls_key_file}};
  for (const auto& [key, value] : tcp_only)
    if (!c.api_listen && !value->empty())
      bad(source, std::string("api.") + key,
          "applies only to a TCP listener, and api.listen is not set; set api.listen or remove it");
  if (c.api_tls_cert_file.empty() != c.api_tls_key_file.empty())
    bad(source, c.api_tls_cert_file.empty() ? "api.tls_cert_file" : "api.tls_key_file",
        "missing: TLS needs both api.tls_cert_file and api.tls_key_file");

  if (const toml::node* n = root.get("peers")) {
    const toml::array* arr = n->as_array();
    if (!arr || !arr->is_array_of_tables())
      bad(source, "peers", "expected [[peers]] tables");
    std::size_t i = 0;
    for (const auto& e : *arr) {
      const toml::table* t = e.as_table();
      Section p(t, source, "peers[" + std::to_string(i) + "]");
      StaticPeer sp;
      sp.name = p.str("name", "peer" + std::to_string(i));
      sp.public_key = p.str("public_key", "");
      sp.endpoint = p.str("endpoint", "");
      sp.allowed_ips = p.strings("allowed_ips");
      if (auto ka = p.get<std::int64_t>("persistent_keepalive", "an integer")) {
        if (*ka < 0 || *ka > 65535)
          bad(source, p.where("persistent_keepalive"), "expected an integer from 0 to 65535");
        sp.persistent_keepalive = static_cast<std::uint16_t>(*ka);
      }
      p.reject_unknown();
      c.peers.push_back(std::move(sp));
      ++i;
    }
  }
  return c;
}

std::vector<std::string> datastore_keys_changed(const Config& running, const Config& next) {
  std::vector<std::string> out;
  auto check = [&](const char* key, bool differs) {
    if (differs) out.push_back(std::string("datastore.") + key);
  };
  check("kind", running.datastore_kind != next.datastore_kind);
  check("endpoints", running.etcd_endpoints != next.etcd_endpoints);
  check("ca_file", running.etcd_ca_file != next.etcd_ca_file);
  check("cert_file", running.etcd_cert_file != next.etcd_cert_file);
  check("key_file", running.etcd_key_file != next.etcd_key_file);
  check("username", running.etcd_username != next.etcd_username);
  check("password_file", running.etcd_password_file != next.etcd_password_file);
  check("prefix", running.etcd_prefix != next.etcd_prefix);
  check("timeout_ms", running.etcd_timeout_ms != next.etcd_timeout_ms);
  check("resync_interval_s", running.etcd_resync_interval_s != next.etcd_resync_interval_s);
  check("lease_ttl_s", running.etcd_lease_ttl_s != next.etcd_lease_ttl_s);
  return out;
}

std::string cni_conflist_path(const Config& c) {
  if (c.cni_conf_dir.empty()) return "";
  return c.cni_conf_dir + "/" +
         (c.cni_conflist.empty() ? cni::default_conflist_name(c.cni_network) : c.cni_conflist);
}

Config load_config(const std::string& path) {
  std::ifstream f(path);
  if (!f)
    throw ErrorException(Error::from_errno(errno, "read config file " + path));
  std::stringstream ss;
  ss << f.rdbuf();
  return parse_config(ss.str(), path);
}

}  // namespace meshd::config
