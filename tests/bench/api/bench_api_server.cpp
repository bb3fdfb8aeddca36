// The API listener under load, for scripts/bench-api.sh (wrk is the client).
// Prints figures; asserts nothing.
//
//   bench_api_server [--port P] [--token-file F] [--nodes N] [--max-connections C]
//                    [--busy-ms B --every-ms E]
//     serves make_router's routes over TCP 127.0.0.1:P (0: ephemeral) with the
//     bearer token read from F, on ONE io_context thread as the daemon does,
//     from a fake cluster of N nodes (default 1000) and a token and event
//     store in a temporary directory. With --busy-ms, a handler on the same
//     loop spins the CPU for B ms every E ms (a reconcile pass occupying the
//     loop). Prints "listening 127.0.0.1:PORT" once it accepts; on SIGINT or
//     SIGTERM prints the server's counters and its CPU time since then, and
//     exits.
//
//   bench_api_server --stall N --port P [--reconnect-ms R]
//     a slow client: holds N TCP connections to 127.0.0.1:P, each having sent
//     half a request line and then nothing. A connection the server closes is
//     opened again R ms later (default 1000), so the pressure stays. Prints
//     "stalling N" once all are open; on SIGINT or SIGTERM prints how many the
//     server closed and exits.
#include "keys/wg_key.h"
#include "meshd/api/routes.h"
#include "meshd/api/server.h"
#include "store/database.h"
#include "store/events.h"
#include "store/tokens.h"
#include "tests/support/temp_dir.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <string>
#include <thread>
#include <vector>

namespace {

namespace asio = boost::asio;
using namespace meshd;
using Clock = std::chrono::steady_clock;

struct Args {
  std::uint16_t port = 0;
  std::string token_file;
  std::size_t nodes = 1000;
  std::size_t max_connections = 64;
  int busy_ms = 0, every_ms = 0;
  std::size_t stall = 0;
  int reconnect_ms = 1000;
};

[[noreturn]] void usage(const std::string& why) {
  std::cerr << "bench_api_server: " << why
            << "\nusage: bench_api_server [--port P] --token-file F [--nodes N] [--max-connections C]"
               " [--busy-ms B --every-ms E]\n       bench_api_server --stall N --port P"
               " [--reconnect-ms R]\n";
  std::exit(2);
}

Args parse(int argc, char** argv) {
  Args a;
  auto number = [&](int& i) -> long {
    if (i + 1 >= argc) usage(std::string(argv[i]) + " needs a number");
    char* end = nullptr;
    long v = std::strtol(argv[++i], &end, 10);
    if (*end != '\0' || v < 0) usage(std::string(argv[i - 1]) + ": not a number: " + argv[i]);
    return v;
  };
  for (int i = 1; i < argc; ++i) {
    std::string k = argv[i];
    if (k == "--port") a.port = static_cast<std::uint16_t>(number(i));
    else if (k == "--token-file" && i + 1 < argc) a.token_file = argv[++i];
    else if (k == "--nodes") a.nodes = static_cast<std::size_t>(number(i));
    else if (k == "--max-connections") a.max_connections = static_cast<std::size_t>(number(i));
    else if (k == "--busy-ms") a.busy_ms = static_cast<int>(number(i));
    else if (k == "--every-ms") a.every_ms = static_cast<int>(number(i));
    else if (k == "--stall") a.stall = static_cast<std::size_t>(number(i));
    else if (k == "--reconnect-ms") a.reconnect_ms = static_cast<int>(number(i));
    else usage("unknown argument " + k);
  }
  if (a.busy_ms > 0 && a.every_ms <= 0) usage("--busy-ms needs --every-ms");
  return a;
}

// ---- the server ----------------------------------------------------------------------------

struct BenchStatus : api::StatusSource {
  bool ready() const override { return true; }
  api::StatusSnapshot status() const override {
    api::StatusSnapshot s;
    s.backend = "userspace";
    s.interface = "meshd0";
    s.mtu = 1420;
    s.public_key = public_key;
    s.pod_cidr = "10.240.0.0/24";
    s.pod_cidr_settled = true;
    s.peer_count = 999;
    s.peers_reachable = 990;
    s.reconcile.passes = 100;
    s.reconcile.last_at_ms = 1'800'000'000'000;
    return s;
  }
  std::string public_key = keys::PrivateKey::generate().public_key().to_base64();
};

// A cluster as a running member holds it: N records with their own keys,
// endpoints and /24s, and this node's view of each peer. nodes() copies the
// vector, as the daemon's snapshot does.
struct BenchCluster : api::ClusterSource {
  explicit BenchCluster(std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) {
      api::NodeSnapshot s;
      char name[32];
      std::snprintf(name, sizeof name, "node-%04zu", i);
      s.name = name;
      s.identity = keys::PrivateKey::generate().public_key().to_base64();
      s.public_key = keys::PrivateKey::generate().public_key().to_base64();
      std::string third = std::to_string(240 + i / 256), fourth = std::to_string(i % 256);
      s.endpoints = {"192.168." + std::to_string(i / 250) + "." + std::to_string(1 + i % 250) +
                     ":51820"};
      s.pod_cidr = "10." + third + "." + fourth + ".0/24";
      s.version = 1 + i % 7;
      s.admitted_at_ms = 1'800'000'000'000 + static_cast<std::int64_t>(i) * 1000;
      s.self = i == 0;
      if (!s.self)
        s.stats = {.last_handshake_age_seconds = 5.0 + static_cast<double>(i % 120),
                   .rx_bytes = 1'000'000 + i * 37,
                   .tx_bytes = 2'000'000 + i * 41,
                   .reachable = i % 100 != 0};
      records.push_back(std::move(s));
    }
  }
  std::optional<api::ClusterSnapshot> cluster() const override {
    return api::ClusterSnapshot{.cluster_id = "5f0c2a9e41d7b3c8",
                                .cidr = "10.240.0.0/12",
                                .node_prefix_length = 24,
                                .join_target = "192.168.0.1:51821",
                                .settled = true};
  }
  std::vector<api::NodeSnapshot> nodes() const override { return records; }
  api::ControlPlaneCounters counters() const override { return {}; }
  // The benchmark only reads: the actions refuse, as on a node not yet a member.
  meshd::Result<api::RemovalResult> remove_node(const std::string& name) override {
    return meshd::fail(EAGAIN, "remove node " + name + " in the API benchmark");
  }
  meshd::Result<api::RotationResult> rotate_key() override {
    return meshd::fail(EAGAIN, "rotate the key in the API benchmark");
  }
  std::vector<api::NodeSnapshot> records;
};

double cpu_seconds() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

int serve(const Args& a) {
  if (a.token_file.empty()) usage("--token-file is required");
  std::string token = meshd::testing::read_file(a.token_file);
  while (!token.empty() && (token.back() == '\n' || token.back() == '\r')) token.pop_back();
  if (token.empty()) usage("empty token in " + a.token_file);

  meshd::testing::TempDir dir("meshd-bench-api");
  store::Database db(store::DatabaseOptions{.path = dir.file("meshd.db")});
  store::TokenRepo tokens(db);
  store::EventRepo events(db);
  BenchStatus status;
  BenchCluster cluster(a.nodes);
  api::Router router =
      api::make_router({.status = &status, .tokens = &tokens, .cluster = &cluster, .events = &events});

  asio::io_context ioc(1);
  api::ServerOptions so;
  so.tcp = *meshd::Endpoint::parse("127.0.0.1:" + std::to_string(a.port));
  so.bearer_token = token;
  so.max_connections = a.max_connections;
  api::Server server(ioc, so, router);

  // Set at SIGINT/SIGTERM: a timer handler already queued when its timer is
  // cancelled still runs (with success), so each checks this before re-arming.
  bool stopping = false;

  // The reconcile loop's stand-in: B ms of CPU on the API's own thread every E ms.
  std::uint64_t busy_passes = 0;
  asio::steady_timer busy(ioc);
  std::function<void()> arm = [&] {
    busy.expires_after(std::chrono::milliseconds(a.every_ms));
    busy.async_wait([&](boost::system::error_code ec) {
      if (ec || stopping) return;
      const auto until = Clock::now() + std::chrono::milliseconds(a.busy_ms);
      volatile std::uint64_t spin = 0;
      while (Clock::now() < until) spin = spin + 1;
      ++busy_passes;
      arm();
    });
  };
  if (a.busy_ms > 0) arm();

  // The loop's lag: how late a 10 ms timer fires. A late timer means the
  // loop itself was held (a handler, or the thread not scheduled); a slow
  // answer without it was slow elsewhere (the client, the kernel).
  double lag_max_ms = 0;
  std::uint64_t lags_over_100ms = 0;
  asio::steady_timer lag(ioc);
  std::function<void(Clock::time_point)> tick = [&](Clock::time_point due) {
    lag.expires_at(due);
    lag.async_wait([&, due](boost::system::error_code ec) {
      if (ec || stopping) return;
      const double late = std::chrono::duration<double, std::milli>(Clock::now() - due).count();
      lag_max_ms = std::max(lag_max_ms, late);
      if (late > 100) ++lags_over_100ms;
      tick(Clock::now() + std::chrono::milliseconds(10));
    });
  };
  tick(Clock::now() + std::chrono::milliseconds(10));

  const double cpu_at_listen = cpu_seconds();
  asio::signal_set signals(ioc, SIGINT, SIGTERM);
  signals.async_wait([&](boost::system::error_code, int) {
    stopping = true;
    const api::ServerCounters& c = server.counters();
    // The server's CPU since it started listening (its one loop thread):
    // divided by requests, the cost of an answer on this machine.
    const double cpu_s = cpu_seconds() - cpu_at_listen;
    std::printf(
        "counters: connections=%llu requests=%llu shed=%llu timeouts=%llu unauthorized=%llu "
        "busy_passes=%llu cpu=%.2fs loop_lag_max=%.0fms lags_over_100ms=%llu\n",
        static_cast<unsigned long long>(c.connections), static_cast<unsigned long long>(c.requests),
        static_cast<unsigned long long>(c.shed), static_cast<unsigned long long>(c.timeouts),
        static_cast<unsigned long long>(c.unauthorized),
        static_cast<unsigned long long>(busy_passes), cpu_s, lag_max_ms,
        static_cast<unsigned long long>(lags_over_100ms));
    std::fflush(stdout);
    server.close();
    busy.cancel();
    lag.cancel();
  });

  std::printf("listening %s nodes=%zu max_connections=%zu busy=%d/%dms\n",
              server.tcp_endpoint()->to_string().c_str(), a.nodes, a.max_connections, a.busy_ms,
              a.every_ms);
  std::fflush(stdout);
  ioc.run();
  return 0;
}

// ---- the stalled clients -------------------------------------------------------------------

std::atomic<bool> g_stop{false};
void on_signal(int) { g_stop = true; }

// A connected socket that has sent half a request line, or -1.
int stalled_connection(std::uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  static constexpr char kHalf[] = "GET /v1/no";
  if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 ||
      ::send(fd, kHalf, sizeof kHalf - 1, MSG_NOSIGNAL) != ssize_t(sizeof kHalf - 1)) {
    ::close(fd);
    return -1;
  }
  return fd;
}

int stall(const Args& a) {
  if (a.port == 0) usage("--stall needs --port");
  struct sigaction sa{};
  sa.sa_handler = on_signal;
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);

  std::vector<int> fds(a.stall, -1);
  std::vector<Clock::time_point> reopen_at(a.stall, Clock::now());
  std::uint64_t opened = 0, closed_by_server = 0, failed = 0;
  bool announced = false;
  while (!g_stop) {
    const auto now = Clock::now();
    for (std::size_t i = 0; i < fds.size(); ++i) {
      if (fds[i] >= 0 || now < reopen_at[i]) continue;
      fds[i] = stalled_connection(a.port);
      if (fds[i] >= 0) ++opened;
      else {
        ++failed;
        reopen_at[i] = now + std::chrono::milliseconds(a.reconnect_ms);
      }
    }
    if (!announced && opened >= a.stall) {
      std::printf("stalling %zu\n", a.stall);
      std::fflush(stdout);
      announced = true;
    }
    std::vector<pollfd> p;
    std::vector<std::size_t> index;
    for (std::size_t i = 0; i < fds.size(); ++i)
      if (fds[i] >= 0) {
        p.push_back({.fd = fds[i], .events = POLLIN, .revents = 0});
        index.push_back(i);
      }
    if (::poll(p.data(), p.size(), 50) <= 0) continue;
    for (std::size_t k = 0; k < p.size(); ++k) {
      if (p[k].revents == 0) continue;
      // Whatever the server sent (a 408, nothing), it is done with us.
      std::size_t i = index[k];
      ::close(fds[i]);
      fds[i] = -1;
      ++closed_by_server;
      reopen_at[i] = Clock::now() + std::chrono::milliseconds(a.reconnect_ms);
    }
  }
  for (int fd : fds)
    if (fd >= 0) ::close(fd);
  std::printf("stalled: opened=%llu closed_by_server=%llu connect_failed=%llu\n",
              static_cast<unsigned long long>(opened),
              static_cast<unsigned long long>(closed_by_server),
              static_cast<unsigned long long>(failed));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Args a = parse(argc, argv);
  return a.stall > 0 ? stall(a) : serve(a);
}
