// A test whose prerequisite (root, a tool, a runtime) is missing FAILS, so a
// machine where nothing could run never shows a green suite. A developer who
// knowingly runs part of the suite without the prerequisite may opt into a
// skip with MESHD_ALLOW_SKIP=1; the README's test command never sets it and
// also fails on any skip that gets through (scripts/test.sh).
#pragma once

#include <gtest/gtest.h>

#include "tests/support/prerequisite.h"

#include <cstdlib>
#include <cstring>

namespace meshd::testing {

inline bool skips_allowed() {
  const char* v = std::getenv("MESHD_ALLOW_SKIP");
  return v && std::strcmp(v, "1") == 0;
}

}  // namespace meshd::testing

// Use in a TEST body or a fixture's SetUp: returns from it.
#define MESHD_REQUIRE(cond, reason)                                                         \
  do {                                                                                      \
    if (!(cond)) {                                                                          \
      if (::meshd::testing::skips_allowed()) GTEST_SKIP() << "prerequisite missing: " << reason; \
      FAIL() << "prerequisite missing: " << reason                                          \
             << " (install it with scripts/install-deps.sh and run as root; MESHD_ALLOW_SKIP=1 " \
                "turns this into a skip outside the README's test command)";                \
    }                                                                                       \
  } while (0)
