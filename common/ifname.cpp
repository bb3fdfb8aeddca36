#include "common/ifname.h"

#include <cstdio>

namespace meshd {

namespace {

bool name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '.' || c == '-';
}

std::string printable(std::string_view s) {
  std::string out;
  for (unsigned char c : s.substr(0, 64)) {
    if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
      out += static_cast<char>(c);
    } else {
      char buf[5];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    }
  }
  if (s.size() > 64) out += "...";
  return out;
}

}  // namespace

bool valid_interface_name(std::string_view name) {
  if (name.empty() || name.size() > kMaxInterfaceName) return false;
  if (name == "." || name == ".." || name.front() == '-') return false;
  for (char c : name)
    if (!name_char(c)) return false;
  return true;
}

Result<void> check_interface_name(std::string_view name, std::string_view what) {
  if (valid_interface_name(name)) return {};
  return Error::invalid(std::string(what) + ": interface name \"" + printable(name) +
                        "\" is invalid: expected " + std::string(kInterfaceNameForm));
}

}  // namespace meshd
