#include "store/ipam.h"

#include "store/database.h"
#include "store/sql_util.h"

#include <algorithm>
#include <ctime>
#include <limits>

namespace meshd::store {

using detail::guarded;

namespace {

using u128 = unsigned __int128;

u128 to_u128(const IpAddress& a) {
  u128 v = 0;
  for (std::size_t i = 0; i < a.size(); ++i) v = (v << 8) | a.bytes[i];
  return v;
}

IpAddress from_u128(int family, u128 v) {
  IpAddress a;
  a.family = family;
  for (std::size_t i = a.size(); i-- > 0;) {
    a.bytes[i] = static_cast<std::uint8_t>(v & 0xff);
    v >>= 8;
  }
  return a;
}

// The usable range [first, last] of a pool. IPv4 loses its network and
// broadcast addresses, except on /31 (RFC 3021) and /32. IPv6 has no
// broadcast but its all-zeros host is the subnet-router anycast address
// (RFC 4291 2.6.1), except on /127 (RFC 6164) and /128.
struct Range {
  u128 first = 0;
  u128 last = 0;
};

Range usable_range(const IpPrefix& subnet) {
  const IpPrefix net = subnet.network();
  const unsigned bits = net.max_length();
  const unsigned host_bits = bits - net.length;
  const u128 base = to_u128(net.address);
  const u128 host_mask = host_bits == 128 ? ~u128{0} : ((u128{1} << host_bits) - 1);
  Range r{base, base | host_mask};
  if (host_bits >= 2) {
    r.first += 1;
    if (net.address.is_v4()) r.last -= 1;
  }
  return r;
}

// Sorted, unique members of `addrs` inside the pool's usable range.
std::vector<u128> in_range(const IpamPool& pool, const Range& r,
                           const std::vector<IpAddress>& addrs) {
  std::vector<u128> out;
  for (const auto& a : addrs) {
    if (a.family != pool.subnet.address.family) continue;
    u128 v = to_u128(a);
    if (v >= r.first && v <= r.last) out.push_back(v);
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

std::uint64_t saturate(u128 v) {
  return v > std::numeric_limits<std::uint64_t>::max() ? std::numeric_limits<std::uint64_t>::max()
                                                        : static_cast<std::uint64_t>(v);
}

Result<Lease> lease_row(SQLite::Statement& st, int first_col) {
  Lease l;
  l.key.network = st.getColumn(first_col).getString();
  l.key.container_id = st.getColumn(first_col + 1).getString();
  l.key.ifname = st.getColumn(first_col + 2).getString();
  auto a = IpAddress::parse(st.getColumn(first_col + 3).getString());
  if (!a) return Error::invalid("stored lease of " + l.key.container_id + ": " + a.error().message);
  l.address = *a;
  l.created_at = st.getColumn(first_col + 4).getInt64();
  l.host_interface = st.getColumn(first_col + 5).getString();
  return l;
}

constexpr const char* kColumns =
    "network, container_id, ifname, address, created_at, host_interface";

Result<std::optional<Lease>> read(Database& db, const AttachmentKey& key) {
  SQLite::Statement st(db.sql(), std::string("SELECT ") + kColumns +
                                     " FROM ipam_leases WHERE network = ? AND "
                                     "container_id = ? AND ifname = ?");
  st.bind(1, key.network);
  st.bind(2, key.container_id);
  st.bind(3, key.ifname);
  if (!st.executeStep()) return std::optional<Lease>{};
  auto l = lease_row(st, 0);
  if (!l) return l.error();
  return std::optional<Lease>{*l};
}

Result<std::vector<Lease>> read_all(Database& db, const std::string& network) {
  SQLite::Statement st(db.sql(), std::string("SELECT ") + kColumns +
                                     " FROM ipam_leases WHERE network = ? "
                                     "ORDER BY container_id, ifname");
  st.bind(1, network);
  std::vector<Lease> out;
  while (st.executeStep()) {
    auto l = lease_row(st, 0);
    if (!l) return l.error();
    out.push_back(*l);
  }
  return out;
}

std::string describe(const AttachmentKey& k) {
  return k.network + "/" + k.container_id + "/" + k.ifname;
}

}  // namespace

namespace {

// The first member of [from, to] not in `taken` (sorted, unique), if any.
std::optional<u128> first_free_in(const std::vector<u128>& taken, u128 from, u128 to) {
  u128 candidate = from;
  for (auto it = std::lower_bound(taken.begin(), taken.end(), from); it != taken.end(); ++it) {
    if (*it > candidate) break;
    if (candidate == to) return std::nullopt;  // also avoids wrapping at ::/0
    ++candidate;
  }
  if (candidate > to) return std::nullopt;
  return candidate;
}

}  // namespace

std::optional<IpAddress> lowest_free(const IpamPool& pool, const std::vector<IpAddress>& used) {
  return next_free(pool, used, std::nullopt);
}

std::optional<IpAddress> next_free(const IpamPool& pool, const std::vector<IpAddress>& used,
                                   const std::optional<IpAddress>& last) {
  if (pool.subnet.address.empty()) return std::nullopt;
  const Range r = usable_range(pool.subnet);
  std::vector<IpAddress> all = used;
  all.insert(all.end(), pool.reserved.begin(), pool.reserved.end());
  const std::vector<u128> taken = in_range(pool, r, all);
  std::optional<u128> got;
  if (!last || last->family != pool.subnet.address.family || to_u128(*last) < r.first ||
      to_u128(*last) > r.last) {
    got = first_free_in(taken, r.first, r.last);  // no cursor in this pool: from the start
  } else {
    const u128 cursor = to_u128(*last);
    if (cursor != r.last) got = first_free_in(taken, cursor + 1, r.last);
    if (!got) got = first_free_in(taken, r.first, cursor);  // wrap around
  }
  if (!got) return std::nullopt;
  return from_u128(pool.subnet.address.family, *got);
}

std::uint64_t pool_capacity(const IpamPool& pool) {
  if (pool.subnet.address.empty()) return 0;
  const Range r = usable_range(pool.subnet);
  const u128 size_minus_one = r.last - r.first;  // +1 could wrap for ::/0
  const u128 reserved = in_range(pool, r, pool.reserved).size();
  if (size_minus_one == ~u128{0}) return std::numeric_limits<std::uint64_t>::max();
  return saturate(size_minus_one + 1 - reserved);
}

Result<Lease> Ipam::allocate(const AttachmentKey& key, const IpamPool& pool) {
  return allocate(key, pool, static_cast<std::int64_t>(::time(nullptr)));
}

Result<Lease> Ipam::allocate(const AttachmentKey& key, const IpamPool& pool, std::int64_t now) {
  auto a = acquire(LeaseRequest{.key = key, .pool = pool, .now = now});
  if (!a) return a.error();
  return a->lease;
}

Result<Acquired> Ipam::acquire(const LeaseRequest& req) {
  const AttachmentKey& key = req.key;
  const IpamPool& pool = req.pool;
  if (key.network.empty() || key.container_id.empty() || key.ifname.empty())
    return Error::invalid("allocate address for \"" + describe(key) +
                          "\": network, container id and interface name are all required");
  if (pool.subnet.address.empty())
    return Error::invalid("allocate address for " + describe(key) + ": the pool has no subnet");
  return guarded(db_, "allocate address for " + describe(key) + " from " +
                          pool.subnet.network().to_string(),
                 [&]() -> Result<Acquired> {
                   auto tx = detail::immediate(db_);
                   auto existing = read(db_, key);
                   if (!existing) return existing.error();
                   if (*existing) {  // ADD retried, or a concurrent ADD of the same attachment
                     Lease l = **existing;
                     const bool fill_interface = l.host_interface.empty() && !req.host_interface.empty();
                     if (req.claimant != 0 || fill_interface) {
                       if (fill_interface) l.host_interface = req.host_interface;
                       SQLite::Statement up(db_.sql(),
                                            "UPDATE ipam_leases SET claimant = "
                                            "CASE WHEN ? != 0 THEN ? ELSE claimant END, "
                                            "host_interface = ? WHERE network = ? AND "
                                            "container_id = ? AND ifname = ?");
                       up.bind(1, req.claimant);
                       up.bind(2, req.claimant);
                       up.bind(3, l.host_interface);
                       up.bind(4, key.network);
                       up.bind(5, key.container_id);
                       up.bind(6, key.ifname);
                       up.exec();
                       tx.commit();
                     }
                     return Acquired{std::move(l), false};
                   }

                   SQLite::Statement q(db_.sql(),
                                       "SELECT address FROM ipam_leases WHERE network = ?");
                   q.bind(1, key.network);
                   std::vector<IpAddress> used;
                   while (q.executeStep())
                     if (auto a = IpAddress::parse(q.getColumn(0).getString())) used.push_back(*a);

                   // Rotate through the pool (as host-local does): a released
                   // address is handed out again as late as possible, so that
                   // stale endpoints, DNS answers and conntrack entries of a
                   // deleted pod do not reach the next one at once.
                   std::optional<IpAddress> cursor;
                   SQLite::Statement cq(db_.sql(),
                                        "SELECT last_address FROM ipam_cursors WHERE network = ?");
                   cq.bind(1, key.network);
                   if (cq.executeStep())
                     if (auto a = IpAddress::parse(cq.getColumn(0).getString())) cursor = *a;
                   auto addr = next_free(pool, used, cursor);
                   if (!addr) {
                     const Range r = usable_range(pool.subnet);
                     auto leased = in_range(pool, r, used);
                     auto reserved = in_range(pool, r, pool.reserved);
                     std::erase_if(leased, [&](u128 v) {
                       return std::binary_search(reserved.begin(), reserved.end(), v);
                     });
                     return Error{{ENOSPC, boost::system::generic_category()},
                                  "pool " + pool.subnet.network().to_string() +
                                      " is exhausted: " + std::to_string(leased.size()) + " of " +
                                      std::to_string(pool_capacity(pool)) +
                                      " addresses leased (network " + key.network + ")"};
                   }
                   Lease l{key, *addr, req.now, req.host_interface};
                   SQLite::Statement ins(db_.sql(),
                                         std::string("INSERT INTO ipam_leases (") + kColumns +
                                             ", claimant) VALUES (?, ?, ?, ?, ?, ?, ?)");
                   ins.bind(1, key.network);
                   ins.bind(2, key.container_id);
                   ins.bind(3, key.ifname);
                   ins.bind(4, addr->to_string());
                   ins.bind(5, static_cast<std::int64_t>(req.now));
                   ins.bind(6, req.host_interface);
                   ins.bind(7, req.claimant);
                   ins.exec();
                   SQLite::Statement cur(db_.sql(),
                                         "INSERT INTO ipam_cursors (network, last_address) "
                                         "VALUES (?, ?) ON CONFLICT (network) DO UPDATE SET "
                                         "last_address = excluded.last_address");
                   cur.bind(1, key.network);
                   cur.bind(2, addr->to_string());
                   cur.exec();
                   tx.commit();
                   return Acquired{std::move(l), true};
                 });
}

Result<bool> Ipam::release_if_claimed(const AttachmentKey& key, std::int64_t claimant) {
  if (claimant == 0)
    return Error::invalid("release address of " + describe(key) + ": claimant 0 is nobody's");
  return guarded(db_, "release address of " + describe(key), [&]() -> Result<bool> {
    auto tx = detail::immediate(db_);
    SQLite::Statement st(db_.sql(),
                         "DELETE FROM ipam_leases WHERE network = ? AND container_id = ? AND "
                         "ifname = ? AND claimant = ?");
    st.bind(1, key.network);
    st.bind(2, key.container_id);
    st.bind(3, key.ifname);
    st.bind(4, claimant);
    const bool released = st.exec() > 0;
    tx.commit();
    return released;
  });
}

Result<void> Ipam::release(const AttachmentKey& key) {
  return guarded(db_, "release address of " + describe(key), [&]() -> Result<void> {
    auto tx = detail::immediate(db_);
    SQLite::Statement st(db_.sql(),
                         "DELETE FROM ipam_leases WHERE network = ? AND container_id = ? AND "
                         "ifname = ?");
    st.bind(1, key.network);
    st.bind(2, key.container_id);
    st.bind(3, key.ifname);
    st.exec();
    tx.commit();
    return {};
  });
}

Result<std::optional<Lease>> Ipam::find(const AttachmentKey& key) {
  return guarded(db_, "find lease of " + describe(key), [&] { return read(db_, key); });
}

Result<std::vector<Lease>> Ipam::list(const std::string& network) {
  return guarded(db_, "list leases of network " + network, [&] { return read_all(db_, network); });
}

Result<std::vector<Lease>> Ipam::release_all_except(const std::string& network,
                                                    const std::vector<AttachmentKey>& keep) {
  return guarded(db_, "garbage-collect leases of network " + network,
                 [&]() -> Result<std::vector<Lease>> {
                   auto tx = detail::immediate(db_);
                   auto all = read_all(db_, network);
                   if (!all) return all.error();
                   std::vector<AttachmentKey> sorted_keep = keep;
                   std::sort(sorted_keep.begin(), sorted_keep.end());
                   std::vector<Lease> released;
                   SQLite::Statement del(db_.sql(),
                                         "DELETE FROM ipam_leases WHERE network = ? AND "
                                         "container_id = ? AND ifname = ?");
                   for (const Lease& l : *all) {
                     if (std::binary_search(sorted_keep.begin(), sorted_keep.end(), l.key)) continue;
                     del.bind(1, l.key.network);
                     del.bind(2, l.key.container_id);
                     del.bind(3, l.key.ifname);
                     del.exec();
                     del.reset();
                     released.push_back(l);
                   }
                   tx.commit();
                   return released;
                 });
}

}  // namespace meshd::store
