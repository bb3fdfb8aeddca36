#include "meshd/logging/fields.h"

#include <mutex>

namespace meshd::logging {

namespace {

std::mutex node_mutex;
std::string node;  // guarded by node_mutex: set by the main thread, read by whichever logs

// The innermost live PeerField of this thread (its name), or null.
thread_local const std::string* peer = nullptr;

}  // namespace

void set_node_name(std::string_view name) {
  std::lock_guard lock(node_mutex);
  node = name;
}

std::string node_name() {
  std::lock_guard lock(node_mutex);
  return node;
}

std::string_view current_peer() { return peer ? std::string_view(*peer) : std::string_view(); }

PeerField::PeerField(std::string p) : peer_(std::move(p)), outer_(peer) { peer = &peer_; }

PeerField::~PeerField() { peer = outer_; }

}  // namespace meshd::logging
