// The watch stream decoder: a watch body as the API server streams it, one
// JSON WatchEvent per line, through ClientImpl::watch over a transport that
// splits the input into lines as cpprest's read_line does (at '\n', dropping
// a '\r' before it and empty lines). Lines may be truncated, huge, binary or
// not JSON. Properties: each line is an event or a decode error that ends the
// watch with InvalidArgument, never a crash or an uncaught exception; the
// events seen are exactly the lines decodeWatchEvent accepts, in order.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "kube/client_impl.h"
#include "kube/resource.h"

namespace kube = patchgate::kube;

namespace {

class LinesTransport final : public kube::Transport {
 public:
  explicit LinesTransport(std::string_view body) : body_(body) {}
  absl::StatusOr<kube::HttpResponse> send(const kube::HttpRequest&) override {
    return absl::UnavailableError("not in this test");
  }
  absl::Status stream(const kube::HttpRequest&, const std::function<bool(std::string_view)>& onLine,
                      std::stop_token) override {
    size_t start = 0;
    while (start < body_.size()) {
      size_t nl = body_.find('\n', start);
      std::string_view line = body_.substr(start, nl == std::string_view::npos ? nl : nl - start);
      start = nl == std::string_view::npos ? body_.size() : nl + 1;
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      if (line.empty()) continue;
      if (!onLine(line)) break;
    }
    return absl::OkStatus();
  }

 private:
  std::string_view body_;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  kube::ClientImpl client(std::make_unique<LinesTransport>(body), "fuzz", /*qps=*/0, /*burst=*/1);

  // What the decoder accepts line by line, up to the first line it refuses.
  size_t expected = 0;
  bool refused = false;
  absl::Status split = LinesTransport(body).stream({}, [&](std::string_view line) {
    if (!kube::decodeWatchEvent(line).ok()) {
      refused = true;
      return false;
    }
    ++expected;
    return true;
  }, {});
  if (!split.ok()) __builtin_trap();

  size_t seen = 0;
  kube::WatchOptions options;
  options.resourceVersion = "1";
  absl::Status s = client.watch(kube::resources::kPod, "shop", options,
                                [&](const kube::WatchEvent& ev) {
                                  ++seen;
                                  (void)ev.object.dump();  // valid JSON in, valid UTF-8 out
                                  (void)kube::toString(ev.type);
                                  return true;
                                },
                                {});
  if (seen != expected || s.ok() == refused) __builtin_trap();
  if (!s.ok() && s.code() != absl::StatusCode::kInvalidArgument) __builtin_trap();
  return 0;
}
