// Internal to store/: the ordered list of forward migrations. Migration i
// (1-based) turns schema i-1 into schema i. Never edit a released migration;
// append a new one (see docs/store.md).
#pragma once

#include <span>

namespace meshd::store::detail {

struct Migration {
  int version;              // user_version after this migration
  const char* description;  // for error messages
  const char* sql;
};

std::span<const Migration> migrations();

}  // namespace meshd::store::detail
