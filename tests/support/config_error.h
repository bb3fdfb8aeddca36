// The error meshd's config parser gives for `text`, or "<no error>".
#pragma once

#include "meshd/config/config.h"

#include <string>

namespace meshd::testing {

inline std::string config_error_of(const std::string& text) {
  try {
    meshd::config::parse_config(text, "meshd.toml");
  } catch (const ErrorException& e) {
    return e.what();
  }
  return "<no error>";
}

}  // namespace meshd::testing
