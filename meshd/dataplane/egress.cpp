#include "meshd/dataplane/egress.h"

#include <linux/netlink.h>
#include <nftables/libnftables.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <memory>
#include <sstream>

namespace meshd::dataplane {

std::string egress_table_text(const EgressSpec& spec) {
  const char* family = spec.pod_cidr.address.is_v4() ? "ip" : "ip6";
  std::ostringstream t;
  // Tabs and layout as `nft list table` prints it, so a listing reads the same.
  t << "table " << kEgressTable << " {\n"
    << "\tchain postrouting {\n"
    << "\t\ttype nat hook postrouting priority srcnat; policy accept;\n"
    << "\t\t" << family << " saddr " << spec.pod_cidr.network().to_string() << " " << family
    << " daddr != " << spec.cluster_cidr.network().to_string() << " oifname != \"" << spec.mesh_interface
    << "\" masquerade\n"
    << "\t}\n"
    << "}\n";
  return t.str();
}

std::string egress_apply_script(const EgressSpec& spec) {
  // "table ... {}" creates the table when it is missing and does nothing
  // when it exists, so the delete that follows never fails: the first apply
  // and every later one are the same transaction.
  return std::string("table ") + kEgressTable + " {}\n" + "delete table " + kEgressTable + "\n" +
         egress_table_text(spec);
}

std::optional<EgressSpec> egress_for(const std::optional<IpPrefix>& pod_cidr,
                                     const std::optional<IpPrefix>& cluster_cidr,
                                     const std::string& mesh_interface, bool masquerade) {
  if (!masquerade || !pod_cidr || !cluster_cidr) return std::nullopt;
  if (pod_cidr->address.family != cluster_cidr->address.family) return std::nullopt;
  return EgressSpec{pod_cidr->network(), cluster_cidr->network(), mesh_interface};
}

std::string describe(const EgressSpec& spec) {
  return "masquerade " + spec.pod_cidr.to_string() + " to outside " + spec.cluster_cidr.to_string() +
         " (nftables table " + kEgressTable + ")";
}

namespace {

struct NftOutcome {
  bool ok = false;
  std::string output;  // what a list command printed
  std::string error;   // nftables' messages, on one line
  bool unavailable = false;  // no nf_tables in this kernel (or namespace)
};

// nftables reports an error as "Error: <reason>" followed by the command and
// a line of carets under the offending word: only the reasons are kept.
std::string error_lines(const std::string& text) {
  std::istringstream in(text);
  std::string out;
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("Error: ", 0) != 0) continue;
    if (!out.empty()) out += "; ";
    out += line.substr(7);
  }
  if (out.empty()) {
    out = text;
    while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  }
  return out.empty() ? "failed without a message" : out;
}

// Runs `commands` as one nftables transaction in the calling thread's
// network namespace. A context per call: libnftables keeps a cache of the
// ruleset in its context, and one kept between passes would go stale.
//
// libnftables ends the whole process (exit()) when it cannot open its
// netlink socket, as on a kernel without nf_tables: that is probed first
// and reported as `unavailable` instead.
NftOutcome run_nft(const std::string& commands) {
  int probe = ::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER);
  if (probe < 0) {
    NftOutcome o{false, "", "nf_tables is not available (netlink: " + std::string(std::strerror(errno)) + ")"};
    o.unavailable = true;
    return o;
  }
  ::close(probe);
  std::unique_ptr<nft_ctx, decltype(&nft_ctx_free)> ctx(nft_ctx_new(NFT_CTX_DEFAULT), &nft_ctx_free);
  if (!ctx) return {false, "", "libnftables could not create a context"};
  // Buffered: nothing of libnftables' goes to meshd's stdout or stderr.
  nft_ctx_buffer_output(ctx.get());
  nft_ctx_buffer_error(ctx.get());
  NftOutcome o;
  o.ok = nft_run_cmd_from_buffer(ctx.get(), commands.c_str()) == 0;
  if (const char* out = nft_ctx_get_output_buffer(ctx.get())) o.output = out;
  if (!o.ok) {
    const char* err = nft_ctx_get_error_buffer(ctx.get());
    o.error = error_lines(err ? err : "");
  }
  return o;
}

bool no_such_table(const NftOutcome& o) { return o.error.find("No such file or directory") != std::string::npos; }

Error nft_error(const std::string& what, const NftOutcome& o) {
  int code = o.error.find("Operation not permitted") != std::string::npos ? EPERM : EIO;
  return Error{{code, boost::system::generic_category()}, what + ": " + o.error};
}

}  // namespace

Result<void> NftEgressTable::apply(const EgressSpec& spec) {
  auto o = run_nft(egress_apply_script(spec));
  if (!o.ok) return nft_error(std::string("set nftables table ") + kEgressTable + " (" + describe(spec) + ")", o);
  return {};
}

Result<bool> NftEgressTable::remove() {
  auto o = run_nft(std::string("delete table ") + kEgressTable);
  if (o.ok) return true;
  if (no_such_table(o) || o.unavailable) return false;  // without nf_tables no table can exist
  // Where nftables cannot be used at all (no nf_tables in the kernel), no
  // table of meshd's can exist either; lacking the permission is an error.
  auto any = run_nft("list tables");
  if (!any.ok && any.error.find("Operation not permitted") == std::string::npos) return false;
  return nft_error(std::string("delete nftables table ") + kEgressTable, o);
}

Result<std::optional<std::string>> NftEgressTable::current() {
  auto o = run_nft(std::string("list table ") + kEgressTable);
  if (o.ok) return std::optional<std::string>(o.output);
  if (no_such_table(o) || o.unavailable) return std::optional<std::string>();
  return nft_error(std::string("list nftables table ") + kEgressTable, o);
}

}  // namespace meshd::dataplane
