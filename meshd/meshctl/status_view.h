// What `meshctl status` makes of the daemon's answer (its status file,
// <runtime_dir>/status.json): a pure parser and a pure formatter, so that any
// bytes in that file give either a status or an error, and what reaches a
// person's terminal is plain text whatever the file holds.
#pragma once

#include "common/result.h"

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace meshd::meshctl {

struct DaemonStatus {
  // Scalar fields as shown: a string as it is, a boolean as yes/no, another
  // JSON value serialised, "-" when missing. Keys as meshd writes them.
  std::string interface, backend, backend_reason, public_key, listen_port, mtu, pod_cidr, peers,
      routes, in_sync_text;
  bool in_sync = false;  // true only for "in_sync": true
  std::vector<std::string> errors;                            // string entries of "errors"
  std::vector<std::pair<std::string, std::string>> rejected;  // "rejected_peers": peer, reason (JSON)
};

// EINVAL, naming the problem (not JSON, not an object), for anything that is
// not a status file; never throws.
Result<DaemonStatus> parse_status(std::string_view json);

// The lines `meshctl status` prints. Control characters (terminal escapes
// included) from the file are shown as \xNN: the file is data, not output.
std::string format_status(const DaemonStatus& s);

}  // namespace meshd::meshctl
