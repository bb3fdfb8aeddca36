// The plugin as a function: environment and stdin in, stdout text and exit
// status out. main() is only the I/O around it; the commands live behind it
// in plugin.cpp (one function per command, as the reference plugins do).
#pragma once

#include <functional>
#include <string>
#include <string_view>

namespace meshd::cni {

struct Reply {
  int exit_code = 0;
  std::string out;  // what goes to stdout: a result, VERSION, or a CNI error; maybe empty
};

// Test seam (docs/cni.md "Test build"): called after each ADD step ("lease",
// "veth", "host-route", "pod-address", "pod-routes"); true makes ADD fail
// right there, so tests can prove the rollback. The installed meshd-cni
// passes none; only the test executable meshd-cni-faults sets it.
struct InvokeOptions {
  std::function<bool(std::string_view step)> fail_after;
};

Reply invoke(const std::function<const char*(const char*)>& getenv, std::string_view stdin_json,
             const InvokeOptions& opts = {});

}  // namespace meshd::cni
