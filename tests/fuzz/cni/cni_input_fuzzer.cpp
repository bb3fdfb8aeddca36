// Fuzzes what a runtime (or anyone who can exec the plugin) controls: the
// stdin configuration and CNI_ARGS. Input: CNI_ARGS up to the first newline,
// the configuration after it. Parsers must never crash, and every rejection
// must carry a spec error code.
#include "cni/config.h"
#include "cni/result.h"

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  auto nl = in.find('\n');
  std::string args(in.substr(0, nl));
  std::string_view config = nl == std::string_view::npos ? std::string_view{} : in.substr(nl + 1);

  if (auto a = meshd::cni::parse_cni_args(args); !a && a.error().code != meshd::cni::kInvalidEnvironment)
    std::abort();
  auto env = meshd::cni::parse_env([&](const char* k) -> const char* {
    std::string_view key(k);
    if (key == "CNI_COMMAND") return "ADD";
    if (key == "CNI_CONTAINERID") return args.c_str();
    if (key == "CNI_IFNAME") return args.c_str();
    if (key == "CNI_NETNS") return "/var/run/netns/x";
    if (key == "CNI_ARGS") return args.c_str();
    return nullptr;
  });
  if (!env && env.error().code != meshd::cni::kInvalidEnvironment) std::abort();

  auto c = meshd::cni::parse_config(config);
  if (!c) {
    int code = c.error().code;
    if (code != 1 && code != 2 && code != 6 && code != 7) std::abort();
    (void)meshd::cni::encode_error(c.error(), meshd::cni::requested_version(config).value_or(""));
  } else {
    if (c->name.empty() || c->database.empty() || c->database[0] != '/') std::abort();
    meshd::cni::AddResult r;
    r.dns_json = c->dns_json;
    (void)meshd::cni::encode_result(r, c->cni_version);
  }
  return 0;
}
