// The programs the key tests compare with each other: meshctl (ours) and
// wireguard-tools' `wg`, run through tests/support/process.h.
#pragma once

#include "tests/support/process.h"

#include <unistd.h>

#include <string>

namespace meshd::test {

using meshd::testing::ProcessResult;
using meshd::testing::run_process;
using meshd::testing::RunOptions;

inline bool wg_available() { return ::access("/usr/bin/wg", X_OK) == 0; }
inline const std::string kWg = "/usr/bin/wg";
inline const std::string kMeshctl = std::string(MESHD_BIN_DIR) + "/meshctl";

}  // namespace meshd::test
