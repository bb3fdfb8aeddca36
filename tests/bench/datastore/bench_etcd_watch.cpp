// A change reaching 1000 watchers in the etcd mode (issue 13's second
// benchmark): a real 3-member etcd 3.4 in a network namespace of its own
// (tests/support/etcd_cluster.h), and W simulated nodes, each one
// meshd::datastore::EtcdWatch (the client meshd runs) on a cluster's prefix
// "P C /" as every node in the etcd mode watches it, all on one asio
// io_context on one thread, spread over the three members (watch i on member
// i % 3). Prints, asserts nothing:
//   open     the time until all W watches are created, and etcd's CPU for it;
//   idle     each member's CPU and RSS over a quiet window with no watch,
//            then with the W watches open;
//   puts     K puts of one record-sized value (V bytes, a new node's record)
//            under "P C /records/", one after another: for each, the time
//            from just before the put until the first and the last watcher
//            got its event (p50/p90/max over the K puts), and each member's
//            CPU and RSS over the puts.
// The watchers' times include this process's own work: one thread reads W
// HTTP streams and parses W copies of each event, as W nodes would each do
// for one. Its CPU is printed beside etcd's. Run through scripts/bench-etcd.sh.
#include "meshd/datastore/etcd_client.h"
#include "meshd/datastore/etcd_layout.h"
#include "netlink/netns.h"
#include "tests/support/etcd_cluster.h"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace meshd::testing {
namespace {

namespace ds = meshd::datastore;
using namespace std::chrono_literals;
using Steady = std::chrono::steady_clock;

struct Options {
  int watchers = 1000;
  int puts = 10;
  int value_bytes = 400;
  int idle_seconds = 10;
  int gap_ms = 1000;  // quiet time between two puts
};

double ms_between(Steady::time_point a, Steady::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}
std::string loadavg() {
  std::string s = read_file("/proc/loadavg");
  auto cut = s.find(' ', s.find(' ', s.find(' ') + 1) + 1);
  return s.substr(0, cut);
}

struct ProcSample {
  long ticks = 0;  // utime + stime
  long rss_kb = 0;
};
ProcSample sample(pid_t pid) {
  ProcSample s;
  std::string stat = read_file("/proc/" + std::to_string(pid) + "/stat");
  auto close_paren = stat.rfind(')');
  if (close_paren == std::string::npos) return s;
  std::istringstream in(stat.substr(close_paren + 2));
  std::string field;
  // Fields after "(comm)": state is field 3; utime 14, stime 15.
  for (int i = 3; i <= 15 && in >> field; ++i)
    if (i == 14 || i == 15) s.ticks += std::stol(field);
  std::istringstream st(read_file("/proc/" + std::to_string(pid) + "/status"));
  for (std::string line; std::getline(st, line);)
    if (line.rfind("VmRSS:", 0) == 0) s.rss_kb = std::stol(line.substr(6));
  return s;
}

// Each member's CPU (ms, from utime + stime) and RSS between two moments.
class EtcdLoad {
 public:
  explicit EtcdLoad(EtcdCluster& e) : etcd_(e) { mark(); }
  void mark() {
    t0_ = Steady::now();
    self0_ = sample(::getpid());
    start_.clear();
    for (int i = 0; i < etcd_.size(); ++i) start_.push_back(sample(etcd_.pid(i)));
  }
  // One line per member: CPU ms and % of a core since mark(), RSS now; then
  // this process (the watchers).
  void print(const std::string& what) const {
    const double tck = static_cast<double>(::sysconf(_SC_CLK_TCK));
    double secs = ms_between(t0_, Steady::now()) / 1000.0;
    std::printf("%s (%.1f s, load avg %s):\n", what.c_str(), secs, loadavg().c_str());
    double total = 0;
    for (int i = 0; i < etcd_.size(); ++i) {
      auto s = sample(etcd_.pid(i));
      double ms = (s.ticks - start_[static_cast<std::size_t>(i)].ticks) * 1000.0 / tck;
      total += ms;
      std::printf("  etcd member %d: CPU %7.0f ms = %5.1f%% of a core, RSS %7ld kB\n", i, ms, ms / secs / 10.0,
                  s.rss_kb);
    }
    auto self = sample(::getpid());
    double self_ms = (self.ticks - self0_.ticks) * 1000.0 / tck;
    std::printf("  etcd, 3 members: CPU %7.0f ms = %5.1f%% of a core\n", total, total / secs / 10.0);
    std::printf("  the watchers (this process): CPU %7.0f ms = %5.1f%% of a core, RSS %7ld kB\n", self_ms,
                self_ms / secs / 10.0, self.rss_kb);
    std::fflush(stdout);
  }

 private:
  EtcdCluster& etcd_;
  Steady::time_point t0_;
  ProcSample self0_;
  std::vector<ProcSample> start_;
};

// The watchers' side, shared with the io thread: when each watch was
// created, and when each one got the event of each revision.
struct Arrivals {
  std::mutex mu;
  std::vector<std::optional<Steady::time_point>> created;
  std::map<ds::Revision, std::vector<Steady::time_point>> events;
  int ended = 0;
  std::string first_end;
  explicit Arrivals(int n) : created(static_cast<std::size_t>(n)) {}
  int created_count() {
    std::lock_guard l(mu);
    return static_cast<int>(std::count_if(created.begin(), created.end(), [](auto& t) { return t.has_value(); }));
  }
  std::size_t got(ds::Revision r) {
    std::lock_guard l(mu);
    auto it = events.find(r);
    return it == events.end() ? 0 : it->second.size();
  }
};

// The io_context on a thread of its own; the watches are made and destroyed
// on it (EtcdWatch's callbacks run there, and only its destructor on that
// thread guarantees none runs after it).
class WatchThread {
 public:
  WatchThread() : work_(io_.get_executor()), thread_([this] { io_.run(); }) {}
  ~WatchThread() { stop(); }
  boost::asio::io_context& io() { return io_; }
  // Runs `f` on the io thread and waits for it.
  template <class F>
  void run(F&& f) {
    std::promise<void> done;
    boost::asio::post(io_, [&] {
      f();
      done.set_value();
    });
    done.get_future().wait();
  }
  void stop() {
    if (!thread_.joinable()) return;
    run([this] { watches.clear(); });
    work_.reset();
    io_.stop();
    thread_.join();
  }
  std::vector<std::unique_ptr<ds::EtcdWatch>> watches;  // touched on the io thread only

 private:
  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_;
  std::thread thread_;
};

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return -1;
  std::sort(v.begin(), v.end());
  auto at = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(at, v.size() - 1)];
}

// One descriptor per watch in this process, and ~1/3 of them per member.
void raise_nofile(int watchers) {
  rlimit r{};
  ::getrlimit(RLIMIT_NOFILE, &r);
  rlim_t want = static_cast<rlim_t>(watchers) * 2 + 1024;
  if (r.rlim_cur >= want) return;
  if (r.rlim_max < want) r.rlim_max = want;  // root may raise the hard limit
  r.rlim_cur = want;
  if (::setrlimit(RLIMIT_NOFILE, &r) != 0)
    throw std::runtime_error("cannot raise RLIMIT_NOFILE to " + std::to_string(want) + " for " +
                             std::to_string(watchers) + " watches");
}

int run(const Options& o) {
  // Before etcd starts: its members inherit the limit (each serves a third
  // of the watches, each one a connection of its JSON gateway).
  raise_nofile(o.watchers);
  rlimit nofile{};
  ::getrlimit(RLIMIT_NOFILE, &nofile);
  std::time_t now = std::time(nullptr);
  char when[32];
  std::strftime(when, sizeof when, "%Y-%m-%d %H:%M", std::gmtime(&now));
  std::string version = sh_out("/usr/bin/etcd --version | head -1");
  while (!version.empty() && version.back() == '\n') version.pop_back();
  std::printf("bench_etcd_watch: %s UTC, %ld cores, load avg %s; %s; %d watchers, %d puts of %d B, "
              "RLIMIT_NOFILE %llu\n",
              when, ::sysconf(_SC_NPROCESSORS_ONLN), loadavg().c_str(), version.c_str(), o.watchers, o.puts,
              o.value_bytes, static_cast<unsigned long long>(nofile.rlim_cur));

  // The production raft timings (heartbeat 100 ms, election 1000 ms), not
  // the tests' short ones: nothing here kills a leader.
  EtcdClusterOptions eo;
  eo.heartbeat_ms = 100;
  eo.election_ms = 1000;
  EtcdCluster etcd(3, eo);  // from the main thread: the members die with it
  auto guard = nl::NetnsGuard::enter(etcd.ns().fd());
  if (!guard) throw std::runtime_error("entering etcd's namespace: " + guard.error().message);

  ds::EtcdOptions all;
  all.endpoints = etcd.endpoints();
  all.timeout = 5s;
  ds::EtcdClient client(all);
  // A cluster as the etcd mode lays it out: marker, params, and the records
  // every put adds to.
  const std::string prefix = "/meshd/", cluster = "bench" + std::to_string(::getpid());
  const std::string watched = ds::cluster_prefix(prefix, cluster);
  const std::vector<std::pair<std::string, std::string>> setup{{prefix + "cluster", cluster},
                                                                 {ds::params_key(prefix, cluster), "params"}};
  for (const auto& [k, v] : setup)
    if (auto r = client.put(k, v); !r) throw std::runtime_error("put " + k + ": " + r.error().message);
  auto start = client.range({.key = watched, .range_end = ds::prefix_end(watched)});
  if (!start) throw std::runtime_error("range: " + start.error().message);

  std::printf("\n== etcd with no watch\n");
  EtcdLoad load(etcd);
  std::this_thread::sleep_for(std::chrono::seconds(o.idle_seconds));
  load.print("idle, no watch");

  // --- open the watches ---
  Arrivals arrivals(o.watchers);
  WatchThread wt;  // after the guard: its thread is in etcd's namespace too
  load.mark();
  auto t_open = Steady::now();
  wt.run([&] {
    for (int i = 0; i < o.watchers; ++i) {
      ds::EtcdOptions one;
      one.endpoints = {etcd.endpoint(i % etcd.size())};
      // Reaching `created` with a thousand opening at once.
      one.timeout = 60s;
      auto idx = static_cast<std::size_t>(i);
      wt.watches.push_back(std::make_unique<ds::EtcdWatch>(
          wt.io(), one, watched, ds::prefix_end(watched), start->revision + 1,
          [&arrivals, idx](const ds::WatchResponse& r) {
            auto t = Steady::now();
            std::lock_guard l(arrivals.mu);
            if (r.created) arrivals.created[idx] = t;
            for (const auto& e : r.events) arrivals.events[e.kv.mod_revision].push_back(t);
          },
          [&arrivals](const Error& e) {
            std::lock_guard l(arrivals.mu);
            if (arrivals.ended++ == 0) arrivals.first_end = e.message;
          }));
    }
  });
  bool all_open = eventually([&] { return arrivals.created_count() == o.watchers; }, 120s, 5ms);
  double open_ms = ms_between(t_open, Steady::now());
  std::printf("\n== open: %d of %d watches created in %.0f ms (spread over %d members)%s\n",
              arrivals.created_count(), o.watchers, open_ms, etcd.size(), all_open ? "" : " -- NOT ALL");
  {
    std::lock_guard l(arrivals.mu);
    if (arrivals.ended) std::printf("  %d watches ended; the first: %s\n", arrivals.ended, arrivals.first_end.c_str());
    std::vector<double> t;
    for (auto& c : arrivals.created)
      if (c) t.push_back(ms_between(t_open, *c));
    std::printf("  created after: p50 %.0f ms, p90 %.0f ms, max %.0f ms\n", percentile(t, 0.5), percentile(t, 0.9),
                percentile(t, 1.0));
  }
  load.print("opening the watches");
  if (!all_open) throw std::runtime_error("not every watch was created within 120 s");

  std::printf("\n== idle with %d watches open\n", o.watchers);
  std::this_thread::sleep_for(2s);
  load.mark();
  std::this_thread::sleep_for(std::chrono::seconds(o.idle_seconds));
  load.print("idle, " + std::to_string(o.watchers) + " watches");

  // --- the puts ---
  std::printf("\n== puts: one %d B value under %srecords/, %d ms apart; ms from just before the put\n",
              o.value_bytes, watched.c_str(), o.gap_ms);
  std::printf("%-4s %8s %10s %10s %10s %10s  %s\n", "put", "revision", "put acked", "first", "median", "last",
              "load avg");
  std::string value(static_cast<std::size_t>(o.value_bytes), '\0');
  for (std::size_t i = 0; i < value.size(); ++i) value[i] = static_cast<char>('a' + (i * 7) % 26);
  std::vector<double> firsts, lasts, acks;
  int incomplete = 0;
  load.mark();
  for (int p = 0; p < o.puts; ++p) {
    char id[65];
    std::snprintf(id, sizeof id, "%064x", p + 1);
    std::string key = ds::family_prefix(prefix, cluster, ds::KeyFamily::kRecord) + id;
    value[0] = static_cast<char>('A' + p % 26);  // a new value each time
    std::string la = loadavg();
    auto t0 = Steady::now();
    auto rev = client.put(key, value);
    auto acked = Steady::now();
    if (!rev) throw std::runtime_error("put " + key + ": " + rev.error().message);
    bool all = eventually([&] { return arrivals.got(*rev) >= static_cast<std::size_t>(o.watchers); }, 30s, 1ms);
    std::vector<double> t;
    {
      std::lock_guard l(arrivals.mu);
      for (auto at : arrivals.events[*rev]) t.push_back(ms_between(t0, at));
    }
    std::sort(t.begin(), t.end());
    if (!all) ++incomplete;
    acks.push_back(ms_between(t0, acked));
    firsts.push_back(t.empty() ? -1 : t.front());
    lasts.push_back(t.empty() ? -1 : t.back());
    std::printf("%-4d %8lld %10.1f %10.1f %10.1f %10.1f  %s%s\n", p + 1, static_cast<long long>(*rev), acks.back(),
                firsts.back(), percentile(t, 0.5), lasts.back(), la.c_str(),
                all ? "" : ("  -- " + std::to_string(t.size()) + " watchers only").c_str());
    std::fflush(stdout);
    std::this_thread::sleep_for(std::chrono::milliseconds(o.gap_ms));
  }
  std::printf("over %d puts:  put acked p50 %.1f / p90 %.1f / max %.1f ms;  first watcher p50 %.1f / p90 %.1f / "
              "max %.1f ms;  last of %d watchers p50 %.1f / p90 %.1f / max %.1f ms%s\n",
              o.puts, percentile(acks, 0.5), percentile(acks, 0.9), percentile(acks, 1.0), percentile(firsts, 0.5),
              percentile(firsts, 0.9), percentile(firsts, 1.0), o.watchers, percentile(lasts, 0.5),
              percentile(lasts, 0.9), percentile(lasts, 1.0),
              incomplete ? (" (" + std::to_string(incomplete) + " puts not seen by every watcher)").c_str() : "");
  load.print("during the puts (the gaps between them included)");
  {
    std::lock_guard l(arrivals.mu);
    if (arrivals.ended)
      std::printf("  %d watches ended during the run; the first: %s\n", arrivals.ended, arrivals.first_end.c_str());
  }
  wt.stop();
  return 0;
}

int main_(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> int {
      if (i + 1 >= argc) throw std::runtime_error(a + " needs a value");
      return std::stoi(argv[++i]);
    };
    if (a == "--watchers") o.watchers = value();
    else if (a == "--puts") o.puts = value();
    else if (a == "--value-bytes") o.value_bytes = value();
    else if (a == "--idle-seconds") o.idle_seconds = value();
    else if (a == "--gap-ms") o.gap_ms = value();
    else {
      std::fprintf(stderr,
                   "usage: bench_etcd_watch [--watchers W] [--puts K] [--value-bytes V] [--idle-seconds S] "
                   "[--gap-ms MS]\n");
      return 2;
    }
  }
  if (::geteuid() != 0) {
    std::fprintf(stderr, "bench_etcd_watch: needs root (network namespaces)\n");
    return 1;
  }
  if (auto m = EtcdCluster::missing(); !m.empty()) {
    std::fprintf(stderr, "bench_etcd_watch: needs %s\n", m.c_str());
    return 1;
  }
  return run(o);
}

}  // namespace
}  // namespace meshd::testing

int main(int argc, char** argv) {
  try {
    return meshd::testing::main_(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_etcd_watch: %s\n", e.what());
    return 1;
  }
}
