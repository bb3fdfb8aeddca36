#include "store/events.h"

#include "store/database.h"
#include "store/sql_util.h"

#include <limits>

namespace meshd::store {

using detail::guarded;

Result<std::int64_t> EventRepo::append(std::int64_t at, const std::string& kind,
                                       const std::string& node, const std::string& message) {
  if (kind.empty()) return Error::invalid("append event: empty kind");
  return guarded(db_, "append event " + kind, [&]() -> Result<std::int64_t> {
    SQLite::Statement st(db_.sql(),
                         "INSERT INTO events (at, kind, node, message) VALUES (?, ?, ?, ?)");
    st.bind(1, static_cast<std::int64_t>(at));
    st.bind(2, kind);
    st.bind(3, node);
    st.bind(4, message);
    st.exec();
    return static_cast<std::int64_t>(db_.sql().getLastInsertRowid());
  });
}

Result<std::vector<Event>> EventRepo::list(std::size_t limit, std::int64_t since_id) {
  return guarded(db_, "list events", [&]() -> Result<std::vector<Event>> {
    SQLite::Statement st(db_.sql(),
                         "SELECT id, at, kind, node, message FROM events WHERE id > ? "
                         "ORDER BY id LIMIT ?");
    st.bind(1, static_cast<std::int64_t>(since_id));
    st.bind(2, static_cast<std::int64_t>(
                   std::min<std::size_t>(limit, std::numeric_limits<std::int64_t>::max())));
    std::vector<Event> out;
    while (st.executeStep())
      out.push_back(Event{st.getColumn(0).getInt64(), st.getColumn(1).getInt64(),
                          st.getColumn(2).getString(), st.getColumn(3).getString(),
                          st.getColumn(4).getString()});
    return out;
  });
}

Result<int> EventRepo::prune(std::int64_t older_than) {
  return guarded(db_, "prune events", [&]() -> Result<int> {
    SQLite::Statement st(db_.sql(), "DELETE FROM events WHERE at < ?");
    st.bind(1, static_cast<std::int64_t>(older_than));
    return st.exec();
  });
}

}  // namespace meshd::store
