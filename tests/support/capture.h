// A packet capture (tcpdump) inside a test's network namespace, for tests
// that assert what crossed a link: the mesh tests (tests/support/mesh_cluster.h)
// and the cluster tests (tests/support/cluster_nodes.h).
#pragma once

#include "tests/support/netns.h"

#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

namespace meshd::testing {

// A packet capture (tcpdump -w) inside a namespace, running from the
// constructor until stop(); the file is removed with the object.
class Capture {
 public:
  Capture(const Netns& ns, const std::string& ifname, const std::string& filter = "")
      : path_("/tmp/" + ns.name() + "-" + ifname + ".pcap") {
    ::unlink(path_.c_str());
    pid_ = ::fork();
    if (pid_ == 0) {
      std::freopen("/dev/null", "w", stdout);
      std::freopen("/dev/null", "w", stderr);
      std::vector<const char*> argv{"ip", "netns", "exec", ns.name().c_str(), "tcpdump", "-n", "-U", "--immediate-mode",
                                    "-i", ifname.c_str(), "-w", path_.c_str()};
      if (!filter.empty()) argv.push_back(filter.c_str());
      argv.push_back(nullptr);
      ::execvp("ip", const_cast<char* const*>(argv.data()));
      ::_exit(127);
    }
    // tcpdump writes the pcap header once it listens.
    for (int i = 0; i < 400 && sh("test -s " + path_) != 0; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  ~Capture() {
    stop();
    ::unlink(path_.c_str());
  }
  Capture(const Capture&) = delete;
  Capture& operator=(const Capture&) = delete;

  void stop() {
    if (pid_ <= 0) return;
    // Immediate mode hands each packet to tcpdump at once (no 1 s capture
    // block), but SIGINT ends the loop without draining: wait until the file
    // has stopped growing for 300 ms (a loaded machine delays tcpdump by more
    // than any fixed pause), at most 5 s. ip netns exec execs tcpdump in
    // place, so the PID is tcpdump's.
    auto size = [&] {
      struct stat st {};
      return ::stat(path_.c_str(), &st) == 0 ? st.st_size : -1;
    };
    off_t last = size();
    for (int quiet = 0, i = 0; quiet < 6 && i < 100; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      off_t now = size();
      quiet = now == last ? quiet + 1 : 0;
      last = now;
    }
    ::kill(pid_, SIGINT);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = 0;
  }
  // The captured packets, one line each, optionally through a read filter.
  std::string read(const std::string& filter = "") const {
    return sh_out("tcpdump -n -r " + path_ + (filter.empty() ? "" : " '" + filter + "'") + " 2>/dev/null");
  }

 private:
  std::string path_;
  pid_t pid_ = 0;
};

}  // namespace meshd::testing
