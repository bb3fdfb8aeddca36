#include "cni/config.h"

#include "common/ifname.h"

#include <boost/json.hpp>

#include <linux/limits.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <set>

namespace meshd::cni {

namespace json = boost::json;

std::optional<Command> parse_command(std::string_view text) {
  if (text == "ADD") return Command::kAdd;
  if (text == "DEL") return Command::kDel;
  if (text == "CHECK") return Command::kCheck;
  if (text == "VERSION") return Command::kVersion;
  if (text == "STATUS") return Command::kStatus;
  if (text == "GC") return Command::kGc;
  return std::nullopt;
}

std::string_view to_string(Command c) {
  switch (c) {
    case Command::kAdd: return "ADD";
    case Command::kDel: return "DEL";
    case Command::kCheck: return "CHECK";
    case Command::kVersion: return "VERSION";
    case Command::kStatus: return "STATUS";
    case Command::kGc: return "GC";
  }
  return "?";
}

bool valid_container_id(std::string_view id) {
  if (id.empty() || !std::isalnum(static_cast<unsigned char>(id[0]))) return false;
  return std::all_of(id.begin(), id.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-';
  });
}

CniResult<std::vector<std::pair<std::string, std::string>>> parse_cni_args(std::string_view text) {
  std::vector<std::pair<std::string, std::string>> out;
  while (!text.empty()) {
    auto semi = text.find(';');
    std::string_view pair = text.substr(0, semi);
    text = semi == std::string_view::npos ? std::string_view{} : text.substr(semi + 1);
    if (pair.empty()) continue;  // "A=1;;B=2" and a trailing ';' are harmless
    auto eq = pair.find('=');
    if (eq == std::string_view::npos || eq == 0)
      return cni_error(kInvalidEnvironment, "invalid CNI_ARGS",
                       "expected KEY=VALUE pairs separated by ';', got \"" + std::string(pair) +
                           "\"");
    out.emplace_back(std::string(pair.substr(0, eq)), std::string(pair.substr(eq + 1)));
  }
  return out;
}

namespace {

CniError env_error(const char* var, std::string details) {
  return cni_error(kInvalidEnvironment, std::string("invalid ") + var, std::move(details));
}

}  // namespace

CniResult<CniEnv> parse_env(const std::function<const char*(const char*)>& getenv) {
  auto get = [&](const char* name) -> std::optional<std::string> {
    const char* v = getenv(name);
    if (!v) return std::nullopt;
    return std::string(v);
  };
  CniEnv env;
  auto cmd = get("CNI_COMMAND");
  if (!cmd || cmd->empty()) return env_error("CNI_COMMAND", "CNI_COMMAND is not set");
  auto parsed = parse_command(*cmd);
  if (!parsed)
    return env_error("CNI_COMMAND", "unknown CNI_COMMAND \"" + *cmd +
                                        "\": expected ADD, DEL, CHECK, VERSION, STATUS or GC");
  env.command = *parsed;
  env.path = get("CNI_PATH").value_or("");
  if (env.command == Command::kVersion || env.command == Command::kStatus ||
      env.command == Command::kGc)
    return env;  // SPEC: these carry no attachment

  env.container_id = get("CNI_CONTAINERID").value_or("");
  if (env.container_id.empty())
    return env_error("CNI_CONTAINERID", "CNI_CONTAINERID is not set");
  if (!valid_container_id(env.container_id))
    return env_error("CNI_CONTAINERID",
                     "CNI_CONTAINERID \"" + env.container_id +
                         "\" must start with a letter or digit followed by letters, digits, "
                         "'_', '.' or '-'");
  env.ifname = get("CNI_IFNAME").value_or("");
  if (env.ifname.empty()) return env_error("CNI_IFNAME", "CNI_IFNAME is not set");
  if (!valid_interface_name(env.ifname))
    return env_error("CNI_IFNAME", "CNI_IFNAME \"" + env.ifname +
                                       "\" is not a valid interface name: expected " +
                                       std::string(kInterfaceNameForm));
  env.netns = get("CNI_NETNS").value_or("");
  // DEL must work without a namespace (containerd sends it empty) and never
  // opens it, so whatever it is given is only kept for the log.
  if (env.command != Command::kDel) {
    if (env.netns.empty()) return env_error("CNI_NETNS", "CNI_NETNS is not set");
    if (env.netns.front() != '/')
      return env_error("CNI_NETNS", "CNI_NETNS \"" + env.netns + "\" is not an absolute path");
    if (env.netns.size() >= PATH_MAX)
      return env_error("CNI_NETNS", "CNI_NETNS is " + std::to_string(env.netns.size()) +
                                        " bytes long, longer than a path may be (PATH_MAX " +
                                        std::to_string(PATH_MAX) + ")");
  }
  auto args = parse_cni_args(get("CNI_ARGS").value_or(""));
  if (!args) return args.error();
  env.args = std::move(*args);
  return env;
}

namespace {

// Fields the spec (or libcni) defines for any plugin entry; anything else at
// the top level is our own section and must be a field we know.
const std::set<std::string, std::less<>> kStandardFields = {
    "cniVersion", "cniVersions", "name",          "type",
    "args",       "dns",         "runtimeConfig", "capabilities",
    "prevResult", "disableCheck", "disableGC",    "cni.dev/valid-attachments",
    "cni.dev/attachments",
};
const std::set<std::string, std::less<>> kOwnFields = {"database", "mtu", "logFile"};

CniError field_error(std::string_view field, std::string details) {
  return cni_error(kInvalidConfig, "invalid network configuration field \"" + std::string(field) +
                                       "\"",
                   std::move(details));
}

CniResult<std::string> string_field(const json::object& o, std::string_view field, bool required) {
  auto it = o.find(field);
  if (it == o.end() || it->value().is_null()) {
    if (required) return field_error(field, std::string(field) + " is required");
    return std::string();
  }
  if (!it->value().is_string()) return field_error(field, std::string(field) + " must be a string");
  return std::string(it->value().get_string());
}

CniResult<PrevResult> parse_prev_result(const json::value& v) {
  if (!v.is_object()) return field_error("prevResult", "prevResult must be an object");
  const auto& o = v.get_object();
  PrevResult r;
  if (auto it = o.find("interfaces"); it != o.end() && !it->value().is_null()) {
    if (!it->value().is_array())
      return field_error("prevResult.interfaces", "prevResult.interfaces must be an array");
    for (const auto& i : it->value().get_array()) {
      if (!i.is_object())
        return field_error("prevResult.interfaces", "each interface must be an object");
      PrevInterface pi;
      const auto& io = i.get_object();
      auto name = string_field(io, "name", false);
      auto mac = string_field(io, "mac", false);
      auto sandbox = string_field(io, "sandbox", false);
      if (!name || !mac || !sandbox)
        return field_error("prevResult.interfaces", "name, mac and sandbox must be strings");
      pi.name = *name;
      pi.mac = *mac;
      pi.sandbox = *sandbox;
      r.interfaces.push_back(std::move(pi));
    }
  }
  if (auto it = o.find("ips"); it != o.end() && !it->value().is_null()) {
    if (!it->value().is_array()) return field_error("prevResult.ips", "prevResult.ips must be an array");
    for (const auto& i : it->value().get_array()) {
      if (!i.is_object()) return field_error("prevResult.ips", "each ip must be an object");
      const auto& io = i.get_object();
      auto addr = string_field(io, "address", true);
      if (!addr) return field_error("prevResult.ips", "each ip needs an \"address\" string");
      auto prefix = IpPrefix::parse(*addr);
      if (!prefix) return field_error("prevResult.ips", prefix.error().message);
      PrevIp ip;
      ip.address = *prefix;
      auto gw = string_field(io, "gateway", false);
      if (!gw) return field_error("prevResult.ips", "gateway must be a string");
      if (!gw->empty()) {
        auto g = IpAddress::parse(*gw);
        if (!g) return field_error("prevResult.ips", g.error().message);
        ip.gateway = *g;
      }
      if (auto ii = io.find("interface"); ii != io.end() && !ii->value().is_null()) {
        if (!ii->value().is_int64())
          return field_error("prevResult.ips", "interface must be an integer index");
        ip.interface = static_cast<int>(ii->value().get_int64());
      }
      r.ips.push_back(std::move(ip));
    }
  }
  return r;
}

CniResult<std::vector<Attachment>> parse_attachments(const json::value& v, std::string_view field) {
  if (!v.is_array()) return field_error(field, std::string(field) + " must be an array");
  std::vector<Attachment> out;
  for (const auto& a : v.get_array()) {
    if (!a.is_object())
      return field_error(field, "each attachment must be an object with containerID and ifname");
    const auto& ao = a.get_object();
    auto cid = string_field(ao, "containerID", true);
    auto ifn = string_field(ao, "ifname", true);
    if (!cid || !ifn)
      return field_error(field, "each attachment needs \"containerID\" and \"ifname\" strings");
    out.push_back({*cid, *ifn});
  }
  return out;
}

}  // namespace

std::optional<std::string> requested_version(std::string_view text) {
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec || !v.is_object()) return std::nullopt;
  auto it = v.get_object().find("cniVersion");
  if (it == v.get_object().end() || !it->value().is_string()) return std::nullopt;
  return std::string(it->value().get_string());
}

CniResult<PluginConfig> parse_config(std::string_view text) {
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec)
    return cni_error(kDecodeFailure, "failed to decode the network configuration on stdin",
                     ec.message());
  if (!v.is_object())
    return cni_error(kDecodeFailure, "failed to decode the network configuration on stdin",
                     "expected a JSON object");
  const auto& o = v.get_object();
  PluginConfig c;

  auto version = string_field(o, "cniVersion", true);
  if (!version) return version.error();
  c.cni_version = *version;
  if (!is_supported_version(c.cni_version)) {
    std::string list;
    for (auto s : kSupportedVersions) list += (list.empty() ? "" : ", ") + std::string(s);
    return cni_error(kIncompatibleVersion,
                     "incompatible CNI version \"" + c.cni_version + "\"",
                     "meshd-cni supports " + list);
  }
  auto name = string_field(o, "name", true);
  if (!name) return name.error();
  if (name->empty()) return field_error("name", "name must not be empty");
  c.name = *name;
  auto type = string_field(o, "type", true);
  if (!type) return type.error();
  if (*type != kPluginType)
    return field_error("type", "type is \"" + *type + "\", expected \"meshd-cni\"");
  c.type = *type;

  // Our own section: reject what we do not know, so a typo ("mut") does not
  // silently fall back to a default.
  for (const auto& kv : o) {
    std::string_view key = kv.key();
    if (kStandardFields.contains(key) || kOwnFields.contains(key)) continue;
    std::string details = "meshd-cni knows \"database\", \"mtu\" and \"logFile\"";
    if (key == "ipam") details = "meshd-cni does its own IPAM from the node's pod CIDR; remove \"ipam\"";
    return cni_error(kUnsupportedField, "unsupported field \"" + std::string(key) + "\"",
                     std::move(details));
  }

  auto db = string_field(o, "database", false);
  if (!db) return db.error();
  if (!db->empty()) c.database = *db;
  if (c.database.front() != '/')
    return field_error("database", "database \"" + c.database + "\" must be an absolute path");

  if (auto it = o.find("mtu"); it != o.end() && !it->value().is_null()) {
    const auto& m = it->value();
    std::int64_t mtu = -1;
    if (m.is_int64()) {
      mtu = m.get_int64();
    } else if (m.is_uint64()) {
      if (m.get_uint64() <= 65535) mtu = static_cast<std::int64_t>(m.get_uint64());
    } else if (m.is_double()) {
      // Range first: converting a double outside the target's range to an
      // integer is undefined behaviour ([conv.fpint]), so 1e300 must never
      // reach the cast. Then only whole numbers ("1400.0", "1.4e3").
      const double d = m.get_double();
      if (d >= 0 && d <= 65535 && d == std::floor(d)) mtu = static_cast<std::int64_t>(d);
    }
    // 68: the IPv4 minimum (RFC 791); 65535: the veth maximum.
    if (mtu < 68 || mtu > 65535) return field_error("mtu", "mtu must be an integer from 68 to 65535");
    c.mtu = static_cast<unsigned>(mtu);
  }
  auto log = string_field(o, "logFile", false);
  if (!log) return log.error();
  c.log_file = *log;

  if (auto it = o.find("dns"); it != o.end() && !it->value().is_null()) {
    if (!it->value().is_object()) return field_error("dns", "dns must be an object");
    c.dns_json = json::serialize(it->value());
  }
  if (auto it = o.find("prevResult"); it != o.end() && !it->value().is_null()) {
    auto prev = parse_prev_result(it->value());
    if (!prev) return prev.error();
    c.prev_result = std::move(*prev);
  }
  for (std::string_view field : {"cni.dev/valid-attachments", "cni.dev/attachments"}) {
    auto it = o.find(field);
    if (it == o.end() || it->value().is_null()) continue;
    auto list = parse_attachments(it->value(), field);
    if (!list) return list.error();
    if (!c.valid_attachments) c.valid_attachments.emplace();
    // libcni sends both keys with the same list; the union is what is valid.
    for (auto& a : *list)
      if (std::find(c.valid_attachments->begin(), c.valid_attachments->end(), a) ==
          c.valid_attachments->end())
        c.valid_attachments->push_back(std::move(a));
  }
  return c;
}

}  // namespace meshd::cni
