#include "meshd/datastore/etcd_client.h"

#include "common/secret_file.h"
#include "common/version.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include <sys/socket.h>

#include <cctype>
#include <cstring>
#include <charconv>
#include <filesystem>
#include <optional>
#include <variant>

namespace meshd::datastore {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using boost::system::error_code;
using tcp = asio::ip::tcp;

namespace {

Error error_of(int err, std::string message) {
  return Error{{err, boost::system::generic_category()}, std::move(message)};
}

int errno_of(const error_code& ec) {
  if (ec == beast::error::timeout) return ETIMEDOUT;
  if (ec.category() == boost::system::system_category() ||
      ec.category() == boost::system::generic_category())
    return ec.value();
  if (ec == asio::error::eof || ec == http::error::end_of_stream ||
      ec == asio::ssl::error::stream_truncated)
    return ECONNRESET;
  if (ec == asio::error::host_not_found || ec == asio::error::host_not_found_try_again)
    return EHOSTUNREACH;
  return EIO;
}

std::string seconds_text(std::chrono::milliseconds t) {
  if (t.count() % 1000 == 0) return std::to_string(t.count() / 1000) + " s";
  return std::to_string(t.count()) + " ms";
}

bool is_ip_literal(const std::string& host) {
  error_code ec;
  (void)asio::ip::make_address(host, ec);
  return !ec;
}

bool readable_file(const std::string& path) {
  std::error_code ec;
  return std::filesystem::is_regular_file(path, ec) && access(path.c_str(), R_OK) == 0;
}

// The TLS context for every connection of a client or a watch: TLS 1.2+,
// the server verified against ca_file (or the system's CAs), the client
// certificate when one is configured.
Result<std::shared_ptr<asio::ssl::context>> make_tls_context(const EtcdOptions& o) {
  auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_client);
  ctx->set_options(asio::ssl::context::no_sslv2 | asio::ssl::context::no_sslv3 |
                   asio::ssl::context::no_tlsv1 | asio::ssl::context::no_tlsv1_1);
  error_code ec;
  if (o.ca_file.empty()) ctx->set_default_verify_paths(ec);
  else ctx->load_verify_file(o.ca_file, ec);
  if (ec)
    return Error::invalid(o.ca_file.empty()
                              ? "etcd: cannot load the system's CA certificates: " + ec.message() +
                                    " (set the etcd CA file)"
                              : "etcd CA file " + o.ca_file + ": cannot load it: " + ec.message() +
                                    " (expected PEM certificates)");
  ctx->set_verify_mode(asio::ssl::verify_peer);
  if (!o.cert_file.empty()) {
    ctx->use_certificate_chain_file(o.cert_file, ec);
    if (ec)
      return Error::invalid("etcd client certificate " + o.cert_file +
                            ": cannot load it: " + ec.message() + " (expected PEM)");
    // Read as a secret file (owner and mode checked, like the password
    // file) and handed to OpenSSL from memory, wiped after. The key's
    // content never appears in a message: only its path.
    auto pem = read_secret_file(o.key_file, kMaxKeyFileBytes);
    if (!pem) return Error{pem.error().code, "etcd client key: " + pem.error().message};
    ctx->use_private_key(asio::buffer(*pem), asio::ssl::context::pem, ec);
    explicit_bzero(pem->data(), pem->size());
    if (ec)
      return Error::invalid("etcd client key " + o.key_file + ": cannot load it or it does not "
                            "match the certificate " + o.cert_file + ": " + ec.message());
  }
  return ctx;
}

struct Answer {
  int status = 0;
  std::string body;
};

http::request<http::string_body> make_request(const EtcdEndpoint& ep, std::string_view target,
                                              std::string body, const std::string& token,
                                              bool keep_alive) {
  http::request<http::string_body> req{http::verb::post, target, 11};
  req.set(http::field::host, ep.host_header);
  req.set(http::field::user_agent, std::string("meshd/") + meshd::kVersion);
  req.set(http::field::content_type, "application/json");
  req.set(http::field::accept, "application/json");
  // Without a leader etcd answers 503 at once instead of waiting for one
  // (issue 13, measured): the client then tries the next endpoint.
  req.set("Grpc-Metadata-hasleader", "true");
  if (!token.empty()) req.set(http::field::authorization, token);
  req.keep_alive(keep_alive);
  req.body() = std::move(body);
  req.prepare_payload();
  return req;
}

using TlsStream = beast::ssl_stream<beast::tcp_stream>;

// Runs the io_context until the operation started by `initiate` completes
// and returns its error: the client is sequential, and the stream's expiry
// bounds every wait.
template <class Initiate>
error_code run(asio::io_context& ioc, Initiate&& initiate) {
  error_code result = asio::error::would_block;
  initiate([&](error_code ec, auto&&...) { result = ec; });
  ioc.restart();
  ioc.run();
  return result;
}

}  // namespace

Result<EtcdEndpoint> parse_etcd_endpoint(std::string_view url) {
  auto bad = [&] {
    std::string shown;
    for (unsigned char c : url.substr(0, 200)) shown += (c >= 0x20 && c < 0x7f) ? char(c) : '?';
    return Error::invalid("etcd endpoint \"" + shown +
                          "\": expected http://HOST:PORT or https://HOST:PORT (an IPv6 address in "
                          "brackets)");
  };
  EtcdEndpoint e;
  e.url = std::string(url);
  std::string_view rest = url;
  if (rest.starts_with("https://")) {
    e.tls = true;
    rest.remove_prefix(8);
  } else if (rest.starts_with("http://")) {
    rest.remove_prefix(7);
  } else {
    return bad();
  }
  if (rest.ends_with('/')) rest.remove_suffix(1);
  std::string_view host, port;
  if (rest.starts_with('[')) {
    auto close = rest.find(']');
    if (close == std::string_view::npos || close + 1 >= rest.size() || rest[close + 1] != ':')
      return bad();
    host = rest.substr(1, close - 1);
    port = rest.substr(close + 2);
    error_code ec;
    (void)asio::ip::make_address_v6(std::string(host), ec);
    if (ec) return bad();
  } else {
    auto colon = rest.rfind(':');
    if (colon == std::string_view::npos) return bad();
    host = rest.substr(0, colon);
    port = rest.substr(colon + 1);
    for (char c : host)
      if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-')) return bad();
  }
  if (host.empty() || port.empty() || port.size() > 5) return bad();
  unsigned p = 0;
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), p);
  if (ec != std::errc() || end != port.data() + port.size() || p == 0 || p > 65535) return bad();
  e.host = std::string(host);
  e.port = static_cast<std::uint16_t>(p);
  e.host_header = std::string(rest.substr(0, rest.size() - port.size() - 1)) + ":" + std::string(port);
  return e;
}

namespace {

Result<std::vector<EtcdEndpoint>> parse_endpoints(const EtcdOptions& o) {
  if (o.endpoints.empty()) return Error::invalid("etcd: no endpoint given (set at least one URL)");
  std::vector<EtcdEndpoint> out;
  for (const auto& url : o.endpoints) {
    auto e = parse_etcd_endpoint(url);
    if (!e) return e.error();
    if (!out.empty() && out.front().tls != e->tls)
      return Error::invalid("etcd endpoints mix http and https (" + out.front().url + ", " + url +
                            "): use one scheme for all");
    out.push_back(std::move(*e));
  }
  return out;
}

}  // namespace

Result<void> EtcdClient::validate(const EtcdOptions& o) {
  auto eps = parse_endpoints(o);
  if (!eps) return eps.error();
  const bool tls = eps->front().tls;
  if (!tls && (!o.ca_file.empty() || !o.cert_file.empty() || !o.key_file.empty()))
    return Error::invalid("etcd TLS files are set but the endpoints are http: use https:// URLs "
                          "(or drop the TLS files)");
  if (o.cert_file.empty() != o.key_file.empty())
    return Error::invalid(o.cert_file.empty()
                              ? "etcd client key is set without a client certificate"
                              : "etcd client certificate is set without its key");
  for (const auto* f : {&o.ca_file, &o.cert_file, &o.key_file})
    if (!f->empty() && !readable_file(*f))
      return Error::invalid("etcd TLS file " + *f + " is not a readable regular file");
  if (o.username.empty() && !o.password.empty())
    return Error::invalid("etcd password is set without a username");
  if (o.timeout.count() <= 0)
    return Error::invalid("etcd timeout must be positive (got " + std::to_string(o.timeout.count()) +
                          " ms)");
  if (tls) {
    auto ctx = make_tls_context(o);
    if (!ctx) return ctx.error();
  }
  return {};
}

// ---- the synchronous client ----

struct EtcdClient::Impl {
  EtcdOptions opts;
  std::vector<EtcdEndpoint> eps;
  std::optional<Error> invalid;  // from validate(): every call returns it
  std::size_t current = 0;       // the endpoint tried first
  std::string current_url;
  std::string token;             // from /v3/auth/authenticate; "" = none yet
  asio::io_context ioc;
  std::shared_ptr<asio::ssl::context> tls_ctx;
  // The open connection (to eps[conn_ep]), one of the two.
  std::optional<beast::tcp_stream> plain;
  std::unique_ptr<TlsStream> tls;
  std::size_t conn_ep = 0;
  beast::flat_buffer buffer;

  // What one try at one endpoint gave.
  enum class Outcome { kAnswer, kNotSent, kUnknown };
  struct Try {
    Outcome outcome = Outcome::kNotSent;
    Answer answer;
    Error error;
  };

  bool connected() const { return plain.has_value() || tls != nullptr; }

  tcp::socket& socket() {
    return tls ? beast::get_lowest_layer(*tls).socket() : plain->socket();
  }

  void close() {
    if (connected()) {
      error_code ignored;
      socket().close(ignored);
    }
    plain.reset();
    tls.reset();
    buffer.clear();
  }

  // An idle keep-alive connection the server has closed meanwhile would
  // fail the next request after it was sent (an unknown outcome for a
  // write): look before using it.
  bool still_open() {
    if (!connected()) return false;
    char c;
    ssize_t n = ::recv(socket().native_handle(), &c, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n == 0) return false;                                       // closed by the server
    if (n < 0) return errno == EAGAIN || errno == EWOULDBLOCK;      // nothing pending: fine
    return tls != nullptr;  // TLS may have records pending (a session ticket); plain: junk
  }

  Result<void> connect(std::size_t i, std::chrono::steady_clock::time_point deadline) {
    const EtcdEndpoint& ep = eps[i];
    close();
    auto left = [&] {
      return std::max(std::chrono::steady_clock::duration::zero(),
                      deadline - std::chrono::steady_clock::now());
    };
    tcp::resolver::results_type endpoints;
    {
      // A resolver has no expiry of its own: a timer bounds it.
      tcp::resolver resolver(ioc);
      asio::steady_timer timer(ioc, left());
      error_code resolve_ec = asio::error::would_block;
      bool timed_out = false;
      timer.async_wait([&](error_code ec) {
        if (ec) return;
        timed_out = true;
        resolver.cancel();
      });
      resolver.async_resolve(ep.host, std::to_string(ep.port),
                             [&](error_code ec, tcp::resolver::results_type r) {
                               resolve_ec = ec;
                               endpoints = std::move(r);
                               timer.cancel();
                             });
      ioc.restart();
      ioc.run();
      if (timed_out) return error_of(ETIMEDOUT, "cannot resolve " + ep.host + " in time");
      if (resolve_ec)
        return error_of(errno_of(resolve_ec), "cannot resolve " + ep.host + ": " + resolve_ec.message());
    }
    auto connect_failed = [&](const error_code& ec) {
      return error_of(errno_of(ec), ec == beast::error::timeout
                                        ? std::string("no connection within the timeout")
                                        : "cannot connect: " + ec.message());
    };
    if (!ep.tls) {
      plain.emplace(ioc);
      plain->expires_at(deadline);
      if (error_code ec = run(ioc, [&](auto h) { plain->async_connect(endpoints, std::move(h)); })) {
        close();
        return connect_failed(ec);
      }
      plain->socket().set_option(tcp::no_delay(true));
    } else {
      tls = std::make_unique<TlsStream>(ioc, *tls_ctx);
      // etcd's certificates name members by IP SANs (or DNS names): the
      // check follows the endpoint as written.
      tls->set_verify_callback(asio::ssl::host_name_verification(ep.host));
      if (!is_ip_literal(ep.host))  // SNI carries names only (RFC 6066 section 3)
        SSL_set_tlsext_host_name(tls->native_handle(), ep.host.c_str());
      auto& low = beast::get_lowest_layer(*tls);
      low.expires_at(deadline);
      if (error_code ec = run(ioc, [&](auto h) { low.async_connect(endpoints, std::move(h)); })) {
        close();
        return connect_failed(ec);
      }
      low.socket().set_option(tcp::no_delay(true));
      if (error_code ec = run(ioc, [&](auto h) {
            tls->async_handshake(asio::ssl::stream_base::client, std::move(h));
          })) {
        close();
        if (ec == beast::error::timeout) return error_of(ETIMEDOUT, "TLS handshake timed out");
        return error_of(EPROTO, "TLS handshake failed: " + ec.message() +
                                    " (is the server's certificate signed by the etcd CA file and "
                                    "issued for " + ep.host + "? does etcd require a client "
                                    "certificate?)");
      }
    }
    conn_ep = i;
    return {};
  }

  // One request on endpoint i within `deadline`.
  Try exchange(std::size_t i, std::string_view target, const std::string& body,
               std::chrono::steady_clock::time_point deadline) {
    Try t;
    const bool reused = connected() && conn_ep == i && still_open();
    if (!reused) {
      auto c = connect(i, deadline);
      if (!c) {
        t.error = c.error();
        return t;  // kNotSent
      }
    }
    auto req = make_request(eps[i], target, body, token, true);
    auto io = [&](auto&& op) {
      if (tls) {
        beast::get_lowest_layer(*tls).expires_at(deadline);
        return run(ioc, [&](auto h) { op(*tls, std::move(h)); });
      }
      plain->expires_at(deadline);
      return run(ioc, [&](auto h) { op(*plain, std::move(h)); });
    };
    // A write that failed left no complete request at the server (HTTP
    // needs all of it): not sent.
    if (error_code ec = io([&](auto& s, auto h) { http::async_write(s, req, std::move(h)); })) {
      close();
      t.error = error_of(errno_of(ec), ec == beast::error::timeout
                                           ? "sending the request timed out"
                                           : "sending the request failed: " + ec.message());
      return t;
    }
    http::response_parser<http::string_body> parser;
    parser.body_limit(kMaxAnswerBytes);
    if (error_code ec = io([&](auto& s, auto h) { http::async_read(s, buffer, parser, std::move(h)); })) {
      close();
      t.outcome = Outcome::kUnknown;
      if (ec == beast::error::timeout)
        t.error = error_of(ETIMEDOUT, "no answer within " + seconds_text(opts.timeout));
      else if (ec == http::error::body_limit)
        t.error = error_of(EMSGSIZE, "the answer is over " + std::to_string(kMaxAnswerBytes >> 20) + " MiB");
      else
        t.error = error_of(errno_of(ec), "reading the answer failed: " + ec.message());
      return t;
    }
    auto& res = parser.get();
    t.outcome = Outcome::kAnswer;
    t.answer.status = static_cast<int>(res.result_int());
    t.answer.body = std::move(res.body());
    if (!res.keep_alive()) close();
    return t;
  }

  // Authenticates on endpoint i; ok = the token is set.
  Try authenticate(std::size_t i, std::chrono::steady_clock::time_point deadline) {
    token.clear();
    Try t = exchange(i, "/v3/auth/authenticate",
                     encode_authenticate_request(opts.username, opts.password), deadline);
    if (t.outcome != Outcome::kAnswer) return t;
    if (t.answer.status != 200) return t;  // the caller maps the error body
    auto tok = parse_authenticate_response(t.answer.body);
    if (!tok) {
      t.outcome = Outcome::kNotSent;
      t.error = tok.error();
      return t;
    }
    token = std::move(*tok);
    return t;
  }

  std::string where(std::string_view op, std::size_t i) const {
    return "etcd " + std::string(op) + " at " + eps[i].url;
  }

  // Sends `body` to `target`, with failover (above), auth, and the errors of
  // etcd_client.h. A 200 answer's body, or the error.
  Result<std::string> call(std::string_view op, std::string_view target, const std::string& body,
                           bool write) {
    if (invalid) return *invalid;
    std::vector<std::string> failures;
    // The code for "every endpoint failed": a member that answered "no
    // leader" (EAGAIN) says more than one that did not answer in time
    // (ETIMEDOUT), which says more than refused connections (the last one's
    // reason): ECONNREFUSED means nothing was reachable at all.
    int worst = 0;
    auto rank = [](int e) { return e == EAGAIN ? 3 : e == ETIMEDOUT ? 2 : 1; };
    auto note = [&](int e) {
      if (worst == 0 || rank(e) >= rank(worst)) worst = e;
    };
    for (std::size_t n = 0; n < eps.size(); ++n) {
      const std::size_t i = (current + n) % eps.size();
      const auto deadline = std::chrono::steady_clock::now() + opts.timeout;
      bool retried = false;  // after "invalid auth token": once
      for (;;) {
        Try t;
        if (!opts.username.empty() && token.empty()) {
          t = authenticate(i, deadline);
          if (t.outcome == Outcome::kAnswer && t.answer.status == 200) t = exchange(i, target, body, deadline);
          else if (t.outcome == Outcome::kAnswer) {
            // The authenticate answer's error (wrong password...).
            auto e = parse_error_body(t.answer.body);
            int err = errno_for_answer(t.answer.status, e);
            if (err == EAGAIN) {
              failures.push_back(eps[i].url + ": " + (e ? e->message : "HTTP " + std::to_string(t.answer.status)));
              note(err);
              break;
            }
            current = i;
            current_url = eps[i].url;
            return error_of(err, where("authenticate", i) + " as user " + opts.username +
                                     " failed: " + (e ? e->message : "HTTP " + std::to_string(t.answer.status)));
          } else if (t.outcome == Outcome::kUnknown) {
            t.outcome = Outcome::kNotSent;  // authenticating is not the caller's write
          }
        } else {
          t = exchange(i, target, body, deadline);
        }
        if (t.outcome == Outcome::kNotSent) {
          failures.push_back(eps[i].url + ": " + t.error.message);
          note(t.error.value());
          break;  // the next endpoint
        }
        if (t.outcome == Outcome::kUnknown) {
          if (write)
            return error_of(ETIMEDOUT, where(op, i) + ": " + t.error.message +
                                           "; the write may still be applied: read the key again "
                                           "before retrying");
          failures.push_back(eps[i].url + ": " + t.error.message);
          note(t.error.value());
          break;
        }
        if (t.answer.status == 200) {
          current = i;
          current_url = eps[i].url;
          return std::move(t.answer.body);
        }
        auto e = parse_error_body(t.answer.body);
        if (is_invalid_token(e) && !opts.username.empty() && !retried) {
          retried = true;
          token.clear();  // expired (or the member restarted): once more
          continue;
        }
        const std::string text = e ? e->message : "HTTP " + std::to_string(t.answer.status) +
                                                      " without an etcd error body";
        int err = errno_for_answer(t.answer.status, e);
        if (err == EAGAIN || (err == ETIMEDOUT && !write)) {
          if (write && !write_not_applied(e))
            return error_of(ETIMEDOUT, where(op, i) + ": " + text +
                                           "; the write may still be applied: read the key again "
                                           "before retrying");
          failures.push_back(eps[i].url + ": " + text);
          note(err);
          break;  // no leader here: the next endpoint
        }
        if (err == ETIMEDOUT && write)
          return error_of(ETIMEDOUT, where(op, i) + ": " + text +
                                         "; the write may still be applied: read the key again "
                                         "before retrying");
        current = i;
        current_url = eps[i].url;
        return error_of(err, where(op, i) + ": " + text);
      }
    }
    std::string joined;
    for (const auto& f : failures) joined += (joined.empty() ? "" : "; ") + f;
    return error_of(worst, "etcd " + std::string(op) + ": no endpoint answered (" + joined + ")");
  }
};

EtcdClient::EtcdClient(EtcdOptions opts) : impl_(std::make_unique<Impl>()) {
  auto& m = *impl_;
  m.opts = std::move(opts);
  if (auto v = validate(m.opts); !v) {
    m.invalid = v.error();
  } else {
    m.eps = *parse_endpoints(m.opts);
    if (m.eps.front().tls) m.tls_ctx = *make_tls_context(m.opts);
  }
  if (!m.opts.endpoints.empty()) m.current_url = m.opts.endpoints.front();
}

EtcdClient::~EtcdClient() {
  if (impl_) impl_->close();
}

const std::string& EtcdClient::current_endpoint() const { return impl_->current_url; }

namespace {

// Prefixes a parser's error with the operation and endpoint.
template <class T>
Result<T> answer_error(Result<T> r, const std::string& where) {
  if (r) return r;
  return Error{r.error().code, where + ": " + r.error().message};
}

}  // namespace

Result<RangeResult> EtcdClient::range(const RangeRequest& r) {
  auto body = impl_->call("range", "/v3/kv/range", encode_range_request(r), false);
  if (!body) return body.error();
  return answer_error(parse_range_response(*body), "etcd range at " + impl_->current_url);
}

Result<Revision> EtcdClient::put(std::string key, std::string value, LeaseId lease) {
  auto body = impl_->call("put", "/v3/kv/put", encode_put_request(key, value, lease), true);
  if (!body) return body.error();
  return answer_error(parse_header_revision(*body), "etcd put at " + impl_->current_url);
}

Result<Revision> EtcdClient::del(std::string key, std::string range_end) {
  auto body = impl_->call("delete", "/v3/kv/deleterange", encode_delete_request(key, range_end), true);
  if (!body) return body.error();
  auto d = answer_error(parse_delete_response(*body), "etcd delete at " + impl_->current_url);
  if (!d) return d.error();
  return d->revision;
}

Result<TxnResult> EtcdClient::txn(const Txn& t) {
  auto body = impl_->call("txn", "/v3/kv/txn", encode_txn_request(t), true);
  if (!body) return body.error();
  return answer_error(parse_txn_response(*body), "etcd txn at " + impl_->current_url);
}

Result<LeaseId> EtcdClient::lease_grant(std::chrono::seconds ttl) {
  if (ttl.count() < 1)
    return Error::invalid("etcd lease grant: the TTL must be at least 1 s (got " +
                          std::to_string(ttl.count()) + ")");
  // Granting is a write, but an unknown outcome only leaves a lease nobody
  // uses: it expires. The caller may simply grant again.
  auto body = impl_->call("lease grant", "/v3/lease/grant", encode_lease_grant_request(ttl), true);
  if (!body) return body.error();
  auto g = answer_error(parse_lease_grant_response(*body), "etcd lease grant at " + impl_->current_url);
  if (!g) return g.error();
  return g->id;
}

Result<std::chrono::seconds> EtcdClient::lease_keepalive(LeaseId id) {
  // Renewing is idempotent: it may go to another endpoint after a timeout.
  auto body = impl_->call("lease keepalive", "/v3/lease/keepalive", encode_lease_keepalive_request(id), false);
  if (!body) return body.error();
  return answer_error(parse_lease_keepalive_response(*body),
                      "etcd lease keepalive of " + std::to_string(id) + " at " + impl_->current_url);
}

Result<void> EtcdClient::lease_revoke(LeaseId id) {
  auto body = impl_->call("lease revoke", "/v3/lease/revoke", encode_lease_revoke_request(id), true);
  if (!body) return body.error();
  auto r = answer_error(parse_header_revision(*body), "etcd lease revoke at " + impl_->current_url);
  if (!r) return r.error();
  return {};
}

Result<void> EtcdClient::compact(Revision rev) {
  auto body = impl_->call("compact", "/v3/kv/compaction", encode_compact_request(rev), true);
  if (!body) return body.error();
  auto r = answer_error(parse_header_revision(*body), "etcd compact at " + impl_->current_url);
  if (!r) return r.error();
  return {};
}

// ---- the watch ----

struct EtcdWatch::State : std::enable_shared_from_this<EtcdWatch::State> {
  asio::io_context& ioc;
  EtcdOptions opts;
  std::vector<EtcdEndpoint> eps;
  std::shared_ptr<asio::ssl::context> tls_ctx;
  std::string key, range_end;
  Revision start_revision = 0;
  OnResponse on_response;
  OnEnd on_end;

  bool done = false;
  std::size_t ep = 0;
  std::vector<std::string> failures;
  int worst = 0;  // as in EtcdClient: no leader > timeout > connection refused
  std::optional<tcp::resolver> resolver;
  std::optional<beast::tcp_stream> plain;
  std::unique_ptr<TlsStream> tls;
  beast::flat_buffer buffer;
  std::string token;
  http::request<http::string_body> req;
  std::optional<http::response_parser<http::string_body>> parser;
  std::string line;  // the message being assembled from chunks
  bool streaming = false;  // the watch was accepted: no failover from here on

  // Collects a chunk's bytes into `line`, bounded.
  std::function<std::size_t(std::uint64_t, std::string_view, error_code&)> chunk_cb =
      [this](std::uint64_t, std::string_view body, error_code& ec) -> std::size_t {
    if (line.size() + body.size() > kMaxWatchMessageBytes) {
      ec = http::error::body_limit;
      return 0;
    }
    line.append(body);
    return body.size();
  };

  explicit State(asio::io_context& c) : ioc(c) {}

  beast::tcp_stream& lowest() { return tls ? beast::get_lowest_layer(*tls) : *plain; }

  void close() {
    if (resolver) resolver->cancel();
    if (plain || tls) {
      error_code ignored;
      lowest().socket().close(ignored);
    }
  }

  void finish(Error e) {
    if (done) return;
    done = true;
    close();
    auto cb = std::move(on_end);
    on_response = nullptr;
    if (cb) cb(e);
  }

  std::string where() const { return "etcd watch at " + eps[ep].url; }

  // A failure before the watch was accepted: the next endpoint, or the end.
  void next_endpoint(Error e) {
    if (done) return;
    failures.push_back(eps[ep].url + ": " + e.message);
    auto rank = [](int c) { return c == EAGAIN ? 3 : c == ETIMEDOUT ? 2 : 1; };
    if (worst == 0 || rank(e.value()) >= rank(worst)) worst = e.value();
    close();
    plain.reset();
    tls.reset();
    buffer.clear();
    if (++ep < eps.size()) return start();
    std::string joined;
    for (const auto& f : failures) joined += (joined.empty() ? "" : "; ") + f;
    ep = eps.size() - 1;
    finish(error_of(worst, "etcd watch: no endpoint accepted it (" + joined + ")"));
  }

  void start() {
    auto self = shared_from_this();
    const EtcdEndpoint& e = eps[ep];
    resolver.emplace(ioc);
    auto deadline = std::chrono::steady_clock::now() + opts.timeout;
    if (e.tls) {
      tls = std::make_unique<TlsStream>(ioc, *tls_ctx);
      tls->set_verify_callback(asio::ssl::host_name_verification(e.host));
      if (!is_ip_literal(e.host)) SSL_set_tlsext_host_name(tls->native_handle(), e.host.c_str());
    } else {
      plain.emplace(ioc);
    }
    lowest().expires_at(deadline);
    // The stream's expiry cannot bound the resolver: a timer can.
    auto timer = std::make_shared<asio::steady_timer>(ioc, deadline);
    timer->async_wait([self, this](error_code ec) {
      if (!ec && resolver) resolver->cancel();
    });
    resolver->async_resolve(
        e.host, std::to_string(e.port),
        [self, this, timer](error_code ec, tcp::resolver::results_type r) {
          timer->cancel();
          if (done) return;
          if (ec)
            return next_endpoint(error_of(ec == asio::error::operation_aborted ? ETIMEDOUT : errno_of(ec),
                                          "cannot resolve " + eps[ep].host + ": " + ec.message()));
          lowest().async_connect(r, [self, this](error_code ec, const tcp::endpoint&) {
            if (done) return;
            if (ec)
              return next_endpoint(error_of(errno_of(ec), ec == beast::error::timeout
                                                              ? std::string("no connection within the timeout")
                                                              : "cannot connect: " + ec.message()));
            if (!tls) return send_auth_or_watch();
            tls->async_handshake(asio::ssl::stream_base::client, [self, this](error_code ec) {
              if (done) return;
              if (ec)
                return next_endpoint(error_of(ec == beast::error::timeout ? ETIMEDOUT : EPROTO,
                                              "TLS handshake failed: " + ec.message()));
              send_auth_or_watch();
            });
          });
        });
  }

  template <class F>
  void write_then_read(F on_answer) {
    auto self = shared_from_this();
    auto after_write = [self, this, on_answer](error_code ec, std::size_t) mutable {
      if (done) return;
      if (ec) return next_endpoint(error_of(errno_of(ec), "sending the request failed: " + ec.message()));
      parser.emplace();
      parser->body_limit(kMaxAnswerBytes);
      auto after_read = [self, this, on_answer](error_code ec, std::size_t) mutable {
        if (done) return;
        if (ec) return next_endpoint(error_of(errno_of(ec), "reading the answer failed: " + ec.message()));
        on_answer();
      };
      if (tls) http::async_read(*tls, buffer, *parser, after_read);
      else http::async_read(*plain, buffer, *parser, after_read);
    };
    if (tls) http::async_write(*tls, req, after_write);
    else http::async_write(*plain, req, after_write);
  }

  void send_auth_or_watch() {
    if (opts.username.empty() || !token.empty()) return send_watch();
    req = make_request(eps[ep], "/v3/auth/authenticate",
                       encode_authenticate_request(opts.username, opts.password), {}, true);
    write_then_read([this] {
      auto& res = parser->get();
      if (res.result_int() != 200) {
        auto e = parse_error_body(res.body());
        int err = errno_for_answer(static_cast<int>(res.result_int()), e);
        std::string text = e ? e->message : "HTTP " + std::to_string(res.result_int());
        if (err == EAGAIN) return next_endpoint(error_of(err, text));
        return finish(error_of(err, "etcd authenticate at " + eps[ep].url + " as user " +
                                        opts.username + " failed: " + text));
      }
      auto tok = parse_authenticate_response(res.body());
      if (!tok) return next_endpoint(tok.error());
      token = std::move(*tok);
      if (!res.keep_alive()) return next_endpoint(error_of(ECONNRESET, "etcd closed the connection after authenticating"));
      send_watch();
    });
  }

  void send_watch() {
    req = make_request(eps[ep], "/v3/watch",
                       encode_watch_create_request(key, range_end, start_revision, true, true),
                       token, true);
    auto self = shared_from_this();
    auto after_write = [self, this](error_code ec, std::size_t) {
      if (done) return;
      if (ec) return next_endpoint(error_of(errno_of(ec), "sending the request failed: " + ec.message()));
      parser.emplace();
      parser->body_limit(boost::none);  // the stream is endless; `line` is bounded instead
      read_header();
    };
    if (tls) http::async_write(*tls, req, after_write);
    else http::async_write(*plain, req, after_write);
  }

  void read_header() {
    auto self = shared_from_this();
    auto on_header = [self, this](error_code ec, std::size_t) {
      if (done) return;
      if (ec) return next_endpoint(error_of(ec == beast::error::timeout ? ETIMEDOUT : errno_of(ec),
                                            ec == beast::error::timeout
                                                ? std::string("no answer within the timeout")
                                                : "reading the answer failed: " + ec.message()));
      const int status = static_cast<int>(parser->get().result_int());
      if (status != 200) return read_error_answer(status);
      parser->on_chunk_body(chunk_cb);  // Beast keeps a reference: a member
      read_more();
    };
    if (tls) http::async_read_header(*tls, buffer, *parser, on_header);
    else http::async_read_header(*plain, buffer, *parser, on_header);
  }

  // A refusal before the stream: its error body, with the usual errno.
  void read_error_answer(int status) {
    auto self = shared_from_this();
    parser->body_limit(64 * 1024);
    auto on_body = [self, this, status](error_code, std::size_t) {
      if (done) return;
      auto e = parse_error_body(parser->get().body());
      const int err = errno_for_answer(status, e);
      std::string text = e ? e->message : "HTTP " + std::to_string(status) + " without an etcd error body";
      if (err == EAGAIN || err == ETIMEDOUT) return next_endpoint(error_of(err, text));
      finish(error_of(err, where() + ": " + text));
    };
    if (tls) http::async_read(*tls, buffer, *parser, on_body);
    else http::async_read(*plain, buffer, *parser, on_body);
  }

  void read_more() {
    auto self = shared_from_this();
    auto on_read = [self, this](error_code ec, std::size_t) {
      if (done) return;
      // Whole messages first: what arrived before an error still counts.
      if (!deliver_lines()) return;
      if (ec) {
        if (ec == http::error::body_limit)
          return finish(error_of(EMSGSIZE, where() + ": a watch message is over " +
                                               std::to_string(kMaxWatchMessageBytes >> 20) + " MiB"));
        if (!streaming)
          return next_endpoint(error_of(ec == beast::error::timeout ? ETIMEDOUT : errno_of(ec),
                                        ec == beast::error::timeout
                                            ? std::string("the watch was not created within the timeout")
                                            : "reading the watch failed: " + ec.message()));
        return finish(error_of(errno_of(ec), where() + ": the stream broke: " + ec.message()));
      }
      if (parser->is_done())
        return finish(error_of(ECONNRESET, where() + ": etcd ended the stream"));
      read_more();
    };
    if (tls) http::async_read_some(*tls, buffer, *parser, on_read);
    else http::async_read_some(*plain, buffer, *parser, on_read);
  }

  // Parses and delivers each complete line; false when the watch ended.
  bool deliver_lines() {
    auto self = shared_from_this();  // a callback may destroy the EtcdWatch
    std::size_t start = 0;
    for (;;) {
      auto nl = line.find('\n', start);
      if (nl == std::string::npos) break;
      std::string_view msg(line.data() + start, nl - start);
      start = nl + 1;
      if (msg.empty() || msg == "\r") continue;
      auto w = parse_watch_message(msg);
      if (!w) {
        line.clear();
        finish(Error{w.error().code, where() + ": " + w.error().message});
        return false;
      }
      if (!streaming) {
        streaming = true;
        lowest().expires_never();  // from here silence is the caller's watchdog's business
      }
      if (on_response) on_response(*w);
      if (done) return false;
      if (w->canceled) {
        line.clear();
        if (w->compact_revision != 0)
          finish(error_of(ERANGE, where() + ": revision " + std::to_string(start_revision) +
                                      " was compacted (oldest kept: " +
                                      std::to_string(w->compact_revision) + "): list again"));
        else if (w->cancel_reason.find("auth") != std::string::npos ||
                 w->cancel_reason.find("permission denied") != std::string::npos)
          finish(error_of(EACCES, where() + ": etcd canceled it: " + w->cancel_reason));
        else
          finish(error_of(ECANCELED, where() + ": etcd canceled it" +
                                         (w->cancel_reason.empty() ? std::string()
                                                                   : ": " + w->cancel_reason)));
        return false;
      }
    }
    line.erase(0, start);
    return true;
  }
};

EtcdWatch::EtcdWatch(asio::io_context& ioc, EtcdOptions opts, std::string key,
                     std::string range_end, Revision start_revision, OnResponse on_response,
                     OnEnd on_end)
    : state_(std::make_shared<State>(ioc)) {
  auto& s = *state_;
  s.opts = std::move(opts);
  s.key = std::move(key);
  s.range_end = std::move(range_end);
  s.start_revision = start_revision;
  s.on_response = std::move(on_response);
  s.on_end = std::move(on_end);
  auto v = EtcdClient::validate(s.opts);
  if (!v) {
    // Reported from the io_context like every other end, never from here.
    asio::post(ioc, [st = state_, e = v.error()] { st->finish(e); });
    return;
  }
  s.eps = *parse_endpoints(s.opts);
  if (s.eps.front().tls) s.tls_ctx = *make_tls_context(s.opts);
  asio::post(ioc, [st = state_] {
    if (!st->done) st->start();
  });
}

EtcdWatch::~EtcdWatch() { cancel(); }

void EtcdWatch::cancel() {
  if (!state_ || state_->done) return;
  // The callbacks stay (unreached, `done` guards them): cancel() may run
  // inside on_response, whose std::function must not be destroyed under it.
  state_->done = true;
  state_->close();
}

}  // namespace meshd::datastore
