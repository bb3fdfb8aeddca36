// libsodium must be initialised once before use (it picks CPU-specific
// implementations and opens the RNG). Every public entry point of keys/ that
// touches libsodium calls this; it is cheap after the first call.
#pragma once

namespace meshd::keys {

// Initialises libsodium; throws std::runtime_error if it cannot (no usable
// RNG), since no key can safely be made without one.
void ensure_sodium();

}  // namespace meshd::keys
