#include "grpc/live_tls.h"

#include <sys/stat.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "kube/config/rest_config.h"

namespace patchgate::grpcapi {

namespace {

// Written next to its final name, then renamed over it: a reader sees the old
// file or the new one, never half of one.
absl::Status writeAtomically(const std::string& path, const std::string& content) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) return absl::InternalError(absl::StrCat("cannot write ", tmp));
    out << content;
    if (!out.flush()) return absl::InternalError(absl::StrCat("cannot write ", tmp));
  }
  ::chmod(tmp.c_str(), 0600);
  if (std::rename(tmp.c_str(), path.c_str()) != 0) return absl::InternalError(absl::StrCat("cannot rename ", tmp));
  return absl::OkStatus();
}

std::string caOf(const KeyPair& pair) { return pair.caPem.empty() ? pair.certPem : pair.caPem; }

}  // namespace

LiveApiTls::LiveApiTls(kube::Client& client, Clock& clock, Logger log, ApiTlsOptions options, ApiTls tls,
                       std::string dir, std::chrono::seconds interval)
    : client_(client),
      clock_(clock),
      log_(std::move(log)),
      options_(std::move(options)),
      dir_(std::move(dir)),
      interval_(interval),
      pair_(std::move(tls.keyPair)),
      ca_(std::move(tls.caPem)) {}

std::string LiveApiTls::certFile() const { return secretMode() ? dir_ + "/tls.crt" : ""; }
std::string LiveApiTls::keyFile() const { return secretMode() ? dir_ + "/tls.key" : ""; }

std::string LiveApiTls::currentCa() const {
  std::lock_guard lock(mu_);
  return ca_;
}

absl::Status LiveApiTls::writePair(const KeyPair& pair) {
  // The key first: the server takes a pair only once key and certificate
  // match, so a look between the two renames keeps the old pair.
  if (auto s = writeAtomically(keyFile(), pair.keyPem); !s.ok()) return s;
  return writeAtomically(certFile(), pair.certPem);
}

absl::Status LiveApiTls::start() {
  if (!secretMode()) return absl::OkStatus();
  std::error_code ec;
  std::filesystem::create_directories(dir_, ec);
  if (ec || ::chmod(dir_.c_str(), 0700) != 0)
    return absl::InternalError(absl::StrCat("cannot make the private folder ", dir_, ": ", ec.message()));
  std::lock_guard lock(mu_);
  return writePair(pair_);
}

absl::StatusOr<bool> LiveApiTls::refresh() {
  if (secretMode()) {
    auto pair = sharedKeyPair(client_, options_.secretNamespace, options_.secretName, "patchgate-operator",
                              options_.dnsNames);
    if (!pair.ok()) return pair.status();
    std::lock_guard lock(mu_);
    if (pair->certPem == pair_.certPem && pair->keyPem == pair_.keyPem && caOf(*pair) == ca_) return false;
    if (auto s = writePair(*pair); !s.ok()) return s;
    pair_ = std::move(*pair);
    ca_ = options_.caFile.empty() ? caOf(pair_) : ca_;
    return true;
  }
  if (options_.certFile.empty()) return false;  // generated at start: nothing to follow
  std::string ca;
  if (!options_.caFile.empty()) {
    auto read = kube::readFile(options_.caFile);
    if (!read.ok()) return false;  // keep what it had (a public CA's Secret may have none)
    ca = std::move(*read);
  } else {
    auto cert = kube::readFile(options_.certFile);
    if (!cert.ok()) return false;
    ca = std::move(*cert);
  }
  std::lock_guard lock(mu_);
  if (ca == ca_) return false;
  ca_ = std::move(ca);
  return true;
}

void LiveApiTls::run(std::stop_token stop) {
  while (sleepFor(clock_, stop, interval_)) {
    auto changed = refresh();
    if (!changed.ok()) {
      log_.warn("cannot refresh the gRPC API's key pair; serving the one it has",
                {{"error", std::string(changed.status().message())}});
    } else if (*changed) {
      log_.info("the gRPC API's key pair or CA changed; serving and handing out the new one");
    }
  }
}

}  // namespace patchgate::grpcapi
