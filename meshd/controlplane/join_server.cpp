#include "meshd/controlplane/join_server.h"
#include "common/unique_fd.h"

#include "meshd/controlplane/announce.h"
#include "meshd/controlplane/asio_endpoint.h"
#include "meshd/controlplane/join_exchange.h"
#include "meshd/controlplane/readmit.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>

#include <array>
#include <cstring>
#include <map>
#include <set>
#include <string>

namespace meshd::controlplane {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

namespace {

struct Connection;

IpAddress address_of(const tcp::endpoint& e) { return from_asio(e).address; }

}  // namespace

struct JoinServer::Impl : std::enable_shared_from_this<JoinServer::Impl> {
  struct Source {
    Clock::time_point first_failure;
    unsigned failures = 0;
  };

  Impl(asio::io_context& ioc, JoinServerOptions o, Answer a)
      : ioc_(ioc), opts_(std::move(o)), answer_(std::move(a)), acceptor_(ioc) {}

  void accept();
  bool limited(const IpAddress& a, Clock::time_point now) {
    auto it = sources_.find(a);
    if (it == sources_.end() || it->second.failures < opts_.failures_before_limit) return false;
    if (now - it->second.first_failure < opts_.failure_window) return true;
    sources_.erase(it);
    return false;
  }
  void failure(const IpAddress& a) {
    const auto now = Clock::now();
    auto it = sources_.find(a);
    if (it == sources_.end()) {
      if (sources_.size() >= kMaxTrackedSources) {
        auto oldest = sources_.begin();
        for (auto j = sources_.begin(); j != sources_.end(); ++j)
          if (j->second.first_failure < oldest->second.first_failure) oldest = j;
        sources_.erase(oldest);
      }
      it = sources_.emplace(a, Source{now, 0}).first;
    } else if (now - it->second.first_failure >= opts_.failure_window) {
      it->second = Source{now, 0};
    }
    ++it->second.failures;
  }

  asio::io_context& ioc_;
  JoinServerOptions opts_;
  Answer answer_;
  tcp::acceptor acceptor_;
  JoinServerCounters counters_;
  bool closed_ = false;
  std::size_t active_ = 0;
  std::map<IpAddress, std::size_t> active_by_source_;
  std::map<IpAddress, Source> sources_;
  std::set<Connection*> live_;
};

namespace {

struct Connection : std::enable_shared_from_this<Connection> {
  Connection(std::shared_ptr<JoinServer::Impl> s, tcp::socket sock, IpAddress source)
      : server(std::move(s)), socket(std::move(sock)), timer(server->ioc_), source(source) {
    ++server->active_;
    ++server->active_by_source_[source];
    server->live_.insert(this);
  }
  ~Connection() {
    server->live_.erase(this);
    --server->active_;
    auto it = server->active_by_source_.find(source);
    if (--it->second == 0) server->active_by_source_.erase(it);
  }

  void stop() {
    boost::system::error_code ec;
    socket.close(ec);
    timer.cancel();
  }

  void start() {
    timer.expires_after(server->opts_.read_timeout);
    timer.async_wait([self = shared_from_this()](boost::system::error_code ec) {
      if (ec || self->reading_done) return;
      ++self->server->counters_.timeouts;
      self->server->failure(self->source);
      self->stop();
    });
    asio::async_read(socket, asio::buffer(header),
                     [self = shared_from_this()](boost::system::error_code ec, std::size_t) {
                       if (ec) return self->read_failed(ec);
                       self->on_header();
                     });
  }

  // The peer closed or reset before its request was whole (a timeout or
  // close() already accounted for an aborted read). Frees the slot at once.
  void read_failed(boost::system::error_code ec) {
    if (ec != asio::error::operation_aborted && !server->closed_ && socket.is_open()) {
      ++server->counters_.malformed;
      server->failure(source);
    }
    stop();
  }

  void on_header() {
    if (server->closed_) return;
    std::uint32_t body = 0;
    for (int i = 8; i < 12; ++i) body = (body << 8) | header[i];
    if (body > kMaxJoinRequestBytes - kJoinHeaderBytes) {
      ++server->counters_.oversized;
      server->failure(source);
      stop();
      return;
    }
    if (std::memcmp(header.data(), "MJRQ", 4) != 0 &&
        std::memcmp(header.data(), kReadmitRequestMagic.data(), 4) != 0 &&
        std::memcmp(header.data(), kAnnounceRequestMagic.data(), 4) != 0) {
      ++server->counters_.malformed;
      server->failure(source);
      reply(uniform_refusal());
      return;
    }
    frame.assign(header.begin(), header.end());
    frame.resize(kJoinHeaderBytes + body);
    asio::async_read(socket, asio::buffer(frame.data() + kJoinHeaderBytes, body),
                     [self = shared_from_this()](boost::system::error_code ec, std::size_t) {
                       if (ec) return self->read_failed(ec);
                       self->on_frame();
                     });
  }

  void on_frame() {
    if (server->closed_) return;
    reading_done = true;
    timer.cancel();
    JoinAnswerResult r = server->answer_(frame, source);
    ++server->counters_.answered;
    if (r.failure) server->failure(source);
    reply(std::move(r.reply));
  }

  void reply(std::vector<std::uint8_t> bytes) {
    reading_done = true;
    out = std::move(bytes);
    timer.expires_after(server->opts_.write_timeout);
    timer.async_wait([self = shared_from_this()](boost::system::error_code ec) {
      if (ec || self->writing_done) return;
      ++self->server->counters_.timeouts;
      self->stop();
    });
    asio::async_write(socket, asio::buffer(out),
                      [self = shared_from_this()](boost::system::error_code ec, std::size_t) {
                        self->writing_done = true;
                        if (!ec) self->socket.shutdown(tcp::socket::shutdown_send, ec);
                        self->stop();
                      });
  }

  std::shared_ptr<JoinServer::Impl> server;
  tcp::socket socket;
  asio::steady_timer timer;
  IpAddress source;
  std::array<std::uint8_t, kJoinHeaderBytes> header{};
  std::vector<std::uint8_t> frame;
  std::vector<std::uint8_t> out;
  bool reading_done = false;
  bool writing_done = false;
};

}  // namespace

void JoinServer::Impl::accept() {
  acceptor_.async_accept([self = shared_from_this()](boost::system::error_code ec,
                                                     tcp::socket sock) {
    if (self->closed_) return;
    if (!ec) {
      set_cloexec(sock.native_handle());
      ++self->counters_.connections;
      boost::system::error_code pe;
      const auto peer = sock.remote_endpoint(pe);
      if (!pe) {
        const IpAddress source = address_of(peer);
        auto by_source = self->active_by_source_.find(source);
        if (self->limited(source, Clock::now())) {
          ++self->counters_.rate_limited;
        } else if (self->active_ >= self->opts_.max_concurrent ||
                   (by_source != self->active_by_source_.end() &&
                    by_source->second >= self->opts_.max_per_source)) {
          ++self->counters_.shed;
        } else {
          std::make_shared<Connection>(self, std::move(sock), source)->start();
        }
      }
      // A connection not handed on is closed here, at once.
    } else if (ec == asio::error::operation_aborted) {
      return;
    }
    // Other accept errors (EMFILE, ECONNABORTED) are transient: keep accepting.
    self->accept();
  });
}

JoinServer::JoinServer(asio::io_context& ioc, JoinServerOptions opts, Answer answer)
    : impl_(std::make_shared<Impl>(ioc, std::move(opts), std::move(answer))) {
  const std::string where = "join listener on " + impl_->opts_.listen.to_string();
  if (impl_->opts_.listen.empty()) throw ErrorException(Error::invalid(where + ": no address"));
  listen_on(impl_->acceptor_, impl_->opts_.listen, where);
  impl_->accept();
}

JoinServer::~JoinServer() { close(); }

Endpoint JoinServer::local_endpoint() const {
  boost::system::error_code ec;
  auto ep = impl_->acceptor_.local_endpoint(ec);
  return ec ? Endpoint{} : from_asio(ep);
}

const JoinServerCounters& JoinServer::counters() const { return impl_->counters_; }

void JoinServer::close() {
  if (impl_->closed_) return;
  impl_->closed_ = true;
  boost::system::error_code ec;
  impl_->acceptor_.close(ec);
  // Copy: stop() does not destroy a connection (its handlers still hold
  // it), but be safe against the set changing under the loop.
  auto live = impl_->live_;
  for (Connection* c : live) c->stop();
}

}  // namespace meshd::controlplane
