#include "cni/conflist.h"

#include "common/atomic_file.h"

#include "cni/config.h"

#include <boost/json.hpp>

#include <unistd.h>

#include <algorithm>
#include <array>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace meshd::cni {

namespace json = boost::json;

const ChainedPluginSpec* find_chainable(std::string_view type) {
  for (const auto& p : kChainablePlugins)
    if (p.type == type) return &p;
  return nullptr;
}

std::string default_conflist_name(const std::string& network) {
  return "05-" + network + ".conflist";
}

std::string legacy_conflist_name(const std::string& network) {
  return "10-" + network + ".conflist";
}

bool is_meshd_conflist(std::string_view text) {
  boost::system::error_code ec;
  auto v = json::parse(text, ec);
  if (ec || !v.is_object()) return false;
  const auto* plugins = v.as_object().if_contains("plugins");
  if (!plugins || !plugins->is_array() || plugins->as_array().empty()) return false;
  const auto& first = plugins->as_array()[0];
  if (!first.is_object()) return false;
  const auto* type = first.as_object().if_contains("type");
  return type && type->is_string() && type->as_string() == kPluginType;
}

namespace {

// "1.0.0" <= "1.1.0" for the x.y.z versions CNI uses.
bool version_at_most(std::string_view v, std::string_view max) {
  auto parts = [](std::string_view s) {
    std::array<unsigned, 3> p{};
    std::size_t i = 0;
    for (char c : s) {
      if (c == '.') {
        if (++i == p.size()) break;
      } else if (c >= '0' && c <= '9') {
        p[i] = p[i] * 10 + static_cast<unsigned>(c - '0');
      }
    }
    return p;
  };
  return parts(v) <= parts(max);
}

std::vector<const ChainedPluginSpec*> chained_specs(const ConflistOptions& opts) {
  std::vector<const ChainedPluginSpec*> out;
  for (const auto& t : opts.chained)
    if (const auto* p = find_chainable(t)) out.push_back(p);
  return out;
}

}  // namespace

std::vector<std::string> declared_versions(const ConflistOptions& opts) {
  const bool chained = !chained_specs(opts).empty();
  std::vector<std::string> out;
  for (auto v : kSupportedVersions)
    if (!chained || version_at_most(v, kChainedMaxVersion)) out.emplace_back(v);
  return out;
}

std::string render_conflist(const ConflistOptions& opts) {
  json::object plugin;
  plugin["type"] = kPluginType;
  plugin["database"] = opts.database;
  if (opts.mtu) plugin["mtu"] = *opts.mtu;
  if (!opts.log_file.empty()) plugin["logFile"] = opts.log_file;
  std::vector<json::object> entries{std::move(plugin)};
  for (const auto* p : chained_specs(opts)) {
    json::object e;
    e["type"] = p->type;
    e["capabilities"] = json::object{{p->capability, true}};
    entries.push_back(std::move(e));
  }
  const auto versions = declared_versions(opts);
  std::string version = opts.cni_version;
  if (std::find(versions.begin(), versions.end(), version) == versions.end())
    version = versions.back();
  json::array vs;
  for (const auto& v : versions) vs.emplace_back(v);
  // Keys in a stable order for a readable file: serialise by hand around the
  // one nested array.
  std::ostringstream s;
  s << "{\n"
    << "  \"cniVersion\": " << json::serialize(json::string(version)) << ",\n"
    << "  \"cniVersions\": " << json::serialize(vs) << ",\n"
    << "  \"name\": " << json::serialize(json::string(opts.network_name)) << ",\n"
    << "  \"plugins\": [\n";
  for (std::size_t i = 0; i < entries.size(); ++i)
    s << "    " << json::serialize(entries[i]) << (i + 1 < entries.size() ? ",\n" : "\n");
  s << "  ]\n"
    << "}\n";
  return s.str();
}

Result<void> write_conflist(const std::string& path, const ConflistOptions& opts) {
  const std::string content = render_conflist(opts);
  {
    std::ifstream in(path, std::ios::binary);
    if (in) {
      std::string old((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      if (old == content) return {};
    }
  }
  return write_file_atomically(path, content, 0644);
}

std::vector<std::string> configs_sorting_before(const std::vector<std::string>& names,
                                                const std::string& ours) {
  auto is_config = [](const std::string& n) {
    for (std::string_view ext : {".conf", ".conflist", ".json"})
      if (n.size() > ext.size() && n.compare(n.size() - ext.size(), ext.size(), ext) == 0)
        return true;
    return false;
  };
  std::vector<std::string> out;
  for (const auto& n : names)
    if (is_config(n) && n < ours) out.push_back(n);
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::string> configs_sorting_before_in(const std::string& dir, const std::string& ours) {
  std::vector<std::string> names;
  std::error_code ec;
  for (std::filesystem::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec))
    if (it->is_regular_file(ec)) names.push_back(it->path().filename().string());
  return configs_sorting_before(names, ours);
}

std::vector<std::string> installed_plugins(const std::vector<std::string>& wanted,
                                           const std::vector<std::string>& bin_dirs,
                                           std::vector<std::string>* missing) {
  std::vector<std::string> out;
  for (const auto& type : wanted) {
    bool found = false;
    for (const auto& d : bin_dirs)
      if (!found && ::access((d + "/" + type).c_str(), X_OK) == 0) found = true;
    if (found)
      out.push_back(type);
    else if (missing)
      missing->push_back(type);
  }
  return out;
}

}  // namespace meshd::cni
