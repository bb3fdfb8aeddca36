// meshd's log lines as structured journal entries, through libsystemd's
// sd_journal_sendv(3), when meshd's output is connected to the journal (a
// systemd service with the default StandardOutput=journal). Otherwise the
// lines go to stdout as before.
//
// Fields of every entry (docs/logging.md): MESSAGE, PRIORITY (syslog level,
// from the spdlog level), SYSLOG_IDENTIFIER=meshd, MESHD_COMPONENT (the part
// of meshd that logged: the logger's name), MESHD_NODE (this node's name,
// once known) and, for lines about one peer, MESHD_PEER (logging/fields.h).
// The message is the same text the stdout line carries, formatted by the
// same calls: what keeps secrets out of logs (keys/format.h shows keys as
// public short ids only) keeps them out of the journal.
#pragma once

#include <spdlog/common.h>
#include <spdlog/details/log_msg.h>
#include <spdlog/sinks/base_sink.h>

#include <sys/types.h>

#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace meshd::logging {

// The journal's PRIORITY for an spdlog level: trace and debug 7 (debug),
// info 6, warn 4 (warning), error 3, critical 2.
int journal_priority(spdlog::level::level_enum level);

// $JOURNAL_STREAM ("DEVICE:INODE", both decimal, as systemd sets it for a
// service whose stdout or stderr is a stream to the journal): nullopt when
// empty or malformed.
struct StreamId {
  dev_t device = 0;
  ino_t inode = 0;
};
std::optional<StreamId> parse_journal_stream(std::string_view value);

// Whether `fd` is the journal stream $JOURNAL_STREAM (`value`) names:
// fstat(2) of fd gives the same device and inode. Checking that the variable
// is set is not enough: a process started from a service inherits it with
// its output redirected elsewhere (systemd.exec(5), $JOURNAL_STREAM).
bool is_journal_stream(const char* value, int fd);

// The fields one log line becomes, in order, each "KEY=value" (the value
// may hold newlines: sd_journal_sendv sends such a field in the protocol's
// binary-safe form). Apart from the sink so that it can be tested without a
// journal.
std::vector<std::string> journal_fields(const spdlog::details::log_msg& msg, std::string_view node,
                                        std::string_view peer);

// The sink. A line the journal does not take (journald restarting, the
// socket gone) is written to `fallback` instead (the stdout sink), so no
// line is lost silently.
class JournalSink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  explicit JournalSink(spdlog::sink_ptr fallback) : fallback_(std::move(fallback)) {}

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override;
  void flush_() override {}

 private:
  spdlog::sink_ptr fallback_;
};

// Once at start, before any logger is made (the loggers of meshd are clones
// of the default one, so they inherit its sinks): when stdout or stderr is
// the journal stream of $JOURNAL_STREAM, the default logger's sink becomes
// a JournalSink, with the stdout sink as its fallback. True when it did.
bool log_to_journal_if_connected();

}  // namespace meshd::logging
