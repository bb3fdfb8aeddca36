#include "meshd/api/server.h"
#include "common/secret_file.h"
#include "common/unique_fd.h"

#include "meshd/api/error.h"
#include "meshd/api/wire.h"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>

#include <grp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <array>
#include <list>
#include <type_traits>
#include <vector>

namespace meshd::api {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using local = asio::local::stream_protocol;
using Clock = std::chrono::steady_clock;
constexpr std::chrono::milliseconds kAcceptRetry{100};

namespace {

enum class Phase {
  kIdle,     // waiting for a request's first byte (or a TLS handshake's)
  kReading,  // a request (or handshake) begun, not complete
  kWaiting,  // a deferred answer (long poll)
  kWriting,  // writing a response
};

class ConnectionBase {
 public:
  virtual ~ConnectionBase() = default;
  virtual void close() = 0;
  Phase phase() const { return phase_; }
  Clock::time_point phase_since() const { return phase_since_; }
  std::list<ConnectionBase*>::iterator slot;

 protected:
  void enter(Phase p) {
    phase_ = p;
    phase_since_ = Clock::now();
  }
  Phase phase_ = Phase::kIdle;
  Clock::time_point phase_since_ = Clock::now();
};

[[noreturn]] void fail_setup(const std::string& what, const boost::system::error_code& ec) {
  throw ErrorException(Error{ec, what + ": " + ec.message()});
}

[[noreturn]] void fail_setup(int err, const std::string& what) {
  throw ErrorException(Error::from_errno(err, what));
}

}  // namespace

struct Server::State : std::enable_shared_from_this<Server::State> {
  State(asio::io_context& ioc, ServerOptions o, const Router& r)
      : ioc(ioc), opts(std::move(o)), router(r) {}

  asio::io_context& ioc;
  ServerOptions opts;
  const Router& router;
  std::optional<local::acceptor> unix_acceptor;
  std::optional<tcp::acceptor> tcp_acceptor;
  std::optional<asio::ssl::context> tls;
  std::optional<Endpoint> bound;
  dev_t socket_dev = 0;
  ino_t socket_ino = 0;
  ServerCounters counters;
  std::list<ConnectionBase*> connections;
  bool closed = false;

  void accept_unix();
  void accept_tcp();
  // After a failed accept (EMFILE, ENFILE, ENOBUFS...): the pending connection
  // stays in the backlog, so accepting again at once would fail again at once
  // and spin the loop. Wait a little instead.
  template <class F>
  void retry_later(F again) {
    auto timer = std::make_shared<asio::steady_timer>(ioc, kAcceptRetry);
    timer->async_wait([self = shared_from_this(), timer, again](boost::system::error_code ec) {
      if (!ec && !self->closed) again();
    });
  }
  // Makes room for one more connection; false when every slot is busy.
  bool make_room();
  template <class Stream>
  void start(Stream stream, bool needs_token);
  void close_all();
};

namespace {

template <class T>
struct IsTls : std::false_type {};
template <class T>
struct IsTls<asio::ssl::stream<T>> : std::true_type {};

template <class Stream>
class Connection : public ConnectionBase,
                   public std::enable_shared_from_this<Connection<Stream>> {
 public:
  Connection(std::shared_ptr<Server::State> state, Stream stream, bool needs_token)
      : state_(std::move(state)),
        stream_(std::move(stream)),
        needs_token_(needs_token),
        deadline_(state_->ioc),
        poll_timer_(state_->ioc) {}
  ~Connection() override {
    if (!closed_) state_->connections.erase(slot);
  }

  void run() {
    if constexpr (IsTls<Stream>::value) {
      enter(Phase::kReading);
      arm(state_->opts.read_timeout);
      stream_.async_handshake(asio::ssl::stream_base::server,
                              [self = this->shared_from_this()](boost::system::error_code ec) {
                                if (self->closed_) return;
                                if (ec) return self->close();
                                self->next_request(true);
                              });
    } else {
      next_request(true);
    }
  }

  void close() override {
    if (closed_) return;
    closed_ = true;
    ++generation_;
    deadline_.cancel();
    poll_timer_.cancel();
    boost::system::error_code ignored;
    stream_.lowest_layer().shutdown(asio::socket_base::shutdown_both, ignored);
    stream_.lowest_layer().close(ignored);
    state_->connections.erase(slot);
  }

 private:
  // Closes the connection when `d` passes, unless the phase moves on first.
  void arm(std::chrono::milliseconds d) {
    const std::uint64_t g = ++generation_;
    deadline_.expires_after(d);
    deadline_.async_wait([self = this->shared_from_this(), g](boost::system::error_code ec) {
      if (ec || self->closed_ || g != self->generation_) return;
      ++self->state_->counters.timeouts;
      self->close();
    });
  }
  void disarm() {
    ++generation_;
    deadline_.cancel();
  }

  void next_request(bool first) {
    parser_.emplace();
    apply_limits(*parser_, state_->opts.max_header_bytes, state_->router.options().max_body_bytes);
    if (buffer_.size() > 0) return read_request();  // pipelined: already here
    enter(Phase::kIdle);
    arm(first ? state_->opts.read_timeout : state_->opts.idle_timeout);
    // One raw read first, so that an idle connection and a half-sent request
    // are told apart (they have different timeouts and shedding order).
    stream_.async_read_some(
        buffer_.prepare(1024),
        [self = this->shared_from_this()](boost::system::error_code ec, std::size_t n) {
          if (self->closed_) return;
          if (ec) return self->close();
          self->buffer_.commit(n);
          self->read_request();
        });
  }

  void read_request() {
    enter(Phase::kReading);
    arm(state_->opts.read_timeout);
    http::async_read(stream_, buffer_, *parser_,
                     [self = this->shared_from_this()](boost::system::error_code ec, std::size_t) {
                       self->on_read(ec);
                     });
  }

  void on_read(boost::system::error_code ec) {
    if (closed_) return;
    if (ec) {
      if (ec.category() != http::make_error_code(http::error::end_of_stream).category() ||
          ec == http::error::end_of_stream || ec == http::error::partial_message)
        return close();  // the peer went away or a socket error: nobody to answer
      ++state_->counters.requests;
      return respond(parse_error_response(ec, state_->opts.max_header_bytes,
                                          state_->router.options().max_body_bytes),
                     11, false);
    }
    ++state_->counters.requests;
    WireRequest wire = parser_->release();
    const unsigned version = wire.version();
    const bool keep_alive = wire.keep_alive();
    if (needs_token_ &&
        !bearer_matches(wire[http::field::authorization], state_->opts.bearer_token)) {
      ++state_->counters.unauthorized;
      Response r = error_response(
          {401, "unauthorized",
           "this listener needs the header \"Authorization: Bearer <token>\" with the API token"});
      r.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"meshd\"");
      return respond(r, version, keep_alive);
    }
    Reply reply = state_->router.dispatch(to_request(wire));
    if (auto* done = std::get_if<Response>(&reply)) return respond(*done, version, keep_alive);
    pending_ = std::move(std::get<Pending>(reply));
    pending_until_ = Clock::now() + pending_->max_wait;
    version_ = version;
    keep_alive_ = keep_alive;
    enter(Phase::kWaiting);
    disarm();
    poll_pending();
  }

  void poll_pending() {
    const auto now = Clock::now();
    const bool last = now >= pending_until_;
    if (std::optional<Response> r = Router::poll(*pending_, last)) {
      pending_.reset();
      return respond(*r, version_, keep_alive_);
    }
    poll_timer_.expires_after(
        std::min<Clock::duration>(state_->opts.poll_interval, pending_until_ - now));
    poll_timer_.async_wait([self = this->shared_from_this()](boost::system::error_code ec) {
      if (ec || self->closed_) return;
      self->poll_pending();
    });
  }

  void respond(const Response& r, unsigned version, bool keep_alive) {
    enter(Phase::kWriting);
    arm(state_->opts.write_timeout);
    response_ = to_wire(r, version, keep_alive);
    http::async_write(stream_, response_,
                      [self = this->shared_from_this(), keep_alive](boost::system::error_code ec,
                                                                    std::size_t) {
                        if (self->closed_) return;
                        if (ec || !keep_alive) return self->close();
                        self->next_request(false);
                      });
  }

  std::shared_ptr<Server::State> state_;
  Stream stream_;
  bool needs_token_;
  bool closed_ = false;
  std::uint64_t generation_ = 0;
  asio::steady_timer deadline_;
  asio::steady_timer poll_timer_;
  beast::flat_buffer buffer_;
  std::optional<RequestParser> parser_;
  WireResponse response_;
  std::optional<Pending> pending_;
  Clock::time_point pending_until_;
  unsigned version_ = 11;
  bool keep_alive_ = false;
};

}  // namespace

bool Server::State::make_room() {
  if (connections.size() < opts.max_connections) return true;
  ConnectionBase* victim = nullptr;
  for (ConnectionBase* c : connections)
    if ((c->phase() == Phase::kIdle || c->phase() == Phase::kReading) &&
        (!victim || c->phase_since() < victim->phase_since()))
      victim = c;
  ++counters.shed;
  if (!victim) return false;
  victim->close();
  return true;
}

template <class Stream>
void Server::State::start(Stream stream, bool needs_token) {
  ++counters.connections;
  if (!make_room()) {
    boost::system::error_code ignored;
    stream.lowest_layer().close(ignored);
    return;
  }
  auto c = std::make_shared<Connection<Stream>>(shared_from_this(), std::move(stream), needs_token);
  connections.push_back(c.get());
  c->slot = std::prev(connections.end());
  c->run();
}

void Server::State::accept_unix() {
  unix_acceptor->async_accept(
      [self = shared_from_this()](boost::system::error_code ec, local::socket socket) {
        if (self->closed) return;
        if (ec) return self->retry_later([self] { self->accept_unix(); });
        set_cloexec(socket.native_handle());
        self->start(std::move(socket), false);
        self->accept_unix();
      });
}

void Server::State::accept_tcp() {
  tcp_acceptor->async_accept(
      [self = shared_from_this()](boost::system::error_code ec, tcp::socket socket) {
        if (self->closed) return;
        if (ec) return self->retry_later([self] { self->accept_tcp(); });
        set_cloexec(socket.native_handle());
        socket.set_option(tcp::no_delay(true), ec);
        if (self->tls)
          self->start(asio::ssl::stream<tcp::socket>(std::move(socket), *self->tls), true);
        else
          self->start(std::move(socket), true);
        self->accept_tcp();
      });
}

void Server::State::close_all() {
  if (closed) return;
  closed = true;
  boost::system::error_code ignored;
  if (unix_acceptor) {
    unix_acceptor->close(ignored);
    // Only the socket we made: a successor may already have replaced it.
    struct stat st{};
    if (::lstat(opts.unix_socket.c_str(), &st) == 0 && st.st_dev == socket_dev &&
        st.st_ino == socket_ino)
      ::unlink(opts.unix_socket.c_str());
  }
  if (tcp_acceptor) tcp_acceptor->close(ignored);
  while (!connections.empty()) connections.front()->close();
}

namespace {

void prepare_unix_path(const std::string& path) {
  struct stat st{};
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return;
    fail_setup(errno, "API socket " + path);
  }
  if (!S_ISSOCK(st.st_mode) || st.st_uid != ::geteuid())
    throw ErrorException(Error::invalid(
        "API socket " + path +
        ": the path exists and is not a socket of ours; remove it or choose another path"));
  // A socket someone still accepts on belongs to a running meshd: leave it.
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) fail_setup(errno, "API socket " + path);
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  std::copy_n(path.data(), std::min(path.size(), sizeof sa.sun_path - 1), sa.sun_path);
  const bool live = ::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0;
  ::close(fd);
  if (live)
    throw ErrorException(Error{{EADDRINUSE, boost::system::generic_category()},
                               "API socket " + path +
                                   ": another process is serving it (is meshd already running?)"});
  if (::unlink(path.c_str()) != 0 && errno != ENOENT)
    fail_setup(errno, "remove the stale API socket " + path);
}

gid_t group_id(const std::string& name, const std::string& path) {
  std::vector<char> buf(16384);
  group g{};
  group* found = nullptr;
  int rc = ::getgrnam_r(name.c_str(), &g, buf.data(), buf.size(), &found);
  if (rc != 0) fail_setup(rc, "look up group \"" + name + "\" for API socket " + path);
  if (!found)
    throw ErrorException(Error{{ENOENT, boost::system::generic_category()},
                               "API socket " + path + ": no group named \"" + name +
                                   "\"; create it or set another api socket group"});
  return found->gr_gid;
}

}  // namespace

Server::Server(asio::io_context& ioc, ServerOptions opts, const Router& router)
    : state_(std::make_shared<State>(ioc, std::move(opts), router)) {
  State& s = *state_;
  const ServerOptions& o = s.opts;
  if (o.max_connections == 0)
    throw ErrorException(Error::invalid("API server: max_connections must be at least 1"));
  if (o.tcp && o.bearer_token.empty())
    throw ErrorException(Error::invalid("API TCP listener " + o.tcp->to_string() +
                                        ": a bearer token is required"));
  if (o.tls_cert_file.empty() != o.tls_key_file.empty())
    throw ErrorException(Error::invalid(
        "API TLS: give both a certificate file and a key file, or neither"));
  if (o.unix_socket.empty() && !o.tcp)
    throw ErrorException(Error::invalid("API server: neither a unix socket nor a TCP listener"));

  // Before the unix socket: a failure here leaves nothing on disk.
  if (o.tcp && !o.tls_cert_file.empty()) {
    s.tls.emplace(asio::ssl::context::tls_server);
    s.tls->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                       asio::ssl::context::no_sslv3 | asio::ssl::context::single_dh_use);
    ::SSL_CTX_set_min_proto_version(s.tls->native_handle(), TLS1_2_VERSION);
    boost::system::error_code ec;
    s.tls->use_certificate_chain_file(o.tls_cert_file, ec);
    if (ec) fail_setup("API TLS certificate " + o.tls_cert_file + " (PEM expected)", ec);
    // A secret file: owner and mode checked before it is trusted, its
    // content wiped once OpenSSL holds the key.
    auto pem = read_secret_file(o.tls_key_file, kMaxKeyFileBytes);
    if (!pem) throw ErrorException(Error{pem.error().code, "API TLS key: " + pem.error().message});
    s.tls->use_private_key(asio::buffer(*pem), asio::ssl::context::pem, ec);
    explicit_bzero(pem->data(), pem->size());
    if (ec) fail_setup("API TLS key " + o.tls_key_file + " (PEM expected)", ec);
    if (::SSL_CTX_check_private_key(s.tls->native_handle()) != 1)
      throw ErrorException(Error::invalid("API TLS key " + o.tls_key_file +
                                          " does not match certificate " + o.tls_cert_file));
  }

  if (!o.unix_socket.empty()) {
    const std::string& path = o.unix_socket;
    if (path.size() >= sizeof(sockaddr_un::sun_path))
      throw ErrorException(Error::invalid("API socket " + path + ": longer than " +
                                          std::to_string(sizeof(sockaddr_un::sun_path) - 1) +
                                          " bytes, the limit of a unix socket path"));
    std::optional<gid_t> gid;
    if (!o.unix_socket_group.empty()) gid = group_id(o.unix_socket_group, path);
    prepare_unix_path(path);
    boost::system::error_code ec;
    s.unix_acceptor.emplace(ioc);
    s.unix_acceptor->open(local(), ec);
    if (!ec) set_cloexec(s.unix_acceptor->native_handle());
    if (ec) fail_setup("open API socket " + path, ec);
    s.unix_acceptor->bind(local::endpoint(path), ec);
    if (ec) fail_setup("bind API socket " + path + " (its directory must exist)", ec);
    struct stat st{};
    if (::lstat(path.c_str(), &st) == 0) {
      s.socket_dev = st.st_dev;
      s.socket_ino = st.st_ino;
    }
    // Mode and group are set before listen(): until then a connect is refused,
    // so no one gets in through the umask's wider mode. On failure the socket
    // just made is removed again (close_all).
    if (::chmod(path.c_str(), 0660) != 0) {
      int err = errno;
      s.close_all();
      fail_setup(err, "chmod 0660 API socket " + path);
    }
    if (gid && ::chown(path.c_str(), static_cast<uid_t>(-1), *gid) != 0) {
      int err = errno;
      s.close_all();
      fail_setup(err, "chown API socket " + path + " to group " + o.unix_socket_group);
    }
    s.unix_acceptor->listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      s.close_all();
      fail_setup("listen on API socket " + path, ec);
    }
  }

  if (o.tcp) {
    const std::string where = o.tcp->to_string();
    boost::system::error_code ec;
    tcp::endpoint ep(asio::ip::make_address(o.tcp->address.to_string(), ec), o.tcp->port);
    if (ec) fail_setup("API TCP listener " + where, ec);
    s.tcp_acceptor.emplace(ioc);
    s.tcp_acceptor->open(ep.protocol(), ec);
    if (!ec) set_cloexec(s.tcp_acceptor->native_handle());
    if (!ec) s.tcp_acceptor->set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) s.tcp_acceptor->bind(ep, ec);
    if (!ec) s.tcp_acceptor->listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      // The unix socket made above is ours to remove.
      state_->close_all();
      fail_setup("API TCP listener " + where, ec);
    }
    tcp::endpoint local_ep = s.tcp_acceptor->local_endpoint(ec);
    Endpoint bound = *o.tcp;
    if (!ec) bound.port = local_ep.port();
    s.bound = bound;
  }

  if (s.unix_acceptor) s.accept_unix();
  if (s.tcp_acceptor) s.accept_tcp();
}

Server::~Server() { close(); }

std::optional<Endpoint> Server::tcp_endpoint() const { return state_->bound; }
const ServerCounters& Server::counters() const { return state_->counters; }
std::size_t Server::open_connections() const { return state_->connections.size(); }
void Server::close() { state_->close_all(); }

namespace {

bool is_loopback(const IpAddress& a) {
  if (a.is_v4()) return a.bytes[0] == 127;
  if (!a.is_v6()) return false;
  for (std::size_t i = 0; i < 15; ++i)
    if (a.bytes[i] != 0) return false;
  return a.bytes[15] == 1;
}

std::array<unsigned char, 32> sha256(std::string_view v) {
  std::array<unsigned char, 32> out{};
  unsigned int len = 0;
  ::EVP_Digest(v.data(), v.size(), out.data(), &len, ::EVP_sha256(), nullptr);
  return out;
}

}  // namespace

std::optional<std::string> tcp_listener_refusal(const Endpoint& listen,
                                                const std::optional<IpAddress>& mesh_address,
                                                bool has_token, bool has_tls) {
  const std::string where = listen.to_string();
  const bool on_mesh = mesh_address && listen.address == *mesh_address;
  if (!has_token) {
    if (on_mesh)
      return "the API TCP listener " + where +
             " needs a bearer token: the mesh address is every local pod's gateway, so without "
             "one any pod on this node could manage it";
    return "the API TCP listener " + where +
           " needs a bearer token: without one anyone who can reach that address manages this "
           "node";
  }
  if (!is_loopback(listen.address) && !on_mesh && !has_tls)
    return "the API TCP listener " + where +
           " is on an underlay address and needs TLS (a certificate and key): an underlay "
           "address is reachable by anyone on the underlay, who could read the bearer token "
           "from plain-text requests; listen on loopback or the mesh address, or configure TLS";
  return std::nullopt;
}

bool bearer_matches(std::string_view authorization, std::string_view token) {
  if (token.empty()) return false;
  constexpr std::string_view kScheme = "bearer";
  if (authorization.size() <= kScheme.size()) return false;
  for (std::size_t i = 0; i < kScheme.size(); ++i) {
    char c = authorization[i];
    if (c >= 'A' && c <= 'Z') c = char(c - 'A' + 'a');
    if (c != kScheme[i]) return false;
  }
  std::string_view rest = authorization.substr(kScheme.size());
  if (rest.front() != ' ') return false;
  while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
  while (!rest.empty() && (rest.back() == ' ' || rest.back() == '\t')) rest.remove_suffix(1);
  // Equal-length digests, so the comparison's time says nothing of the token.
  const auto a = sha256(rest);
  const auto b = sha256(token);
  return ::CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace meshd::api
