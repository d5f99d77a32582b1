// Duration and time parsing: patchctl's durations ("90s", "1h30m", "600"),
// workload references ("deploy/checkout") and RFC 3339 times as the API
// server writes them (common/json parseTime). Kubernetes quantities
// ("500m", "1Gi") are not parsed anywhere in patchgate, so there is no
// quantity parser to fuzz. Properties: no crash and no undefined behaviour
// (signed overflow included, under UBSan); a parsed duration is never
// negative.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "cli/args.h"
#include "common/json.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  if (auto d = patchgate::cli::parseDuration(text); d.ok() && d->count() < 0) __builtin_trap();
  (void)patchgate::cli::parseWorkloadRef(text);
  if (auto t = patchgate::parseTime(text); t.ok()) {
    (void)patchgate::formatTime(*t);
    (void)patchgate::formatMicroTime(*t);
  }
  return 0;
}
