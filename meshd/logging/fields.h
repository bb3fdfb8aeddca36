// Structured fields of meshd's log lines, beyond the message: which node
// logged (MESHD_NODE) and which peer a line is about (MESHD_PEER). The
// journal sink (logging/journal.h) sends them as journal fields; the plain
// stdout output does not show them (its lines are unchanged).
//
// The peer is a scoped, thread-local field rather than an argument of every
// log call: only the few lines that are about one peer say so, with a
// PeerField around the call, and every logger of meshd's is synchronous (the
// sink runs in the thread that logs), so the sink sees the field of the line
// being logged.
#pragma once

#include <string>
#include <string_view>

namespace meshd::logging {

// This node's name, as the journal's MESHD_NODE. Set at start and on reload
// (the name may come from the host name); "" until then.
void set_node_name(std::string_view name);
std::string node_name();

// The peer the current thread's log line is about ("" when none).
std::string_view current_peer();

// While alive, lines logged by this thread carry MESHD_PEER=peer (a node
// name, or a static peer's name). Nests: the innermost wins, the outer one
// comes back when it ends. An empty name means "no peer".
class PeerField {
 public:
  explicit PeerField(std::string peer);
  ~PeerField();
  PeerField(const PeerField&) = delete;
  PeerField& operator=(const PeerField&) = delete;

 private:
  std::string peer_;
  const std::string* outer_;
};

}  // namespace meshd::logging
