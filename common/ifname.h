// The one rule for interface names that meshd creates, looks up or passes on
// (config, rtnetlink, generic netlink, the userspace backend's argv, CNI).
//
// Stricter than the kernel (dev_valid_name() accepts any byte but '/', ':'
// and white space): 1-15 bytes (IFNAMSIZ counts the NUL) of [A-Za-z0-9_.-],
// not starting with '-' and not "." or "..". The kernel treats a '%' as a
// template ("wg%d" makes wg0, wg1, … on every retry); a leading '-' turns
// into an option in any argv (wireguard-go then creates a device named
// after it); anything outside the set is refused rather than quoted.
#pragma once

#include "common/result.h"

#include <string_view>

namespace meshd {

inline constexpr std::size_t kMaxInterfaceName = 15;
inline constexpr std::string_view kInterfaceNameForm =
    "1-15 characters of [A-Za-z0-9_.-], not starting with '-', not \".\" or \"..\"";

bool valid_interface_name(std::string_view name);

// EINVAL with "<what>: interface name \"<name>\" is invalid: expected <form>".
// The name is quoted with non-printable bytes escaped as \xNN.
Result<void> check_interface_name(std::string_view name, std::string_view what);

}  // namespace meshd
