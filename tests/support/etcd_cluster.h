// A real etcd cluster for the datastore tests: n members of Debian's etcd
// (/usr/bin/etcd, 3.4) as processes in a network namespace the test made,
// with short raft timings, data directories in a TempDir, and a bounded wait
// until every member is healthy. Two placements:
//   - EtcdCluster(n, options): a namespace of its own, members on 127.0.0.11,
//     .12, ...; a client in the test enters it (nl::NetnsGuard on ns().fd()).
//   - EtcdCluster(host, addresses, options): members on addresses of `host`,
//     a namespace on the cluster tests' underlay (ClusterNodes::add_host), so
//     meshd nodes in their own namespaces reach them across the bridge.
// Secure mode (options.secure): a throwaway CA, one server certificate with
// IP SANs for client and peer TLS, a client certificate WITHOUT a CommonName
// (etcd 3.4's JSON gateway answers 400 "CommonName of client sending a request
// against gateway will be ignored" to a certificate that has one, measured),
// --client-cert-auth, and RBAC: a root user and a `meshd` user whose role may
// read and write only keys under options.prefix; security() has the paths
// and credentials. The harness drives the members through the gateway with
// curl inside the namespace (as root in secure mode), never through the
// client under test.
// Teardown: every member is ended by PID (SIGKILL, also a SIGSTOPped one)
// and reaped in the destructor, also when a test fails; each member also
// carries a parent-death signal, so a test process that crashes takes its
// members with it. The members are children of the thread that started them
// (the parent-death signal follows that thread): start and restart them from
// the test's main thread. Tests link Boost::json.
#pragma once

#include "tests/support/eventually.h"
#include "tests/support/netns.h"
#include "tests/support/process.h"
#include "tests/support/temp_dir.h"
#include "tests/support/underlay.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/json.hpp>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace meshd::testing {

struct EtcdClusterOptions {
  bool secure = false;  // TLS (client and peer), client certificates, RBAC
  // The keys the `meshd` role may read and write in secure mode.
  std::string prefix = "/meshd/";
  // Raft timings: short, so an election after a killed leader takes well
  // under a second on an idle machine.
  int heartbeat_ms = 50;
  int election_ms = 500;
  // etcd's --experimental-watch-progress-notify-interval; 0 leaves etcd's
  // default (10 minutes). The 3.4 gateway passes these notifications on to a
  // watch created with progress_notify (measured).
  std::chrono::milliseconds progress_notify_interval{0};
  // etcd's --auth-token-ttl (a simple token unused this long is forgotten);
  // 0 leaves etcd's default (300 s).
  std::chrono::seconds auth_token_ttl{0};
  // Bound on the first start (about 2 s measured on loopback; generous for
  // a loaded CI machine).
  std::chrono::milliseconds start_bound = std::chrono::seconds(30);
};

// Secure mode's files and credentials (all empty in plain mode).
struct EtcdSecurity {
  std::string ca_file;    // trusts the members' certificate
  std::string cert_file;  // the client certificate (no CommonName)
  std::string key_file;
  std::string root_user = "root", root_password;
  std::string user = "meshd", password;  // role "meshd": readwrite on prefix only
  std::string role = "meshd";
  std::string prefix;
};

class EtcdCluster {
 public:
  static constexpr std::uint16_t kClientPort = 2379;
  static constexpr std::uint16_t kPeerPort = 2380;

  // What the cluster needs that this machine lacks ("" when nothing): the
  // tests MESHD_REQUIRE it empty, so a machine without etcd fails.
  static std::string missing() {
    if (!is_root()) return "root (etcd runs in a network namespace the test makes)";
    for (const char* tool : {"/usr/bin/etcd", "/usr/bin/curl", "/usr/bin/openssl", "/usr/bin/setpriv"})
      if (::access(tool, X_OK) != 0) return std::string(tool) + " (scripts/install-deps.sh installs it)";
    return "";
  }

  explicit EtcdCluster(int n = 3, EtcdClusterOptions o = {})
      : owned_ns_(std::make_unique<Netns>("ed")), ns_(owned_ns_.get()), options_(std::move(o)) {
    std::vector<std::string> addresses;
    for (int i = 0; i < n; ++i) addresses.push_back("127.0.0." + std::to_string(11 + i));
    init(std::move(addresses));
  }

  // Members on `addresses` (already configured) of a namespace the test made
  // and keeps for at least as long as this object.
  EtcdCluster(Netns& host, std::vector<std::string> addresses, EtcdClusterOptions o = {})
      : ns_(&host), options_(std::move(o)) {
    init(std::move(addresses));
  }

  ~EtcdCluster() {
    for (auto& m : members_) end(m);
    if (owned_ns_) end_processes_in(*owned_ns_);
    // For a post-mortem: the members' logs outlive the run.
    if (std::getenv("MESHD_KEEP_TEST_DIRS")) {
      std::string kept = dir_.path() + "-kept";
      sh("cp -r " + dir_.path() + " " + kept + " && rm -rf " + kept + "/m*/data");
      std::fprintf(stderr, "etcd logs kept in %s\n", kept.c_str());
    }
  }
  EtcdCluster(const EtcdCluster&) = delete;
  EtcdCluster& operator=(const EtcdCluster&) = delete;

  int size() const { return static_cast<int>(members_.size()); }
  Netns& ns() { return *ns_; }
  const EtcdClusterOptions& options() const { return options_; }
  const EtcdSecurity& security() const { return security_; }
  const std::string& address(int i) const { return members_.at(i).address; }
  std::string endpoint(int i) const {
    return scheme() + "://" + address(i) + ":" + std::to_string(kClientPort);
  }
  std::vector<std::string> endpoints() const {
    std::vector<std::string> out;
    for (int i = 0; i < size(); ++i) out.push_back(endpoint(i));
    return out;
  }
  // Index of the member serving `endpoint` ("http://addr:port"), or -1.
  int index_of(const std::string& endpoint_url) const {
    for (int i = 0; i < size(); ++i)
      if (endpoint(i) == endpoint_url) return i;
    return -1;
  }
  pid_t pid(int i) const { return members_.at(i).pid; }
  bool running(int i) const { return members_.at(i).pid > 0; }
  bool stopped(int i) const { return members_.at(i).stopped; }

  // Sends `sig` to member i by PID. SIGKILL and SIGTERM also reap it (it is
  // then down until restart()); SIGSTOP / SIGCONT freeze and thaw it.
  void kill(int i, int sig = SIGKILL) {
    Member& m = members_.at(i);
    if (m.pid <= 0) throw std::runtime_error("etcd member " + std::to_string(i) + " is not running");
    if (sig == SIGKILL || sig == SIGTERM) {
      end(m, sig);
      return;
    }
    ::kill(m.pid, sig);
    if (sig == SIGSTOP) m.stopped = true;
    if (sig == SIGCONT) m.stopped = false;
  }

  // Ends members `which` if they run and starts them again on their data
  // directories; returns once each answers on its client port. etcd opens
  // that port only once the member has joined a quorum: members that can
  // only form one together are restarted together (restart({0, 1, 2})).
  // Throws when one does not come up within `bound`.
  void restart(const std::vector<int>& which, std::chrono::milliseconds bound = std::chrono::seconds(20)) {
    for (int i : which) end(members_.at(i));
    for (int i : which) start(members_.at(i));
    for (int i : which)
      if (!eventually([&] { return answers(i); }, bound, std::chrono::milliseconds(50)))
        throw std::runtime_error("etcd member " + std::to_string(i) + " did not come back within " +
                                 std::to_string(bound.count()) + " ms\n" + log_tail(i));
  }
  void restart(int i, std::chrono::milliseconds bound = std::chrono::seconds(20)) {
    restart(std::vector<int>{i}, bound);
  }

  // Every running, not stopped member says {"health":"true"} within `bound`
  // (a leader is elected and the member can serve a quorum read).
  bool wait_healthy(std::chrono::milliseconds bound = std::chrono::seconds(20)) {
    return eventually(
        [&] {
          for (int i = 0; i < size(); ++i)
            if (running(i) && !stopped(i) && !healthy(i)) return false;
          return true;
        },
        bound, std::chrono::milliseconds(50));
  }
  bool healthy(int i) {
    auto r = call(i, "/health", "", "GET", std::chrono::seconds(3), false);
    return r.status == 200 && r.body.find("\"health\":\"true\"") != std::string::npos;
  }

  // The index of the member the running members name as leader (POST
  // /v3/maintenance/status: the leader field, an id the member list maps to
  // an index), or nothing when no answering member names a running one.
  std::optional<int> leader() {
    for (int i = 0; i < size(); ++i) {
      if (!running(i) || stopped(i)) continue;
      auto r = call(i, "/v3/maintenance/status", "{}", "POST", std::chrono::seconds(3), false);
      if (r.status != 200) continue;
      auto v = parse(r.body);
      const auto* o = v.if_object();
      if (!o || !o->contains("leader")) continue;
      std::string leader_id(o->at("leader").as_string());
      // A member names a killed leader until its election timeout passes.
      if (auto it = member_ids_.find(leader_id);
          it != member_ids_.end() && running(it->second) && !stopped(it->second))
        return it->second;
    }
    return std::nullopt;
  }

  // Compacts the store's history up to `revision` (physically: a watch from
  // before it then gets compact_revision). Throws with etcd's answer on error.
  void compact(std::int64_t revision) {
    std::string body = R"({"revision":")" + std::to_string(revision) + R"(","physical":true})";
    auto r = call_any("/v3/kv/compaction", body);
    if (r.status != 200 || r.body.find("\"error\"") != std::string::npos)
      throw std::runtime_error("etcd compaction to " + std::to_string(revision) + ": " + r.body);
  }

  // A JSON gateway call from inside the namespace (curl; as root in secure
  // mode): {HTTP status (0 = no answer), body}. For a test's set-up and its
  // checks, where the client under test must not be the judge.
  struct Answer {
    int status = 0;
    std::string body;
  };
  // `as_root`: with a root token once RBAC is on (authenticating needs a
  // quorum: calls that must answer without one pass false).
  Answer call(int i, const std::string& path, const std::string& body, const std::string& method = "POST",
              std::chrono::milliseconds timeout = std::chrono::seconds(3), bool as_root = true) {
    std::vector<std::string> argv = curl_argv(timeout);
    argv.insert(argv.end(), {"-X", method});
    if (method != "GET") argv.insert(argv.end(), {"-H", "Content-Type: application/json", "--data-binary", body});
    if (as_root && options_.secure && authenticated_)
      argv.insert(argv.end(), {"-H", "Authorization: " + root_token(i)});
    argv.push_back(endpoint(i) + path);
    return run_curl(argv);
  }
  // A call with a token of the test's choice (authenticate()), e.g. one that
  // a restart should have made invalid.
  Answer call_with_token(int i, const std::string& path, const std::string& body, const std::string& token) {
    std::vector<std::string> argv = curl_argv(std::chrono::seconds(3));
    argv.insert(argv.end(), {"-X", "POST", "-H", "Content-Type: application/json", "--data-binary", body, "-H",
                             "Authorization: " + token, endpoint(i) + path});
    return run_curl(argv);
  }
  // A simple token for `user` from member i ("" when etcd refuses).
  std::string authenticate(int i, const std::string& user, const std::string& password) {
    std::vector<std::string> argv = curl_argv(std::chrono::seconds(3));
    argv.insert(argv.end(), {"-X", "POST", "--data-binary",
                             R"({"name":")" + user + R"(","password":")" + password + R"("})",
                             endpoint(i) + "/v3/auth/authenticate"});
    auto r = run_curl(argv);
    auto v = parse(r.body);
    const auto* o = v.if_object();
    if (!o || !o->contains("token") || !o->at("token").is_string()) return "";
    return std::string(o->at("token").as_string());
  }

  // The same call to the first running member that answers.
  Answer call_any(const std::string& path, const std::string& body) {
    Answer last;
    for (int i = 0; i < size(); ++i) {
      if (!running(i) || stopped(i)) continue;
      last = call(i, path, body);
      if (last.status != 0) return last;
    }
    return last;
  }

  // Member i's log (etcd's output) and its last lines, for failure messages.
  std::string logs(int i) const { return read_file(members_.at(i).log); }
  std::string log_tail(int i, std::size_t lines = 30) const {
    std::string all = logs(i);
    std::size_t at = all.size();
    for (std::size_t k = 0; k <= lines && at != std::string::npos && at > 0; ++k) at = all.rfind('\n', at - 1);
    return "[etcd member " + std::to_string(i) + " log, last lines]\n" +
           (at == std::string::npos ? all : all.substr(at + 1));
  }
  std::string all_log_tails(std::size_t lines = 15) const {
    std::string out;
    for (int i = 0; i < size(); ++i) out += log_tail(i, lines) + "\n";
    return out;
  }

  // Every key under `prefix` with its value, as etcd holds them, read by the
  // harness (curl, as root in secure mode), never by the client under test.
  std::map<std::string, std::string> contents(const std::string& prefix) {
    std::string end = prefix;
    end.back() = static_cast<char>(end.back() + 1);
    auto r = call_any("/v3/kv/range", R"({"key":")" + base64(prefix) + R"(","range_end":")" + base64(end) + R"("})");
    auto v = parse(r.body);
    const auto* o = v.if_object();
    if (r.status != 200 || !o) throw std::runtime_error("etcd range " + prefix + ": " + r.body);
    std::map<std::string, std::string> out;
    if (const auto* kvs = o->if_contains("kvs"))
      for (const auto& kv : kvs->as_array()) {
        const auto& e = kv.as_object();
        std::string value = e.contains("value") ? unbase64(std::string(e.at("value").as_string())) : "";
        out[unbase64(std::string(e.at("key").as_string()))] = value;
      }
    return out;
  }

  static std::string unbase64(const std::string& in) {
    static const std::string t = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    unsigned buf = 0;
    int bits = 0;
    for (char ch : in) {
      if (ch == '=') break;
      auto at = t.find(ch);
      if (at == std::string::npos) throw std::runtime_error("etcd test cluster: not base64: " + in);
      buf = (buf << 6) | static_cast<unsigned>(at);
      bits += 6;
      if (bits >= 8) {
        bits -= 8;
        out.push_back(static_cast<char>((buf >> bits) & 0xff));
      }
    }
    return out;
  }

  static std::string base64(const std::string& bytes) {
    static const char* t = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    std::size_t i = 0;
    for (; i + 2 < bytes.size(); i += 3) {
      unsigned v = (std::uint8_t(bytes[i]) << 16) | (std::uint8_t(bytes[i + 1]) << 8) | std::uint8_t(bytes[i + 2]);
      out += {t[v >> 18], t[(v >> 12) & 63], t[(v >> 6) & 63], t[v & 63]};
    }
    if (i + 1 == bytes.size()) {
      unsigned v = std::uint8_t(bytes[i]) << 16;
      out += {t[v >> 18], t[(v >> 12) & 63], '=', '='};
    } else if (i + 2 == bytes.size()) {
      unsigned v = (std::uint8_t(bytes[i]) << 16) | (std::uint8_t(bytes[i + 1]) << 8);
      out += {t[v >> 18], t[(v >> 12) & 63], t[(v >> 6) & 63], '='};
    }
    return out;
  }

 private:
  struct Member {
    std::string name, address, data_dir, log;
    pid_t pid = 0;
    bool stopped = false;
  };

  std::string scheme() const { return options_.secure ? "https" : "http"; }

  void init(std::vector<std::string> addresses) {
    if (auto m = missing(); !m.empty()) throw std::runtime_error("etcd test cluster: missing " + m);
    if (addresses.empty()) throw std::runtime_error("etcd test cluster: no member addresses");
    std::string initial;
    for (std::size_t i = 0; i < addresses.size(); ++i) {
      Member m;
      m.name = "m" + std::to_string(i);
      m.address = addresses[i];
      std::filesystem::create_directories(dir_.file(m.name));
      m.data_dir = dir_.file(m.name + "/data");
      m.log = dir_.file(m.name + "/etcd.log");
      initial += (i ? "," : "") + m.name + "=" + scheme() + "://" + m.address + ":" + std::to_string(kPeerPort);
      members_.push_back(std::move(m));
    }
    initial_cluster_ = initial;
    // A constructor that throws runs no destructor: end what started here.
    try {
      if (options_.secure) make_pki();
      for (auto& m : members_) start(m);
      if (!wait_healthy(options_.start_bound))
        throw std::runtime_error("etcd test cluster not healthy within " +
                                 std::to_string(options_.start_bound.count()) + " ms\n" + all_log_tails());
      learn_member_ids();
      if (options_.secure) enable_rbac();
    } catch (...) {
      for (auto& m : members_) end(m);
      if (owned_ns_) end_processes_in(*owned_ns_);
      throw;
    }
  }

  void start(Member& m) {
    std::string ip = ::access("/usr/sbin/ip", X_OK) == 0 ? "/usr/sbin/ip" : "/sbin/ip";
    std::string client = scheme() + "://" + m.address + ":" + std::to_string(kClientPort);
    std::string peer = scheme() + "://" + m.address + ":" + std::to_string(kPeerPort);
    // setpriv: the member dies with the thread that started it, so a crashed
    // test leaves no etcd behind; ip netns exec then execs etcd in place, so
    // the PID is etcd's.
    std::vector<std::string> argv{"/usr/bin/setpriv", "--pdeathsig", "KILL", ip, "netns", "exec", ns_->name(),
                                  "/usr/bin/etcd", "--name", m.name, "--data-dir", m.data_dir,
                                  "--listen-client-urls", client, "--advertise-client-urls", client,
                                  "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                                  "--initial-cluster", initial_cluster_, "--initial-cluster-state", "new",
                                  "--initial-cluster-token", "meshd-test-" + std::to_string(::getpid()),
                                  "--heartbeat-interval", std::to_string(options_.heartbeat_ms),
                                  "--election-timeout", std::to_string(options_.election_ms),
                                  // Cheap password hashes: tests authenticate often.
                                  "--bcrypt-cost", "4"};
    if (options_.progress_notify_interval.count() > 0)
      argv.insert(argv.end(), {"--experimental-watch-progress-notify-interval",
                               std::to_string(options_.progress_notify_interval.count()) + "ms"});
    if (options_.auth_token_ttl.count() > 0)
      argv.insert(argv.end(), {"--auth-token-ttl", std::to_string(options_.auth_token_ttl.count())});
    if (options_.secure)
      argv.insert(argv.end(), {"--cert-file", server_cert_, "--key-file", server_key_, "--trusted-ca-file",
                               security_.ca_file, "--client-cert-auth", "--peer-cert-file", server_cert_,
                               "--peer-key-file", server_key_, "--peer-trusted-ca-file", security_.ca_file,
                               "--peer-client-cert-auth"});
    SpawnOptions o;
    o.stdin_path = "/dev/null";
    o.stdout_path = m.log;
    o.stderr_path = m.log;
    m.pid = spawn(argv, o);
    m.stopped = false;
  }

  // Ends the member by PID (a stopped one too: SIGKILL needs no SIGCONT).
  static void end(Member& m, int sig = SIGKILL) {
    if (m.pid <= 0) return;
    ::kill(m.pid, sig);
    if (m.stopped && sig != SIGKILL) ::kill(m.pid, SIGCONT);
    ::waitpid(m.pid, nullptr, 0);
    m.pid = 0;
    m.stopped = false;
  }

  // The member is listening and answers HTTP (any status).
  bool answers(int i) { return call(i, "/version", "", "GET", std::chrono::seconds(1), false).status != 0; }

  std::vector<std::string> curl_argv(std::chrono::milliseconds timeout) const {
    std::string ip = ::access("/usr/sbin/ip", X_OK) == 0 ? "/usr/sbin/ip" : "/sbin/ip";
    std::vector<std::string> argv{ip, "netns", "exec", ns_->name(), "/usr/bin/curl", "-s", "-m",
                                  std::to_string(timeout.count() / 1000.0), "-w", "\n%{http_code}"};
    if (options_.secure)
      argv.insert(argv.end(), {"--cacert", security_.ca_file, "--cert", security_.cert_file, "--key",
                               security_.key_file});
    return argv;
  }
  static Answer run_curl(const std::vector<std::string>& argv) {
    auto r = run_process(argv, "");
    Answer a;
    auto nl = r.out.rfind('\n');
    if (nl == std::string::npos) return a;
    try {
      a.status = std::stoi(r.out.substr(nl + 1));
    } catch (const std::exception&) {
      a.status = 0;
    }
    a.body = r.out.substr(0, nl);
    return a;
  }
  static boost::json::value parse(const std::string& body) {
    boost::system::error_code ec;
    auto v = boost::json::parse(body, ec);
    return ec ? boost::json::value() : v;
  }

  // Member names to indexes by their raft ids (the leader field names an id).
  void learn_member_ids() {
    auto r = call_any("/v3/cluster/member/list", "{}");
    auto v = parse(r.body);
    const auto* o = v.if_object();
    if (!o || !o->contains("members"))
      throw std::runtime_error("etcd test cluster: no member list: " + r.body);
    for (const auto& mv : o->at("members").as_array()) {
      const auto& mo = mv.as_object();
      std::string name = mo.contains("name") ? std::string(mo.at("name").as_string()) : "";
      for (int i = 0; i < size(); ++i)
        if (members_[i].name == name) member_ids_[std::string(mo.at("ID").as_string())] = i;
    }
    if (static_cast<int>(member_ids_.size()) != size())
      throw std::runtime_error("etcd test cluster: the member list does not name every member: " + r.body);
  }

  // A random password: the tests check that errors never carry it.
  static std::string random_hex(std::size_t bytes) {
    std::ifstream in("/dev/urandom", std::ios::binary);
    std::string out;
    static const char* hex = "0123456789abcdef";
    for (std::size_t i = 0; i < bytes; ++i) {
      auto c = static_cast<unsigned char>(in.get());
      out += hex[c >> 4];
      out += hex[c & 15];
    }
    return out;
  }

  void make_pki() {
    std::string d = dir_.file("pki");
    std::filesystem::create_directories(d);
    const std::string key = " -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes";
    // The members check a peer's client certificate against the peer's
    // source address: 127.0.0.1 on loopback, the host's first address on
    // the underlay; every member address and 127.0.0.1 are in the SANs.
    std::string sans = "IP:127.0.0.1";
    for (const auto& m : members_) sans += ",IP:" + m.address;
    write_file(d + "/server.ext", "subjectAltName=" + sans + "\nextendedKeyUsage=serverAuth,clientAuth\n");
    write_file(d + "/client.ext", "extendedKeyUsage=clientAuth\n");
    auto sign = [&](const std::string& name, const std::string& subject) {
      return sh("cd " + d + " && openssl req" + key + " -keyout " + name + ".key -out " + name + ".csr -subj " +
                subject + " 2>/dev/null && openssl x509 -req -in " + name +
                ".csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 -extfile " + name + ".ext -out " + name +
                ".crt 2>/dev/null") == 0;
    };
    bool ok = sh("cd " + d + " && openssl req -x509" + key +
                 " -keyout ca.key -out ca.crt -days 2 -subj /CN=meshd-test-etcd-ca 2>/dev/null") == 0 &&
              sign("server", "/O=meshd-test-etcd") &&
              // No CommonName: see the top of this file.
              sign("client", "/O=meshd-test-client");
    if (!ok) throw std::runtime_error("etcd test cluster: openssl could not make the certificates in " + d);
    security_.ca_file = d + "/ca.crt";
    security_.cert_file = d + "/client.crt";
    security_.key_file = d + "/client.key";
    server_cert_ = d + "/server.crt";
    server_key_ = d + "/server.key";
    security_.root_password = random_hex(12);
    security_.password = random_hex(12);
    security_.prefix = options_.prefix;
  }

  // Root (with the root role, which auth/enable requires) and the meshd
  // user, whose role may read and write [prefix, prefix_end) only; then
  // auth on. Through the gateway's /v3/auth endpoints.
  void enable_rbac() {
    std::string prefix_end = options_.prefix;
    while (!prefix_end.empty() && static_cast<unsigned char>(prefix_end.back()) == 0xff) prefix_end.pop_back();
    if (prefix_end.empty()) throw std::runtime_error("etcd test cluster: the RBAC prefix has no end");
    prefix_end.back() = static_cast<char>(prefix_end.back() + 1);
    const EtcdSecurity& s = security_;
    const std::vector<std::pair<std::string, std::string>> steps{
        {"user/add", R"({"name":")" + s.root_user + R"(","password":")" + s.root_password + R"("})"},
        {"role/add", R"({"name":"root"})"},
        {"user/grant", R"({"user":")" + s.root_user + R"(","role":"root"})"},
        {"user/add", R"({"name":")" + s.user + R"(","password":")" + s.password + R"("})"},
        {"role/add", R"({"name":")" + s.role + R"("})"},
        {"role/grant", R"({"name":")" + s.role + R"(","perm":{"permType":"READWRITE","key":")" +
                           base64(options_.prefix) + R"(","range_end":")" + base64(prefix_end) + R"("}})"},
        {"user/grant", R"({"user":")" + s.user + R"(","role":")" + s.role + R"("})"},
        {"enable", "{}"},
    };
    for (const auto& [path, body] : steps) {
      auto r = call_any("/v3/auth/" + path, body);
      if (r.status != 200 || r.body.find("\"error\"") != std::string::npos)
        // The body names no password: etcd's errors do not echo requests.
        throw std::runtime_error("etcd test cluster: auth " + path + " failed: " + r.body);
    }
    authenticated_ = true;
  }

  // A token for root from member i, per call: simple tokens expire when
  // unused for --auth-token-ttl. (They are known cluster-wide once applied,
  // and survive a restart of every member: the WAL replays them, measured.)
  std::string root_token(int i) { return authenticate(i, security_.root_user, security_.root_password); }

  std::unique_ptr<Netns> owned_ns_;
  Netns* ns_;
  EtcdClusterOptions options_;
  TempDir dir_{"meshd-etcd"};
  std::vector<Member> members_;
  std::string initial_cluster_;
  std::map<std::string, int> member_ids_;
  EtcdSecurity security_;
  std::string server_cert_, server_key_;
  bool authenticated_ = false;
};

}  // namespace meshd::testing
