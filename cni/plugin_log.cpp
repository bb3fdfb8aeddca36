#include "cni/plugin_log.h"

#include <fcntl.h>
#include <sys/time.h>
#include <unistd.h>

#include <cstdio>
#include <ctime>

namespace meshd::cni {

namespace {
int g_file = -1;

void write_all(int fd, const std::string& s) {
  std::size_t off = 0;
  while (off < s.size()) {
    ssize_t n = ::write(fd, s.data() + off, s.size() - off);
    if (n <= 0) return;  // a log we cannot write must not fail the command
    off += static_cast<std::size_t>(n);
  }
}
}  // namespace

void log_to_file(const std::string& path) {
  if (g_file >= 0) ::close(g_file);
  g_file = path.empty() ? -1 : ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
  if (!path.empty() && g_file < 0)
    write_all(2, "meshd-cni: cannot open log file " + path + "\n");
}

void log(LogLevel level, std::string_view message) {
  timeval tv{};
  ::gettimeofday(&tv, nullptr);
  tm t{};
  ::gmtime_r(&tv.tv_sec, &t);
  char ts[64];
  std::snprintf(ts, sizeof ts, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ [%d] ", t.tm_year + 1900,
                t.tm_mon + 1, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec,
                static_cast<int>(tv.tv_usec / 1000), static_cast<int>(::getpid()));
  const char* lvl = level == LogLevel::kInfo ? "info" : level == LogLevel::kWarn ? "warning" : "error";
  std::string line = std::string(ts) + lvl + " cni: " + std::string(message) + "\n";
  // One write(2) per line: O_APPEND keeps concurrent plugins' lines whole.
  if (g_file >= 0) write_all(g_file, line);
  if (level != LogLevel::kInfo) write_all(2, line);
}

}  // namespace meshd::cni
