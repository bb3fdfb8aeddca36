// Replacing a file so that a reader sees the old contents or the new, never
// half of either, and the new survives a crash once this returns.
#pragma once

#include "common/result.h"

#include <string>
#include <string_view>
#include <sys/types.h>

namespace meshd {

// Writes `contents` to a temporary file in `path`'s directory (created 0600,
// so a secret is never readable by others, not even briefly), sets `mode`,
// fsyncs it, renames it over `path` and fsyncs the directory.
Result<void> write_file_atomically(const std::string& path, std::string_view contents,
                                   mode_t mode);

}  // namespace meshd
