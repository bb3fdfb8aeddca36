// The join listener on the underlay: reads one join request per TCP
// connection, hands it to `answer` (answer_join, in the daemon) and writes
// the reply back. Anyone on the underlay can connect, so the listener is
// built to keep serving valid joiners while others send garbage, send
// slowly or never finish:
//   - the whole request must arrive within read_timeout, the reply leave
//     within write_timeout (a slowloris sender holds a slot for at most
//     read_timeout);
//   - at most max_concurrent handshakes are in flight, and at most
//     max_per_source from one source address; a connection beyond either is
//     closed at once (shed), so one address cannot take every slot (an
//     attacker with max_concurrent / max_per_source addresses still can,
//     for read_timeout at a time: a joiner's retry gets through after it);
//   - a source with failures_before_limit failures (timeouts, oversized or
//     malformed frames, refusals `answer` counts as failures) within
//     failure_window has its connections closed at once until the window
//     since its first failure passes. The table of sources is bounded
//     (kMaxTrackedSources); when full, the source whose window began first
//     is forgotten.
// A connection closed before its request is whole counts as malformed (a
// failure of its source). A frame whose header does not start with "MJRQ"
// (a join), "MJRA" (a re-admission, readmit.h) or "MJRN" (an underlay
// announcement, announce.h) is counted malformed and
// gets uniform_refusal() without its body being read or `answer` called:
// the same bytes answer_join gives for it, at no cost.
#pragma once

#include "common/ip.h"
#include "common/result.h"

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <vector>

namespace boost::asio {
class io_context;
}

namespace meshd::controlplane {

inline constexpr std::size_t kMaxTrackedSources = 4096;

struct JoinServerOptions {
  Endpoint listen;                               // address:port; port 0 = ephemeral (tests)
  std::size_t max_concurrent = 32;               // handshakes in flight; one more is closed at once
  std::chrono::milliseconds read_timeout{5000};  // the whole request must arrive within it
  std::chrono::milliseconds write_timeout{5000};
  unsigned failures_before_limit = 5;            // per source address within failure_window
  std::chrono::seconds failure_window{60};       // then that source's connections are closed at once until the window passes
  std::size_t max_per_source = 4;                // handshakes in flight from one source address
};

struct JoinServerCounters {
  std::uint64_t connections = 0, answered = 0, shed = 0, rate_limited = 0, timeouts = 0,
                oversized = 0, malformed = 0;
};

// failure: counts toward the source's limit (e.g. an unproven caller).
struct JoinAnswerResult {
  std::vector<std::uint8_t> reply;
  bool failure = false;
};

class JoinServer {
 public:
  // Called on the io_context's thread with a whole request frame (header + body).
  using Answer = std::function<JoinAnswerResult(std::span<const std::uint8_t> frame,
                                                const IpAddress& source)>;
  // Binds and listens at once; throws ErrorException (common/result.h) naming the address on failure.
  JoinServer(boost::asio::io_context& ioc, JoinServerOptions opts, Answer answer);
  ~JoinServer();
  JoinServer(const JoinServer&) = delete;
  JoinServer& operator=(const JoinServer&) = delete;

  Endpoint local_endpoint() const;
  const JoinServerCounters& counters() const;
  // Stops accepting and closes every connection in flight; `answer` is not
  // called again. Also done by the destructor.
  void close();

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace meshd::controlplane
