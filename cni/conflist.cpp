#include "cni/conflist.h"

#include "common/atomic_file.h"

#include "cni/config.h"

#include <boost/json.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <sstream>

namespace meshd::cni {

namespace json = boost::json;

std::string render_conflist(const ConflistOptions& opts) {
  json::object plugin;
  plugin["type"] = kPluginType;
  plugin["database"] = opts.database;
  if (opts.mtu) plugin["mtu"] = *opts.mtu;
  if (!opts.log_file.empty()) plugin["logFile"] = opts.log_file;
  json::object o;
  o["cniVersion"] = opts.cni_version;
  json::array versions;
  for (auto v : kSupportedVersions) versions.emplace_back(v);
  o["cniVersions"] = std::move(versions);
  o["name"] = opts.network_name;
  o["plugins"] = json::array{std::move(plugin)};
  // Keys in a stable order for a readable file: serialise by hand around the
  // one nested array.
  std::ostringstream s;
  s << "{\n"
    << "  \"cniVersion\": " << json::serialize(o["cniVersion"]) << ",\n"
    << "  \"cniVersions\": " << json::serialize(o["cniVersions"]) << ",\n"
    << "  \"name\": " << json::serialize(o["name"]) << ",\n"
    << "  \"plugins\": [\n    " << json::serialize(o["plugins"].get_array()[0]) << "\n  ]\n"
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

}  // namespace meshd::cni
