// The server adapter over a loopback socket: TLS, the
// authorization metadata reaching the API, status codes mapped 1:1, and a
// taken port failing at start.
#include "grpc/server.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include <unistd.h>

#include "fakes/fake_client.h"
#include "fakes/fake_clock.h"
#include "patchgate/v1/patchgate.grpc.pb.h"
#include "test_util.h"

namespace patchgate::grpcapi {
namespace {

// The API over a fake API server, and a self-signed pair to serve it with.
class GrpcServerTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(pair.ok()) << pair.status(); }
  testing::FakeClock clock;
  testing::FakeClient client{clock};
  runtime::Store store;
  Authenticator auth{client, clock};
  PatchgateApi api{store, client, auth, clock};
  absl::StatusOr<KeyPair> pair = generateSelfSigned("localhost");
};

TEST_F(GrpcServerTest, ServesOverTlsAndMapsStatusCodes) {

  auto server = GrpcServer::create({"127.0.0.1:0", *pair}, api, testing::quietLogger());
  ASSERT_TRUE(server.ok()) << server.status();
  ASSERT_GT((*server)->port(), 0);
  std::stop_source stop;
  std::thread runner([&] { (*server)->run(stop.get_token()); });

  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = pair->certPem;
  auto channel =
      grpc::CreateChannel("127.0.0.1:" + std::to_string((*server)->port()), grpc::SslCredentials(ssl));
  auto stub = v1::Patchgate::NewStub(channel);
  {
    grpc::ClientContext ctx;
    v1::GetPatchRequest req;
    req.set_namespace_("shop");
    req.set_name("fix");
    v1::Patch resp;
    auto s = stub->GetPatch(&ctx, req, &resp);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED) << s.error_message();
  }
  {
    // The token reaches the API (a TokenReview is asked for); the plain fake
    // can't create a nameless review, and an API failure is UNAVAILABLE (a
    // retryable code), never OK.
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", "Bearer some-token");
    v1::WatchPatchRequest req;
    req.set_namespace_("shop");
    req.set_name("fix");
    auto reader = stub->WatchPatch(&ctx, req);
    v1::PatchEvent ev;
    EXPECT_FALSE(reader->Read(&ev));
    EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::UNAVAILABLE);
    ASSERT_EQ(client.calls("create", "tokenreviews").size(), 1u);
    EXPECT_EQ(client.calls("create", "tokenreviews")[0].body["spec"]["token"], "some-token");
  }

  // The port is taken: a second server fails at start, not silently.
  auto second =
      GrpcServer::create({"127.0.0.1:" + std::to_string((*server)->port()), *pair}, api, testing::quietLogger());
  EXPECT_FALSE(second.ok());

  stop.request_stop();
  runner.join();
}

// Served from files, a renewed pair is picked up without a restart: a
// client that trusts only the new certificate connects once the files change.
TEST_F(GrpcServerTest, ACertificateRenewedOnDiskIsServedWithoutARestart) {
  std::string dir = ::testing::TempDir() + "/pg-tls-" + std::to_string(::getpid());
  std::filesystem::create_directories(dir);
  auto write = [&](const KeyPair& kp) {
    for (auto [name, pem] : {std::pair{"tls.key.new", kp.keyPem}, std::pair{"tls.crt.new", kp.certPem}}) {
      std::ofstream(dir + "/" + name) << pem;
    }
    std::filesystem::rename(dir + "/tls.key.new", dir + "/tls.key");
    std::filesystem::rename(dir + "/tls.crt.new", dir + "/tls.crt");
  };
  write(*pair);
  ServerOptions options{"127.0.0.1:0", *pair, dir + "/tls.crt", dir + "/tls.key", std::chrono::seconds(1)};
  auto server = GrpcServer::create(options, api, testing::quietLogger());
  ASSERT_TRUE(server.ok()) << server.status();
  std::stop_source stop;
  std::thread runner([&] { (*server)->run(stop.get_token()); });
  // A call that reaches the API (UNAUTHENTICATED: no token) proves the TLS
  // handshake with a client trusting only `ca`.
  auto handshakes = [&](const std::string& ca) {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = ca;
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);  // a fresh connection each time
    auto channel = grpc::CreateCustomChannel("127.0.0.1:" + std::to_string((*server)->port()),
                                             grpc::SslCredentials(ssl), args);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    v1::GetPatchRequest req;
    v1::Patch resp;
    return v1::Patchgate::NewStub(channel)->GetPatch(&ctx, req, &resp).error_code() ==
           grpc::StatusCode::UNAUTHENTICATED;
  };
  EXPECT_TRUE(handshakes(pair->certPem));
  auto renewed = generateSelfSigned("localhost");
  ASSERT_TRUE(renewed.ok());
  EXPECT_FALSE(handshakes(renewed->certPem)) << "trusted a certificate it does not serve yet";
  write(*renewed);
  bool served = false;
  for (int i = 0; i < 50 && !served; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    served = handshakes(renewed->certPem);
  }
  EXPECT_TRUE(served) << "the renewed certificate was not served within 10 s";
  EXPECT_FALSE(handshakes(pair->certPem)) << "still serving the old certificate";
  stop.request_stop();
  runner.join();
  std::filesystem::remove_all(dir);
}

TEST(GrpcServer, NeedsACertificateAndKey) {
  testing::FakeClient client;
  testing::FakeClock clock;
  runtime::Store store;
  Authenticator auth(client, clock);
  PatchgateApi api(store, client, auth, clock);
  EXPECT_EQ(
      GrpcServer::create({"127.0.0.1:0", KeyPair{"cert", ""}}, api, testing::quietLogger()).status().code(),
      absl::StatusCode::kInvalidArgument);
}

// Many clients call at once while the server is stopped under them: every
// call ends (with some status), and run() returns. For ThreadSanitizer
// (`ctest -L sanitize`) as much as for the invariant.
TEST_F(GrpcServerTest, StopsUnderConcurrentCalls) {
  auto server = GrpcServer::create({"127.0.0.1:0", *pair}, api, testing::quietLogger());
  ASSERT_TRUE(server.ok()) << server.status();
  // jthreads: a failed ASSERT below still stops and joins them.
  std::jthread runner([&](std::stop_token st) { (*server)->run(st); });

  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = pair->certPem;
  auto channel =
      grpc::CreateChannel("127.0.0.1:" + std::to_string((*server)->port()), grpc::SslCredentials(ssl));
  std::atomic<int> finished{0};
  std::vector<std::jthread> clients;
  for (int c = 0; c < 8; ++c)
    clients.emplace_back([&, c] {
      auto stub = v1::Patchgate::NewStub(channel);
      for (int i = 0; i < 25; ++i) {
        grpc::ClientContext ctx;
        ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
        if ((c + i) % 2 == 0) ctx.AddMetadata("authorization", "Bearer token-" + std::to_string(c));
        v1::GetPatchRequest req;
        req.set_namespace_("shop");
        req.set_name("fix-" + std::to_string(i));
        v1::Patch resp;
        (void)stub->GetPatch(&ctx, req, &resp);
        ++finished;
      }
    });
  ASSERT_TRUE(testing::eventually([&] { return finished.load() >= 40; }, std::chrono::seconds(30)));
  runner.request_stop();  // while clients still call
  runner.join();
  for (auto& t : clients) t.join();
  EXPECT_EQ(finished.load(), 8 * 25);
}

}  // namespace
}  // namespace patchgate::grpcapi
