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

// Test hook (documented in docs/cni.md): MESHD_CNI_TEST_FAIL_AT=<step> makes
// ADD fail right after that step, so tests can prove the rollback. Steps:
// "lease", "veth", "host-route", "pod-address", "pod-routes".
inline constexpr const char* kFailAtVar = "MESHD_CNI_TEST_FAIL_AT";

Reply invoke(const std::function<const char*(const char*)>& getenv, std::string_view stdin_json);

}  // namespace meshd::cni
