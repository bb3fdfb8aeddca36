// The plugin's log: warnings and worse to stderr (runtimes show it on
// failure), everything from info up to the conflist's logFile. Not spdlog, on
// purpose: the plugin is exec'd for every pod, and linking spdlog + fmt (and
// with them a shared libstdc++) cost ~1.5 ms of CPU per invocation in
// symbol resolution alone, a third of an ADD. Never writes to stdout.
#pragma once

#include <string>
#include <string_view>

namespace meshd::cni {

enum class LogLevel { kInfo, kWarn, kError };

void log_to_file(const std::string& path);  // empty: stderr only
void log(LogLevel level, std::string_view message);

inline void log_info(std::string_view m) { log(LogLevel::kInfo, m); }
inline void log_warn(std::string_view m) { log(LogLevel::kWarn, m); }
inline void log_error(std::string_view m) { log(LogLevel::kError, m); }

}  // namespace meshd::cni
