// Without it sd_journal_sendv is a macro adding CODE_FILE, CODE_LINE and
// CODE_FUNC of this file: the sink's own place, never the caller's.
#define SD_JOURNAL_SUPPRESS_LOCATION 1
#include <systemd/sd-journal.h>

#include "meshd/logging/journal.h"

#include "meshd/logging/fields.h"

#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <sys/uio.h>

#include <charconv>
#include <cstdlib>

namespace meshd::logging {

int journal_priority(spdlog::level::level_enum level) {
  switch (level) {
    case spdlog::level::trace:
    case spdlog::level::debug:
      return 7;  // LOG_DEBUG
    case spdlog::level::info:
      return 6;  // LOG_INFO
    case spdlog::level::warn:
      return 4;  // LOG_WARNING
    case spdlog::level::err:
      return 3;  // LOG_ERR
    case spdlog::level::critical:
      return 2;  // LOG_CRIT
    default:
      return 6;
  }
}

std::optional<StreamId> parse_journal_stream(std::string_view value) {
  auto colon = value.find(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == value.size()) return std::nullopt;
  // Parsed as the widest unsigned types, then checked to fit dev_t and ino_t.
  unsigned long long dev = 0, ino = 0;
  auto d = std::from_chars(value.data(), value.data() + colon, dev);
  if (d.ec != std::errc() || d.ptr != value.data() + colon) return std::nullopt;
  auto i = std::from_chars(value.data() + colon + 1, value.data() + value.size(), ino);
  if (i.ec != std::errc() || i.ptr != value.data() + value.size()) return std::nullopt;
  StreamId id{static_cast<dev_t>(dev), static_cast<ino_t>(ino)};
  if (static_cast<unsigned long long>(id.device) != dev || static_cast<unsigned long long>(id.inode) != ino)
    return std::nullopt;
  return id;
}

bool is_journal_stream(const char* value, int fd) {
  if (!value) return false;
  auto id = parse_journal_stream(value);
  if (!id) return false;
  struct stat st {};
  if (::fstat(fd, &st) != 0) return false;
  return st.st_dev == id->device && st.st_ino == id->inode;
}

std::vector<std::string> journal_fields(const spdlog::details::log_msg& msg, std::string_view node,
                                        std::string_view peer) {
  std::vector<std::string> f;
  f.reserve(6);
  f.push_back("MESSAGE=" + std::string(msg.payload.data(), msg.payload.size()));
  f.push_back("PRIORITY=" + std::to_string(journal_priority(msg.level)));
  f.push_back("SYSLOG_IDENTIFIER=meshd");
  // The default logger has no name: its lines are the daemon's own.
  std::string_view component(msg.logger_name.data(), msg.logger_name.size());
  f.push_back("MESHD_COMPONENT=" + std::string(component.empty() ? "meshd" : component));
  if (!node.empty()) f.push_back("MESHD_NODE=" + std::string(node));
  if (!peer.empty()) f.push_back("MESHD_PEER=" + std::string(peer));
  return f;
}

void JournalSink::sink_it_(const spdlog::details::log_msg& msg) {
  auto fields = journal_fields(msg, node_name(), current_peer());
  std::vector<iovec> iov(fields.size());
  for (std::size_t i = 0; i < fields.size(); ++i) iov[i] = {fields[i].data(), fields[i].size()};
  // sd_journal_sendv, not sd_journal_send: no printf format over the text.
  if (sd_journal_sendv(iov.data(), static_cast<int>(iov.size())) < 0 && fallback_) fallback_->log(msg);
}

bool log_to_journal_if_connected() {
  const char* stream = std::getenv("JOURNAL_STREAM");
  // meshd logs to stdout; systemd names stderr when both are connected
  // (usually one stream for both), so either matching means the journal.
  if (!is_journal_stream(stream, 1) && !is_journal_stream(stream, 2)) return false;
  auto old = spdlog::default_logger();
  spdlog::sink_ptr fallback = old->sinks().empty() ? spdlog::sink_ptr() : old->sinks().front();
  auto logger = std::make_shared<spdlog::logger>(old->name(), std::make_shared<JournalSink>(fallback));
  logger->set_level(old->level());
  spdlog::set_default_logger(logger);
  return true;
}

}  // namespace meshd::logging
