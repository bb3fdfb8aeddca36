// Bounded wait for a condition the system reaches asynchronously (a process
// up, a route back, a status file rewritten). Not a timed assertion: the
// bound only keeps a broken build from hanging, and the condition is checked
// once more after it passes.
#pragma once

#include <chrono>
#include <thread>

namespace meshd::testing {

template <class Pred>
bool eventually(Pred&& pred, std::chrono::milliseconds bound = std::chrono::seconds(10),
                std::chrono::milliseconds poll = std::chrono::milliseconds(10)) {
  const auto until = std::chrono::steady_clock::now() + bound;
  while (std::chrono::steady_clock::now() < until) {
    if (pred()) return true;
    std::this_thread::sleep_for(poll);
  }
  return pred();
}

}  // namespace meshd::testing
