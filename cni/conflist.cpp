#include "cni/conflist.h"

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
  auto slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  std::string tmp = path + ".tmp-XXXXXX";
  int fd = ::mkstemp(tmp.data());
  if (fd < 0) return fail(errno, "create a temporary file next to " + path);
  auto cleanup = [&](int err, const std::string& what) -> Result<void> {
    ::close(fd);
    ::unlink(tmp.c_str());
    return fail(err, what);
  };
  if (::fchmod(fd, 0644) != 0) return cleanup(errno, "chmod " + tmp);
  std::size_t off = 0;
  while (off < content.size()) {
    ssize_t n = ::write(fd, content.data() + off, content.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      return cleanup(errno, "write " + tmp);
    }
    off += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0) return cleanup(errno, "fsync " + tmp);
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    return fail(err, "rename " + tmp + " to " + path);
  }
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);  // the rename itself survives a crash
    ::close(dfd);
  }
  return {};
}

}  // namespace meshd::cni
