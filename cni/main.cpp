// meshd-cni: the CNI plugin binary. Reads the network configuration from
// stdin and the CNI_* environment, prints exactly one JSON document (or
// nothing) on stdout; logs never go to stdout.
#include "cni/plugin.h"

#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <string>
#include <string_view>

int main() {
  std::string in;
  char buf[8192];
  for (;;) {
    ssize_t n = ::read(STDIN_FILENO, buf, sizeof buf);
    if (n > 0) {
      in.append(buf, static_cast<std::size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    break;  // EOF, or no stdin at all: parse_config reports what is missing
  }
  meshd::cni::InvokeOptions opts;
#ifdef MESHD_CNI_FAULTS
  // Only in the test build (meshd-cni-faults): runtimes pass their whole
  // environment to plugins, so the installed binary must not read this.
  if (const char* at = std::getenv("MESHD_CNI_TEST_FAIL_AT"))
    opts.fail_after = [step = std::string(at)](std::string_view s) { return s == step; };
#endif
  auto reply = meshd::cni::invoke([](const char* k) { return std::getenv(k); }, in, opts);
  std::size_t off = 0;
  while (off < reply.out.size()) {
    ssize_t n = ::write(STDOUT_FILENO, reply.out.data() + off, reply.out.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    off += static_cast<std::size_t>(n);
  }
  return reply.exit_code;
}
