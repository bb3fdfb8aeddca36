// meshctl reads the daemon's answers (the status file) and prints them for a
// person: any bytes must give a status or an error with a message, never a
// crash, and what is printed is one line per item with no control character
// but the newline that ends each line.
#include "meshd/meshctl/status_view.h"

#include <cstdint>
#include <cstdlib>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto status = meshd::meshctl::parse_status(text);
  if (!status) {
    if (status.error().message.empty()) std::abort();
    return 0;
  }
  std::string out = meshd::meshctl::format_status(*status);
  std::size_t lines = 0;
  for (unsigned char c : out) {
    if (c == '\n') ++lines;
    else if (c < 0x20 || c == 0x7f) std::abort();  // would reach the terminal
  }
  if (lines != 9 + status->errors.size() + status->rejected.size()) std::abort();
  if (out.empty() || out.back() != '\n') std::abort();
  if (status->in_sync && status->in_sync_text != "yes") std::abort();
  return 0;
}
