// What the plugin prints on stdout, encoded for the cniVersion the runtime
// asked for: the ADD result (0.4.0 has "version" in each ip; 1.1.0 adds the
// interface "mtu"), the VERSION answer and the error object.
#pragma once

#include "cni/cni_error.h"
#include "common/ip.h"

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace meshd::cni {

struct ResultInterface {
  std::string name;
  std::string mac;      // "aa:bb:..." or empty
  std::string sandbox;  // netns path for the pod end, empty for the host end
  unsigned mtu = 0;     // 0 = not reported
};

struct ResultIp {
  IpPrefix address;  // the pod address with the pool's prefix length
  std::optional<IpAddress> gateway;
  std::optional<int> interface;  // index into interfaces
};

struct ResultRoute {
  IpPrefix dst;
  std::optional<IpAddress> gw;
};

struct AddResult {
  std::vector<ResultInterface> interfaces;
  std::vector<ResultIp> ips;
  std::vector<ResultRoute> routes;
  std::string dns_json;  // a JSON object, or empty for {}
};

// `version` must be one of kSupportedVersions.
std::string encode_result(const AddResult& r, std::string_view version);
std::string encode_version(std::string_view version);
// An unsupported or empty `version` is answered in the latest we speak.
std::string encode_error(const CniError& e, std::string_view version);

}  // namespace meshd::cni
