// Parsing of everything a runtime hands the plugin: the CNI_* environment
// and the plugin's network configuration on stdin. Pure: no I/O, so every
// rule (and every error code) is unit-tested and fuzzed.
#pragma once

#include "cni/cni_error.h"
#include "cni/spec.h"
#include "common/ip.h"

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace meshd::cni {

inline constexpr std::string_view kPluginType = "meshd-cni";
inline constexpr std::string_view kDefaultDatabase = "/var/lib/meshd/meshd.db";

// The CNI_* variables, validated for the command they come with.
struct CniEnv {
  Command command = Command::kVersion;
  std::string container_id;  // CNI_CONTAINERID
  std::string netns;         // CNI_NETNS; may be empty on DEL. Only its form is checked
                             // here; open_container_netns() checks what it names.
  std::string ifname;        // CNI_IFNAME
  std::vector<std::pair<std::string, std::string>> args;  // CNI_ARGS, in order
  std::string path;          // CNI_PATH (we delegate to nothing; kept for logs)
};

// Reads variables through `getenv` (std::getenv in the binary, a map in tests).
CniResult<CniEnv> parse_env(const std::function<const char*(const char*)>& getenv);

// "K1=V1;K2=V2" (SPEC: alphanumeric key-value pairs separated by semicolons).
// A pair without '=' or with an empty key is code 4 naming CNI_ARGS.
CniResult<std::vector<std::pair<std::string, std::string>>> parse_cni_args(std::string_view text);

// CNI_IFNAME follows meshd::valid_interface_name (common/ifname.h).
// Container IDs: [A-Za-z0-9][A-Za-z0-9_.-]*
bool valid_container_id(std::string_view id);

// What a previous ADD returned, as far as CHECK and DEL care.
struct PrevInterface {
  std::string name;
  std::string mac;
  std::string sandbox;
};
struct PrevIp {
  IpPrefix address;  // with its prefix length
  std::optional<IpAddress> gateway;
  std::optional<int> interface;
};
struct PrevResult {
  std::vector<PrevInterface> interfaces;
  std::vector<PrevIp> ips;
};

struct Attachment {
  std::string container_id;
  std::string ifname;
  auto operator<=>(const Attachment&) const = default;
};

// The plugin's own entry of the conflist, as the runtime passes it on stdin.
struct PluginConfig {
  std::string cni_version;
  std::string name;  // network name: part of every lease key
  std::string type;
  std::string database = std::string(kDefaultDatabase);
  std::optional<unsigned> mtu;  // overrides the node's mesh MTU when set
  std::string log_file;
  std::string dns_json;  // the "dns" object, re-serialised, echoed in ADD results
  std::optional<PrevResult> prev_result;
  // GC only: `cni.dev/valid-attachments` (or the older `cni.dev/attachments`).
  std::optional<std::vector<Attachment>> valid_attachments;
};

// Parses stdin. Errors: not a JSON object (6); a missing or mistyped field
// (7, naming it); an unsupported cniVersion (1); a field of our section we do
// not know (2, naming it).
CniResult<PluginConfig> parse_config(std::string_view json);

// For VERSION only: the cniVersion the runtime speaks, if stdin says one.
std::optional<std::string> requested_version(std::string_view json);

}  // namespace meshd::cni
