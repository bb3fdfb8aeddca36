// The API of a real meshd process (static mode, userspace backend) in a
// network namespace of the test's own, with a unix socket and a TCP listener
// on 127.0.0.1 guarded by a bearer token file:
//   - Debian's Prometheus, started inside the same namespace, scrapes
//     /metrics every second with the token from its credentials_file, and its
//     query API returns meshd's series (meshd_ready 1, up 1, the reconcile
//     counter): the exposition and the authorization work with the real
//     scraper, not only with promtool;
//   - over TCP a request without or with a wrong token gets 401 and with the
//     token 200; over the unix socket no token is needed;
//   - meshctl drives the same meshd over the unix socket and over TCP with
//     and without its token file;
//   - on an address that is neither loopback nor the mesh address meshd
//     refuses plain HTTP and says why, and serves TLS with a certificate from
//     files, which meshctl verifies against the CA it is given.
// Every process is ended by PID and the namespace removed, also on failure.
#include "tests/support/eventually.h"
#include "tests/support/netns.h"
#include "tests/support/prerequisite.h"
#include "tests/support/process.h"
#include "tests/support/temp_dir.h"

#include <boost/json.hpp>
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace meshd::testing {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;

constexpr const char* kPrometheus = "/usr/bin/prometheus";
constexpr const char* kCurl = "/usr/bin/curl";
constexpr const char* kWireguardGo = "/usr/bin/wireguard-go";
// Inside the test's own namespace: its loopback is private, so fixed ports
// cannot collide with anything else on the machine.
constexpr int kApiPort = 8443;
constexpr int kPrometheusPort = 9090;
// A test token (not a secret); written with a trailing newline, as `echo`
// would, which both meshd and Prometheus must strip.
constexpr const char* kToken = "h6-test-token-0123456789abcdef";

class ApiProcess : public ::testing::Test {
 protected:
  void SetUp() override {
    MESHD_REQUIRE(is_root(), "root (network namespaces)");
    MESHD_REQUIRE(::access(kPrometheus, X_OK) == 0, "Debian's prometheus (/usr/bin/prometheus)");
    MESHD_REQUIRE(::access(kCurl, X_OK) == 0, "curl (/usr/bin/curl)");
    MESHD_REQUIRE(::access(kWireguardGo, X_OK) == 0, "wireguard-go (/usr/bin/wireguard-go)");

    ns_ = std::make_unique<Netns>("mapi");
    // Unique per run, and within the 15 bytes of IFNAMSIZ.
    iface_ = "mapi" + std::to_string(::getpid() % 1000000);
    std::filesystem::create_directories(dir_.file("wg"));
    write_file(dir_.file("token"), std::string(kToken) + "\n");
    ::chmod(dir_.file("token").c_str(), 0600);
    std::ostringstream c;
    c << "[node]\nname = \"api-node\"\npod_cidr = \"10.78.1.0/24\"\n"
      << "[wireguard]\ninterface = \"" << iface_ << "\"\nbackend = \"userspace\"\n"
      << "[userspace]\nsocket_dir = \"" << dir_.file("wg") << "\"\n"
      << "[state]\ndatabase = \"" << dir_.file("meshd.db") << "\"\nruntime_dir = \""
      << dir_.file("run") << "\"\n"
      << "[reconcile]\nresync_interval_ms = 500\n"
      << "[cni]\nconf_dir = \"\"\n"
      << "[api]\nsocket = \"" << socket_path() << "\"\n"
      << api_listen_section();
    write_file(dir_.file("meshd.toml"), c.str());
    if (!prepare()) return;

    meshd_pid_ = start_in_namespace({std::string(MESHD_BIN_DIR) + "/meshd", "--config",
                                     dir_.file("meshd.toml")},
                                    dir_.file("meshd.log"));
    // The TCP listener is bound after the first reconcile pass.
    ASSERT_TRUE(eventually([&] { return curl_status("-H 'Authorization: Bearer " + std::string(kToken) +
                                                    "' " + ready_url()) == "200"; },
                           20s, 50ms))
        << "meshd's API did not become ready\n" << logs();
  }

  // The [api] keys besides the socket: TCP on the namespace's loopback.
  virtual std::string api_listen_section() const {
    return "listen = \"127.0.0.1:" + std::to_string(kApiPort) + "\"\nbearer_token_file = \"" +
           dir_.file("token") + "\"\n";
  }
  virtual std::string ready_url() const { return api_url("/v1/readyz"); }
  // Runs before meshd starts; false stops SetUp (a failed assertion).
  virtual bool prepare() { return true; }

  // meshctl inside the namespace; its exit status, its stdout and stderr in `out`.
  int meshctl(const std::string& args, std::string& out) {
    std::string file = dir_.file("meshctl.out");
    int rc = ns_->run(std::string(MESHD_BIN_DIR) + "/meshctl " + args + " >" + file + " 2>&1");
    out = read_file(file);
    return rc;
  }

  ~ApiProcess() override {
    stop(prometheus_pid_);
    stop(meshd_pid_);
    // What meshd started and left running on purpose (wireguard-go keeps the
    // device for the next meshd to adopt): ours to end, by PID.
    if (ns_) {
      for (int attempt = 0; attempt < 50; ++attempt) {
        std::istringstream pids(sh_out("ip netns pids " + ns_->name() + " 2>/dev/null"));
        bool any = false;
        for (pid_t pid; pids >> pid;) {
          any = true;
          ::kill(pid, SIGKILL);
        }
        if (!any) break;
        std::this_thread::sleep_for(20ms);
      }
    }
    ns_.reset();  // deletes the namespace
  }

  std::string socket_path() const { return dir_.file("api.sock"); }
  static std::string api_url(const std::string& path) {
    return "http://127.0.0.1:" + std::to_string(kApiPort) + path;
  }

  // `ip netns exec` execs the program, so the PID is the program's own.
  pid_t start_in_namespace(std::vector<std::string> argv, const std::string& log) {
    argv.insert(argv.begin(), {"/bin/ip", "netns", "exec", ns_->name()});
    return spawn(argv, {.stdout_path = log, .stderr_path = log});
  }

  // SIGTERM, a bounded wait, then SIGKILL; reaps the process.
  static void stop(pid_t& pid) {
    if (pid <= 0) return;
    ::kill(pid, SIGTERM);
    int status = 0;
    bool reaped = eventually([&] { return ::waitpid(pid, &status, WNOHANG) == pid; }, 5s, 20ms);
    if (!reaped) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
    }
    pid = 0;
  }

  // curl inside the namespace; `args` are shell words. The HTTP status code
  // ("000" when nothing answered); the body goes to `body` when given.
  std::string curl_status(const std::string& args, std::string* body = nullptr) {
    std::string out_file = dir_.file("curl.out");
    std::filesystem::remove(out_file);
    std::string code = ns_->out(std::string(kCurl) + " -s --max-time 5 -o " + out_file +
                                " -w '%{http_code}' " + args + " 2>/dev/null");
    if (body) *body = read_file(out_file);
    return code;
  }

  // One Prometheus instant query (`expr` as typed in its UI): the value of
  // meshd's series (job meshd, instance 127.0.0.1:kApiPort), or nothing
  // while Prometheus has none (or is not up yet).
  std::optional<std::string> query(const std::string& expr) {
    std::string body;
    std::string code = curl_status("-G --data-urlencode 'query=" + expr + "' http://127.0.0.1:" +
                                       std::to_string(kPrometheusPort) + "/api/v1/query",
                                   &body);
    if (code != "200") return std::nullopt;
    boost::system::error_code ec;
    json::value v = json::parse(body, ec);
    if (ec || !v.is_object()) return std::nullopt;
    const json::object& o = v.as_object();
    if (o.if_contains("status") == nullptr || o.at("status") != "success") return std::nullopt;
    for (const json::value& r : o.at("data").at("result").as_array()) {
      const json::object& metric = r.at("metric").as_object();
      const json::value* job = metric.if_contains("job");
      const json::value* instance = metric.if_contains("instance");
      const std::string want_instance = "127.0.0.1:" + std::to_string(kApiPort);
      if (job && job->is_string() && job->as_string() == "meshd" && instance &&
          instance->is_string() && instance->as_string() == want_instance)
        return std::string(r.at("value").as_array().at(1).as_string());
    }
    return std::nullopt;
  }

  // For failure messages: both logs, and Prometheus' own view of the target
  // (its lastError says why a scrape failed, e.g. a 401).
  std::string logs() const {
    std::string targets =
        prometheus_pid_ > 0 ? ns_->out(std::string(kCurl) + " -s --max-time 5 http://127.0.0.1:" +
                                       std::to_string(kPrometheusPort) + "/api/v1/targets")
                            : "";
    return "--- meshd log:\n" + read_file(dir_.file("meshd.log")) + "--- prometheus log (tail):\n" +
           sh_out("tail -n 30 " + dir_.file("prometheus.log") + " 2>/dev/null") +
           "--- prometheus targets:\n" + targets + "\n";
  }

  TempDir dir_{"meshd-api-it"};
  std::unique_ptr<Netns> ns_;
  std::string iface_;
  pid_t meshd_pid_ = 0;
  pid_t prometheus_pid_ = 0;
};

TEST_F(ApiProcess, PrometheusScrapesMeshdWithTheBearerToken) {
  std::ostringstream cfg;
  cfg << "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n"
      << "scrape_configs:\n"
      << "  - job_name: meshd\n"
      << "    authorization:\n      credentials_file: " << dir_.file("token") << "\n"
      << "    static_configs:\n      - targets: ['127.0.0.1:" << kApiPort << "']\n";
  write_file(dir_.file("prometheus.yml"), cfg.str());
  std::filesystem::create_directories(dir_.file("tsdb"));
  prometheus_pid_ = start_in_namespace(
      {kPrometheus, "--config.file=" + dir_.file("prometheus.yml"),
       "--storage.tsdb.path=" + dir_.file("tsdb"),
       "--web.listen-address=127.0.0.1:" + std::to_string(kPrometheusPort)},
      dir_.file("prometheus.log"));

  std::string last = "no series";
  ASSERT_TRUE(eventually(
      [&] {
        std::optional<std::string> v = query("meshd_ready");
        if (v) last = *v;
        return v == "1";
      },
      30s, 200ms))
      << "Prometheus never had meshd_ready 1 from meshd (last: " << last << ")\n" << logs();
  // The target is healthy: every scrape so far succeeded, token included.
  EXPECT_EQ(query("up{job=\"meshd\"}"), "1") << logs();
  std::optional<std::string> passes = query("meshd_reconciles_total");
  ASSERT_TRUE(passes.has_value()) << "no meshd_reconciles_total in Prometheus\n" << logs();
  EXPECT_GE(std::stod(*passes), 1.0) << *passes;
  // Prometheus' own account of the scrape: samples arrived, none refused.
  std::optional<std::string> samples = query("scrape_samples_scraped{job=\"meshd\"}");
  ASSERT_TRUE(samples.has_value()) << logs();
  EXPECT_GT(std::stod(*samples), 0.0);
}

TEST_F(ApiProcess, TcpNeedsTheTokenTheUnixSocketDoesNot) {
  std::string body;
  EXPECT_EQ(curl_status(api_url("/v1/status"), &body), "401") << body;
  EXPECT_NE(body.find("\"unauthorized\""), std::string::npos) << body;
  EXPECT_EQ(curl_status("-H 'Authorization: Bearer wrong-token' " + api_url("/v1/status")), "401");
  EXPECT_EQ(curl_status(api_url("/metrics")), "401") << "metrics are behind the token too";

  EXPECT_EQ(curl_status("-H 'Authorization: Bearer " + std::string(kToken) + "' " +
                            api_url("/v1/status"),
                        &body),
            "200")
      << body;
  EXPECT_NE(body.find("\"interface\":\"" + iface_ + "\""), std::string::npos) << body;

  EXPECT_EQ(curl_status("--unix-socket " + socket_path() + " http://localhost/v1/status", &body),
            "200")
      << body;
  EXPECT_NE(body.find("\"interface\":\"" + iface_ + "\""), std::string::npos) << body;
  // A 401 never echoes the token it was given.
  curl_status("-H 'Authorization: Bearer wrong-token' " + api_url("/v1/status"), &body);
  EXPECT_EQ(body.find("wrong-token"), std::string::npos) << body;
}

TEST_F(ApiProcess, MeshctlDrivesMeshdOverTheSocketAndOverTcpWithItsToken) {
  std::string out;
  // The unix socket: no token.
  EXPECT_EQ(meshctl("--socket " + socket_path() + " status", out), 0) << out;
  EXPECT_NE(out.find(iface_), std::string::npos) << out;
  EXPECT_NE(out.find("userspace"), std::string::npos) << out;
  ASSERT_EQ(meshctl("--socket " + socket_path() + " --json status", out), 0) << out;
  json::value st = json::parse(out);
  EXPECT_EQ(st.at("interface"), json::value(iface_.c_str())) << out;
  EXPECT_EQ(st.at("pod_cidr"), json::value("10.78.1.0/24")) << out;
  EXPECT_EQ(st.at("in_sync"), json::value(true)) << out;

  // TCP: with the token file it works; without, the server's refusal is the
  // one line meshctl prints, and it exits 1.
  const std::string server = "--server http://127.0.0.1:" + std::to_string(kApiPort);
  EXPECT_EQ(meshctl(server + " --token-file " + dir_.file("token") + " status", out), 0) << out;
  EXPECT_NE(out.find(iface_), std::string::npos) << out;
  EXPECT_EQ(meshctl(server + " status", out), 1) << out;
  EXPECT_NE(out.find("unauthorized"), std::string::npos) << out;
  EXPECT_EQ(out.find(kToken), std::string::npos) << out;
  // Static mode: no cluster, so tokens are refused with the server's reason.
  EXPECT_EQ(meshctl("--socket " + socket_path() + " token create", out), 1) << out;
  EXPECT_NE(out.find("cluster"), std::string::npos) << out;
  // A daemon that is not there: one line.
  EXPECT_EQ(meshctl("--socket " + dir_.file("nothing.sock") + " status", out), 1) << out;
  EXPECT_NE(out.find("is meshd running?"), std::string::npos) << out;
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 1) << out;
}

// On an address of the namespace's own veth (neither loopback nor the mesh
// address), TCP must be TLS.
class ApiTls : public ApiProcess {
 protected:
  static constexpr const char* kAddress = "10.79.0.1";

  std::string api_listen_section() const override {
    return "listen = \"" + std::string(kAddress) + ":" + std::to_string(kApiPort) +
           "\"\nbearer_token_file = \"" + dir_.file("token") + "\"\ntls_cert_file = \"" +
           dir_.file("server.crt") + "\"\ntls_key_file = \"" + dir_.file("server.key") + "\"\n";
  }
  std::string ready_url() const override {
    return "--cacert " + dir_.file("ca.crt") + " https://" + kAddress + ":" + std::to_string(kApiPort) +
           "/v1/readyz";
  }
  bool prepare() override {
    // Each command on its own: Netns::run puts only its first word list in
    // the namespace.
    for (const std::string& cmd :
         {std::string("ip link add mtls0 type veth peer name mtls1"),
          "ip addr add " + std::string(kAddress) + "/24 dev mtls0", std::string("ip link set mtls0 up"),
          std::string("ip link set mtls1 up")})
      EXPECT_EQ(ns_->run(cmd), 0) << cmd;
    // A CA and a server certificate for kAddress, made here by the openssl CLI.
    const std::string d = dir_.path(), key = " -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes";
    bool ok = sh("cd " + d + " && openssl req -x509" + key +
                 " -keyout ca.key -out ca.crt -days 2 -subj /CN=test-ca >/dev/null 2>&1") == 0 &&
              sh("cd " + d + " && echo 'subjectAltName=IP:" + kAddress + "' > server.ext && openssl req" +
                 key + " -keyout server.key -out server.csr -subj /CN=meshd >/dev/null 2>&1 && "
                 "openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial "
                 "-out server.crt -days 2 -extfile server.ext >/dev/null 2>&1") == 0;
    EXPECT_TRUE(ok) << "openssl could not make the test certificates";
    ::chmod(dir_.file("server.key").c_str(), 0600);
    return ok && !::testing::Test::HasFailure();
  }
};

TEST_F(ApiTls, MeshdServesTlsOffLoopbackAndMeshctlVerifiesIt) {
  std::string out;
  const std::string https = "--server https://" + std::string(kAddress) + ":" + std::to_string(kApiPort);
  EXPECT_EQ(meshctl(https + " --cacert " + dir_.file("ca.crt") + " --token-file " + dir_.file("token") +
                        " status",
                    out),
            0)
      << out;
  EXPECT_NE(out.find(iface_), std::string::npos) << out;
  // A server certificate that the given CA did not sign is refused.
  ASSERT_EQ(sh("cd " + dir_.path() + " && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 "
               "-nodes -keyout other.key -out other.crt -days 2 -subj /CN=other >/dev/null 2>&1"),
            0);
  EXPECT_EQ(meshctl(https + " --cacert " + dir_.file("other.crt") + " --token-file " +
                        dir_.file("token") + " status",
                    out),
            1)
      << out;
  // Plain HTTP to the TLS port gets no answer.
  EXPECT_EQ(meshctl("--server http://" + std::string(kAddress) + ":" + std::to_string(kApiPort) +
                        " --token-file " + dir_.file("token") + " status",
                    out),
            1)
      << out;
}

TEST_F(ApiTls, MeshdRefusesPlainHttpOnAnUnderlayAddressAndSaysWhy) {
  // The same node without the TLS files: meshd must not start.
  stop(meshd_pid_);
  std::string cfg = read_file(dir_.file("meshd.toml"));
  auto at = cfg.find("tls_cert_file");
  ASSERT_NE(at, std::string::npos);
  write_file(dir_.file("plain.toml"), cfg.substr(0, at));
  std::string out = ns_->out(std::string(MESHD_BIN_DIR) + "/meshd --config " + dir_.file("plain.toml") +
                             " 2>&1; echo rc=$?");
  EXPECT_NE(out.find("rc=1"), std::string::npos) << out;
  EXPECT_NE(out.find("TLS"), std::string::npos) << out;
  EXPECT_NE(out.find(std::string(kAddress) + ":" + std::to_string(kApiPort)), std::string::npos) << out;
}

}  // namespace
}  // namespace meshd::testing
