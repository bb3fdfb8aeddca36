// The CNI spec versions this plugin implements, and the command set.
#pragma once

#include <array>
#include <optional>
#include <string_view>

namespace meshd::cni {

// Exactly what is implemented: VERSION lists these, anything else gets code 1.
inline constexpr std::array<std::string_view, 3> kSupportedVersions = {"0.4.0", "1.0.0", "1.1.0"};
inline constexpr std::string_view kLatestVersion = "1.1.0";

inline bool is_supported_version(std::string_view v) {
  for (auto s : kSupportedVersions)
    if (s == v) return true;
  return false;
}

enum class Command { kAdd, kDel, kCheck, kVersion, kStatus, kGc };

std::optional<Command> parse_command(std::string_view text);
std::string_view to_string(Command c);

}  // namespace meshd::cni
