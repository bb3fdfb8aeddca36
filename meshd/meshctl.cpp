// meshctl: the operator's command line. Key commands work offline and behave
// exactly like their wireguard-tools counterparts (same input rules, output,
// messages and exit codes), so scripts written for `wg genkey | wg pubkey`
// work unchanged. Every other command is a client of meshd's REST API
// (docs/api.md, docs/meshctl.md): one function per subcommand, tables for a
// person by default, the API's JSON as it is with --json.
#include "common/version.h"
#include "keys/wg_key.h"
#include "meshd/meshctl/client.h"
#include "meshd/meshctl/graph.h"
#include "meshd/meshctl/views.h"

#include <CLI/CLI.hpp>
#include <boost/json.hpp>
#include <sodium.h>

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>
#include <thread>

namespace {

namespace mc = meshd::meshctl;

constexpr const char* kProg = "meshctl";
// exit status of `status` when meshd is not in sync
constexpr int kExitNotInSync = 3;
// exit status of `status` when this node was removed from the cluster: its
// mesh is torn down, which no reconcile pass will repair (so not 3)
constexpr int kExitRemoved = 4;
// `events -f`: each long poll asks meshd to hold the request this long.
constexpr int kFollowWaitSeconds = 30;
constexpr std::chrono::seconds kEmptyFollowPause{1};

// Flushes stdout; wg ignores write errors, but a key lost to a full disk
// while the exit code says success is worse than a deviation.
int finish_stdout() {
  if (std::fflush(stdout) != 0 || std::ferror(stdout)) {
    std::fprintf(stderr, "%s: write to stdout: %s\n", kProg, std::strerror(errno));
    return 1;
  }
  return 0;
}

// Same check and words as `wg genkey`: only a regular file others can access
// is worth a warning; pipes and terminals are not.
void warn_if_world_accessible_stdout() {
  struct stat st {};
  if (::fstat(STDOUT_FILENO, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & S_IRWXO))
    std::fputs(
        "Warning: writing to world accessible file.\n"
        "Consider setting the umask to 077 and trying again.\n",
        stderr);
}

int print_secret(const std::string& base64) {
  std::puts(base64.c_str());
  return finish_stdout();
}

int run_genkey() {
  warn_if_world_accessible_stdout();
  std::string b64 = meshd::keys::PrivateKey::generate().to_base64_secret();
  int rc = print_secret(b64);
  sodium_memzero(b64.data(), b64.size());
  return rc;
}

int run_genpsk() {
  warn_if_world_accessible_stdout();
  std::string b64 = meshd::keys::PresharedKey::generate().to_base64_secret();
  int rc = print_secret(b64);
  sodium_memzero(b64.data(), b64.size());
  return rc;
}

// The input rules of `wg pubkey`: the first 44 bytes of stdin are the key;
// after them only whitespace (\t \n \v \f \r, space) and NUL bytes may follow.
int run_pubkey() {
  char b64[45] = {};
  auto fail_format = [&] {
    sodium_memzero(b64, sizeof b64);
    std::fprintf(stderr, "%s: Key is not the correct length or format\n", kProg);
    return 1;
  };
  if (std::fread(b64, 1, 44, stdin) != 44) return fail_format();
  for (;;) {
    int c = std::getc(stdin);
    if (c == EOF) break;
    if (c == 0 || c == ' ' || (c >= '\t' && c <= '\r')) continue;
    sodium_memzero(b64, sizeof b64);
    std::fprintf(stderr, "%s: Trailing characters found after key\n", kProg);
    return 1;
  }
  // wg reads the key as a C string: an embedded NUL shortens it, which the
  // 44-character rule then rejects; the base64 alphabet check does the same.
  auto key = meshd::keys::PrivateKey::from_base64(std::string_view(b64, 44));
  sodium_memzero(b64, sizeof b64);
  if (!key) return fail_format();
  std::puts(key->public_key().to_base64().c_str());
  return finish_stdout();
}

// A subcommand that, like wg's, takes no arguments: anything extra prints
// the usage line and fails with 1, as `wg genkey extra` does.
CLI::App* add_plain(CLI::App& app, const std::string& name, const std::string& help) {
  CLI::App* sub = app.add_subcommand(name, help);
  sub->allow_extras();
  return sub;
}

bool usage_if_extras(const CLI::App* sub) {
  if (sub->remaining().empty()) return false;
  std::fprintf(stderr, "Usage: %s %s\n", kProg, sub->get_name().c_str());
  return true;
}

// ---- API commands ----

struct Globals {
  std::string socket = mc::kDefaultSocket;
  std::string server;
  std::string token_file;
  std::string cacert;
  bool json = false;
};

int fail_line(const std::string& message) {
  std::fprintf(stderr, "%s: %s\n", kProg, message.c_str());
  return 1;
}

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// The API's answer on stdout, byte for byte, ending with a newline.
void print_json(const std::string& body) {
  std::fwrite(body.data(), 1, body.size(), stdout);
  if (body.empty() || body.back() != '\n') std::fputc('\n', stdout);
}

class Api {
 public:
  // Reads the token file (if any) and checks the server URL; nothing is
  // sent yet.
  static std::optional<Api> open(const Globals& g) {
    mc::ClientOptions o;
    o.socket_path = g.socket;
    o.server = g.server;
    o.cacert_file = g.cacert;
    if (!g.token_file.empty()) {
      auto t = mc::read_token_file(g.token_file);
      if (!t) {
        fail_line(t.error().message);
        return std::nullopt;
      }
      o.bearer_token = std::move(*t);
    }
    auto c = mc::Client::make(std::move(o));
    if (!c) {
      fail_line(c.error().message);
      return std::nullopt;
    }
    return Api(std::move(*c));
  }

  // The answer when its status is `expected`; otherwise the error is printed
  // (one line) and nothing is returned.
  std::optional<mc::HttpAnswer> call(std::string_view method, const std::string& target,
                                     int expected, std::string_view body = {},
                                     std::optional<std::chrono::milliseconds> timeout = {}) {
    auto a = client_.request(method, target, body, timeout);
    if (!a) {
      fail_line(a.error().message);
      return std::nullopt;
    }
    if (a->status != expected) {
      fail_line(mc::describe_error_answer(*a));
      return std::nullopt;
    }
    return std::move(*a);
  }

 private:
  explicit Api(mc::Client c) : client_(std::move(c)) {}
  mc::Client client_;
};

int run_status(Api& api, const Globals& g) {
  auto a = api.call("GET", "/v1/status", 200);
  if (!a) return 1;
  auto s = mc::parse_status(a->body);
  if (g.json) print_json(a->body);
  if (!s) return fail_line(s.error().message);
  if (!g.json) std::fputs(mc::format_status(*s, now_ms()).c_str(), stdout);
  if (int rc = finish_stdout(); rc != 0) return rc;
  if (s->removed) return kExitRemoved;
  return s->in_sync() ? 0 : kExitNotInSync;
}

// One request; with --json the answer is printed as served, else `parse`
// turns it into a view and `format` into text.
template <class Parse, class Format>
int show(Api& api, const Globals& g, std::string_view method, const std::string& target,
         int expected, Parse parse, Format format, std::string_view body = {}) {
  auto a = api.call(method, target, expected, body);
  if (!a) return 1;
  if (g.json) {
    print_json(a->body);
    return finish_stdout();
  }
  auto view = parse(a->body);
  if (!view) return fail_line(view.error().message);
  std::fputs(format(*view).c_str(), stdout);
  return finish_stdout();
}

int run_nodes(Api& api, const Globals& g) {
  return show(api, g, "GET", "/v1/nodes", 200, mc::parse_nodes,
              [](const auto& nodes) { return mc::format_nodes(nodes); });
}

int run_node(Api& api, const Globals& g, const std::string& name) {
  return show(api, g, "GET", "/v1/nodes/" + mc::encode_path_segment(name), 200, mc::parse_node,
              [](const auto& node) { return mc::format_node(node); });
}

// By name or by base64 identity: one percent-encoded path segment either way.
int run_node_remove(Api& api, const Globals& g, const std::string& name) {
  return show(api, g, "DELETE", "/v1/nodes/" + mc::encode_path_segment(name), 200,
              mc::parse_removal, [](const auto& r) { return mc::format_removal(r); });
}

int run_key_rotate(Api& api, const Globals& g) {
  return show(api, g, "POST", "/v1/key/rotate", 202, mc::parse_rotation,
              [](const auto& r) { return mc::format_rotation(r, now_ms()); });
}

int run_graph(Api& api, const Globals& g) {
  return show(api, g, "GET", "/v1/nodes", 200, mc::parse_nodes,
              [](const auto& nodes) { return mc::format_dot(nodes); });
}

struct TokenCreateArgs {
  std::string ttl;
  std::optional<std::int64_t> uses;
  std::optional<std::string> description;
};

int run_token_create(Api& api, const Globals& g, const TokenCreateArgs& args) {
  boost::json::object body;
  if (!args.ttl.empty()) {
    auto ttl = mc::parse_duration_seconds(args.ttl);
    if (!ttl) return fail_line("--ttl " + mc::printable(args.ttl) + ": " + ttl.error().message);
    body["ttl_seconds"] = *ttl;
  }
  if (args.uses) body["uses"] = *args.uses;
  if (args.description) body["description"] = *args.description;
  return show(
      api, g, "POST", "/v1/tokens", 201, mc::parse_created_token,
      [](const auto& t) { return mc::format_created_token(t, now_ms() / 1000); },
      boost::json::serialize(body));
}

int run_token_list(Api& api, const Globals& g) {
  return show(api, g, "GET", "/v1/tokens", 200, mc::parse_tokens,
              [](const auto& tokens) { return mc::format_tokens(tokens, now_ms() / 1000); });
}

int run_token_revoke(Api& api, const Globals& g, const std::string& id) {
  auto a = api.call("DELETE", "/v1/tokens/" + mc::encode_path_segment(id), 204);
  if (!a) return 1;
  if (!g.json) std::printf("token %s revoked\n", mc::printable(id).c_str());
  return finish_stdout();
}

// Without -f: one page of events after --since. With -f: then long-polls for
// the next ones (wait=30 on each request) until interrupted or an error.
int run_events(Api& api, const Globals& g, bool follow, std::int64_t since) {
  using namespace std::chrono_literals;
  bool first = true;
  for (;;) {
    std::string target = "/v1/events?since=" + std::to_string(since);
    std::optional<std::chrono::milliseconds> timeout;
    if (follow && !first) {
      target += "&wait=" + std::to_string(kFollowWaitSeconds);
      timeout = std::chrono::seconds(kFollowWaitSeconds) + 10s;  // the wait plus a request's
    }
    first = false;
    auto a = api.call("GET", target, 200, {}, timeout);
    if (!a) return 1;
    auto page = mc::parse_events(a->body);
    if (!page) {
      if (g.json) print_json(a->body);
      return fail_line(page.error().message);
    }
    if (g.json) {
      if (!follow || !page->events.empty()) print_json(a->body);
    } else {
      std::fputs(mc::format_events(*page).c_str(), stdout);
    }
    if (int rc = finish_stdout(); rc != 0) return rc;
    if (!follow) return 0;
    // A server that answers a long poll at once with nothing (one that does
    // not hold requests) is asked again after a pause, not in a busy loop.
    if (page->events.empty()) std::this_thread::sleep_for(kEmptyFollowPause);
    // The cursor only moves forward: a server that answered without one (or
    // with an older one) is asked again after the last event it sent.
    std::int64_t next = since;
    if (page->next) next = std::max(next, *page->next);
    for (const auto& e : page->events)
      if (e.id) next = std::max(next, *e.id);
    since = next;
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"meshctl: keys and management for meshd, a WireGuard pod network"};
  app.name(kProg);
  app.set_version_flag("--version", std::string(kProg) + " " + meshd::kVersion,
                       "Print the version and exit");
  app.footer(
      "Every command but genkey, pubkey and genpsk talks to meshd's REST API: over the unix\n"
      "socket by default, or --server (with --token-file for the bearer token, --cacert for\n"
      "TLS). Global options may come before or after the command.\n"
      "Exit status: 0 on success; 1 on any error (meshd's message is printed, or one line\n"
      "when meshd cannot be reached); 3 from `status` when meshd is not in sync (the last\n"
      "reconcile pass left something to repair, failed, or has not run); 4 from `status`\n"
      "when this node was removed from the cluster. See docs/meshctl.md.");

  // Key commands first: they do not take the global options (fallthrough is
  // inherited by subcommands created after it is set).
  CLI::App* genkey = add_plain(
      app, "genkey",
      "Generate a new WireGuard private key and print it in base64 (like `wg genkey`)");
  CLI::App* pubkey = add_plain(
      app, "pubkey",
      "Read a base64 private key on stdin and print its public key (like `wg pubkey`)");
  CLI::App* genpsk = add_plain(
      app, "genpsk", "Generate a new random preshared key and print it in base64 (like `wg genpsk`)");

  Globals g;
  CLI::Option* socket_opt =
      app.add_option("--socket", g.socket, "meshd's API unix socket")->capture_default_str();
  std::string runtime_dir;
  app.add_option("--runtime-dir", runtime_dir,
                 "meshd's [state] runtime_dir: use the socket meshd makes there by default, "
                 "DIR/meshd.sock")
      ->excludes(socket_opt);
  app.add_option("--server", g.server,
                 "meshd's API over TCP instead of the socket: https://HOST:PORT or http://HOST:PORT");
  app.add_option("--token-file", g.token_file,
                 "file holding the bearer token for --server (mode 0600, owned by root or you)");
  app.add_option("--cacert", g.cacert,
                 "PEM CA certificate(s) that sign the server's certificate (https; default: the "
                 "system's CAs)");
  app.add_flag("--json", g.json, "print the API's JSON answer as it is, instead of a table");
  app.fallthrough();

  CLI::App* status = app.add_subcommand(
      "status",
      "Show this node's status: backend, interface, MTU, public key, pod CIDR, peers, routes, "
      "last reconcile pass, errors, cluster and table hash (exit 3 when not in sync, 4 when this "
      "node was removed from the cluster)");
  CLI::App* nodes = app.add_subcommand(
      "nodes",
      "List the mesh's nodes: endpoints, pod CIDR, handshake age, bytes, liveness, last seen, "
      "reachability; removed nodes last, with who removed them and when");
  std::string node_name;
  CLI::App* node = app.add_subcommand(
      "node", "Show one node in full (node NAME), or remove one from the cluster (node remove NAME)");
  // Not required here: `node remove NAME` does not take it (checked below).
  node->add_option("NAME", node_name, "the node's name");
  std::string remove_name;
  CLI::App* node_remove = node->add_subcommand(
      "remove",
      "Remove a node from the cluster: every node drops it as a peer; prints what was removed");
  node_remove->add_option("NAME", remove_name, "the node's name, or its base64 identity")->required();

  CLI::App* key = app.add_subcommand("key", "This node's WireGuard key in the cluster");
  key->require_subcommand(1);
  CLI::App* key_rotate = key->add_subcommand(
      "rotate",
      "Rotate this node's WireGuard key: the new key is announced to every node and used from the "
      "switch time; prints the old and new short key ids and the switch time");

  CLI::App* token = app.add_subcommand("token", "Bootstrap tokens for joining nodes");
  token->require_subcommand(1);
  TokenCreateArgs create_args;
  CLI::App* token_create = token->add_subcommand(
      "create", "Create a token; its secret is printed once, with the joiner's config lines");
  token_create->add_option("--ttl", create_args.ttl,
                           "lifetime: SECONDS or a number with s, m, h or d (default 24h; 0 = never "
                           "expires)");
  token_create->add_option("--uses", create_args.uses, "how many joins it allows (default unlimited)")
      ->check(CLI::PositiveNumber);
  token_create->add_option("--description", create_args.description,
                           "a note for `token list` (at most 256 bytes)");
  CLI::App* token_list = token->add_subcommand("list", "List tokens (never their secrets)");
  std::string revoke_id;
  CLI::App* token_revoke = token->add_subcommand("revoke", "Revoke a token");
  token_revoke->add_option("ID", revoke_id, "the token's id (the part before the dot)")->required();

  bool follow = false;
  std::int64_t since = 0;
  CLI::App* events = app.add_subcommand(
      "events", "Show recent events (joins, removals, refusals, rotations, errors)");
  events->add_flag("-f,--follow", follow, "keep waiting for new events (long polls)");
  events->add_option("--since", since, "only events after this id")->check(CLI::NonNegativeNumber);

  CLI::App* graph = app.add_subcommand(
      "graph",
      "Print the mesh as Graphviz DOT (edges green/orange/red by handshake state); render with "
      "`dot -Tsvg`");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and --version exit 0; every usage error exits 1, as wg's do,
    // rather than CLI11's own numbers.
    return app.exit(e) == 0 ? 0 : 1;
  }

  struct Command {
    CLI::App* sub;
    int (*run)();
  };
  for (const Command& c : {Command{genkey, run_genkey}, Command{pubkey, run_pubkey},
                           Command{genpsk, run_genpsk}}) {
    if (!c.sub->parsed()) continue;
    if (usage_if_extras(c.sub)) return 1;
    try {
      return c.run();
    } catch (const std::exception& e) {  // e.g. libsodium without a random source
      std::fprintf(stderr, "%s %s: %s\n", kProg, c.sub->get_name().c_str(), e.what());
      return 1;
    }
  }

  bool api_command = false;
  for (CLI::App* s : {status, nodes, node, key, token, events, graph}) api_command |= s->parsed();
  if (!api_command) {
    std::fputs(app.help().c_str(), stderr);
    return 1;
  }
  if (node->parsed() && !node_remove->parsed() && node_name.empty())
    return fail_line("node: NAME is required: `node NAME` shows a node, `node remove NAME` "
                     "removes one");
  if (!runtime_dir.empty()) g.socket = runtime_dir + "/meshd.sock";
  try {
    auto api = Api::open(g);
    if (!api) return 1;
    if (status->parsed()) return run_status(*api, g);
    if (nodes->parsed()) return run_nodes(*api, g);
    if (node_remove->parsed()) return run_node_remove(*api, g, remove_name);
    if (node->parsed()) return run_node(*api, g, node_name);
    if (key_rotate->parsed()) return run_key_rotate(*api, g);
    if (graph->parsed()) return run_graph(*api, g);
    if (events->parsed()) return run_events(*api, g, follow, since);
    if (token_create->parsed()) return run_token_create(*api, g, create_args);
    if (token_list->parsed()) return run_token_list(*api, g);
    if (token_revoke->parsed()) return run_token_revoke(*api, g, revoke_id);
  } catch (const std::exception& e) {  // e.g. out of memory; never a secret in it
    return fail_line(e.what());
  }
  return 1;
}
