// The only file that includes cpprestsdk. Facts it relies on (see TOOLCHAIN.md):
// - http_client_config::set_timeout is an idle timeout per read, so streams
//   get a client of their own with the stream's own timeout;
// - the SSL context callback runs per connection, so PEMs stay in memory;
// - a client that failed with "Failed to read HTTP status line" may stay
//   broken: it is recreated after any transport failure;
// - long watches never run on the pplx pool: the caller's thread blocks.
#include "kube/transport/cpprest_transport.h"

#include <cpprest/http_client.h>
#include <cpprest/rawptrstream.h>
#include <cpprest/containerstream.h>

#include <atomic>
#include <mutex>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "kube/errors.h"

namespace patchgate::kube {
namespace {

using web::http::client::http_client;
using web::http::client::http_client_config;

class CpprestTransport final : public Transport {
 public:
  explicit CpprestTransport(RestConfig config) : config_(std::move(config)) {}

  absl::StatusOr<HttpResponse> send(const HttpRequest& request) override {
    std::shared_ptr<http_client> client = sharedClient(request.timeout);
    try {
      auto req = makeRequest(request);
      if (!req.ok()) return req.status();
      web::http::http_response resp = client->request(*req).get();
      HttpResponse out;
      out.status = resp.status_code();
      auto body = resp.extract_vector().get();
      out.body.assign(body.begin(), body.end());
      return out;
    } catch (const std::exception& e) {
      dropSharedClient(client);
      return transportError(absl::StrCat(request.method, " ", config_.server,
                                         request.pathAndQuery, ": ", e.what()));
    }
  }

  absl::Status stream(const HttpRequest& request,
                      const std::function<bool(std::string_view)>& onLine,
                      std::stop_token stop) override {
    pplx::cancellation_token_source cts;
    auto client = std::make_shared<http_client>(config_.server, clientConfig(request.timeout));
    std::atomic<bool> cancelled{false};
    concurrency::streams::istream body;
    std::mutex bodyMu;
    std::stop_callback onStop(stop, [&] {
      cancelled = true;
      cts.cancel();
      std::lock_guard lock(bodyMu);
      if (body.is_valid()) {
        try {
          body.streambuf().close(std::ios::in).wait();
        } catch (...) {
        }
      }
    });
    try {
      auto req = makeRequest(request);
      if (!req.ok()) return req.status();
      web::http::http_response resp = client->request(*req, cts.get_token()).get();
      if (resp.status_code() < 200 || resp.status_code() > 299) {
        auto bytes = resp.extract_vector().get();
        return errorFromResponse(resp.status_code(), std::string(bytes.begin(), bytes.end()));
      }
      {
        std::lock_guard lock(bodyMu);
        body = resp.body();
      }
      if (cancelled) return absl::OkStatus();
      while (!cancelled) {
        concurrency::streams::container_buffer<std::string> line;
        size_t n = body.read_line(line).get();
        if (n == 0 && body.is_eof()) break;
        const std::string& text = line.collection();
        if (text.empty()) {
          if (body.is_eof()) break;
          continue;
        }
        if (!onLine(text)) break;
      }
      return absl::OkStatus();
    } catch (const std::exception& e) {
      if (cancelled) return absl::OkStatus();
      return transportError(absl::StrCat("stream ", config_.server, request.pathAndQuery, ": ",
                                         e.what()));
    }
  }

 private:
  http_client_config clientConfig(std::chrono::seconds timeout) const {
    http_client_config cc;
    cc.set_timeout(std::chrono::duration_cast<std::chrono::microseconds>(timeout));
    cc.set_validate_certificates(!config_.insecureSkipTlsVerify);
    // Copies, captured by value: the callback outlives this call.
    std::string ca = config_.caPem, cert = config_.clientCertPem, key = config_.clientKeyPem;
    cc.set_ssl_context_callback([ca, cert, key](boost::asio::ssl::context& ctx) {
      if (!ca.empty()) ctx.add_certificate_authority(boost::asio::buffer(ca.data(), ca.size()));
      if (!cert.empty()) {
        ctx.use_certificate_chain(boost::asio::buffer(cert.data(), cert.size()));
        ctx.use_private_key(boost::asio::buffer(key.data(), key.size()),
                            boost::asio::ssl::context::pem);
      }
    });
    return cc;
  }

  std::shared_ptr<http_client> sharedClient(std::chrono::seconds timeout) {
    std::lock_guard lock(mu_);
    auto& slot = clients_[timeout.count()];
    if (!slot) slot = std::make_shared<http_client>(config_.server, clientConfig(timeout));
    return slot;
  }

  void dropSharedClient(const std::shared_ptr<http_client>& client) {
    std::lock_guard lock(mu_);
    for (auto& [_, slot] : clients_)
      if (slot == client) slot.reset();
  }

  absl::StatusOr<web::http::http_request> makeRequest(const HttpRequest& request) {
    web::http::http_request req(request.method);
    req.set_request_uri(request.pathAndQuery);
    auto& h = req.headers();
    h.add("Accept", request.accept);
    h.add("User-Agent", config_.userAgent);
    if (config_.tokenSource) {
      auto token = config_.tokenSource->token();
      if (!token.ok()) return token.status();
      if (!token->empty()) h.add("Authorization", absl::StrCat("Bearer ", *token));
    } else if (!config_.username.empty()) {
      h.add("Authorization",
            absl::StrCat("Basic ", absl::Base64Escape(config_.username + ":" + config_.password)));
    }
    if (!config_.impersonateUser.empty()) h.add("Impersonate-User", config_.impersonateUser);
    for (const auto& [k, v] : request.headers) h.add(k, v);
    if (!request.body.empty() || request.method == "POST" || request.method == "PUT" ||
        request.method == "PATCH") {
      req.set_body(request.body, request.contentType.empty() ? "application/json"
                                                             : request.contentType);
    }
    return req;
  }

  RestConfig config_;
  std::mutex mu_;
  std::map<int64_t, std::shared_ptr<http_client>> clients_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Transport>> makeCpprestTransport(const RestConfig& config) {
  if (config.server.empty()) return absl::InvalidArgumentError("rest config has no server");
  return std::make_unique<CpprestTransport>(config);
}

}  // namespace patchgate::kube
