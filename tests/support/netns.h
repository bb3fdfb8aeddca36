// Test fixture pieces for network namespaces: each test makes its own, with a
// unique name, and removes it in the destructor, also when the test fails.
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>

namespace meshd::testing {

// Runs a shell command; returns its exit status (0 = success).
inline int sh(const std::string& cmd) {
  int rc = std::system(cmd.c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : 128 + WTERMSIG(rc);
}

// Runs a shell command and returns its standard output.
inline std::string sh_out(const std::string& cmd) {
  std::string out;
  FILE* f = popen(cmd.c_str(), "r");
  if (!f) return out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
  pclose(f);
  return out;
}

inline bool is_root() { return geteuid() == 0; }

// A network namespace named "<prefix>-<pid>-<n>" that exists for the object's lifetime.
class Netns {
 public:
  explicit Netns(const std::string& prefix = "mt") {
    static std::atomic<int> counter{0};
    name_ = prefix + "-" + std::to_string(getpid()) + "-" + std::to_string(counter++);
    if (sh("ip netns add " + name_) != 0) throw std::runtime_error("ip netns add " + name_ + " failed");
    sh("ip -n " + name_ + " link set lo up");
  }
  ~Netns() {
    if (fd_ >= 0) close(fd_);
    // Processes still inside keep it alive; callers stop theirs first.
    sh("ip netns del " + name_ + " 2>/dev/null");
  }
  Netns(const Netns&) = delete;
  Netns& operator=(const Netns&) = delete;

  const std::string& name() const { return name_; }
  std::string path() const { return "/var/run/netns/" + name_; }
  int fd() {
    if (fd_ < 0) fd_ = ::open(path().c_str(), O_RDONLY | O_CLOEXEC);
    return fd_;
  }
  // "ip netns exec <name> <cmd>" through the shell.
  int run(const std::string& cmd) const { return sh("ip netns exec " + name_ + " " + cmd); }
  std::string out(const std::string& cmd) const {
    return sh_out("ip netns exec " + name_ + " " + cmd);
  }

 private:
  std::string name_;
  int fd_ = -1;
};

}  // namespace meshd::testing
