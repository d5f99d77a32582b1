#pragma once

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

namespace patchgate {

// Fault points for restart and fencing tests, in the spirit of etcd's gofail.
// PATCHGATE_FAILPOINTS holds comma-separated entries; never set in production.
//   <point>                  the process exits there at once, as a SIGKILL or
//                            a node loss would stop it;
//   <point>=pause:<seconds>  the thread that gets there stops that long, the
//                            first time only (a step that hangs: a lease can
//                            pass to another replica meanwhile);
//   <point>=refuse:<n>       failpointRefuses(<point>) is true the first n
//                            times (a write the API server refuses, e.g.
//                            with a 409).
class Failpoints {
 public:
  static Failpoints& instance() {
    static Failpoints fp(std::getenv("PATCHGATE_FAILPOINTS"));
    return fp;
  }
  explicit Failpoints(const char* spec) {
    if (spec == nullptr) return;
    std::string_view rest(spec);
    while (!rest.empty()) {
      size_t comma = rest.find(',');
      std::string_view entry = rest.substr(0, comma);
      rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
      if (entry.empty()) continue;
      size_t eq = entry.find('=');
      Entry e;
      if (eq != std::string_view::npos) {
        std::string_view action = entry.substr(eq + 1);
        if (action.starts_with("pause:")) {
          e.kind = Kind::kPause;
          e.count = std::atoi(std::string(action.substr(6)).c_str());
        } else if (action.starts_with("refuse:")) {
          e.kind = Kind::kRefuse;
          e.count = std::atoi(std::string(action.substr(7)).c_str());
        }
        entry = entry.substr(0, eq);
      }
      points_[std::string(entry)] = e;
    }
  }

  // The point is reached: exit or pause as armed.
  void hit(std::string_view name) {
    Entry* e = find(name);
    if (e == nullptr || e->kind == Kind::kRefuse) return;
    if (e->kind == Kind::kExit) {
      say("failpoint hit; exiting", name);
      std::_Exit(3);
    }
    int seconds = 0;
    {
      std::lock_guard lock(mu_);
      if (e->used) return;
      e->used = true;
      seconds = e->count;
    }
    say("failpoint hit; pausing this thread", name);
    std::this_thread::sleep_for(std::chrono::seconds(seconds));
    say("failpoint pause over", name);
  }

  // Whether to refuse this call (armed with refuse:<n>, fewer than n so far).
  bool refuses(std::string_view name) {
    Entry* e = find(name);
    if (e == nullptr || e->kind != Kind::kRefuse) return false;
    std::lock_guard lock(mu_);
    if (e->count <= 0) return false;
    --e->count;
    say("failpoint hit; refusing the call", name);
    return true;
  }

 private:
  enum class Kind { kExit, kPause, kRefuse };
  struct Entry {
    Kind kind = Kind::kExit;
    int count = 0;
    bool used = false;
  };
  Entry* find(std::string_view name) {
    if (points_.empty()) return nullptr;
    auto it = points_.find(std::string(name));
    return it == points_.end() ? nullptr : &it->second;
  }
  static void say(const char* what, std::string_view name) {
    std::fprintf(stderr, "{\"level\":\"error\",\"msg\":\"%s\",\"failpoint\":\"%.*s\"}\n", what,
                 static_cast<int>(name.size()), name.data());
    std::fflush(stderr);
  }
  std::map<std::string, Entry> points_;  // fixed after construction
  std::mutex mu_;
};

inline void failpoint(std::string_view name) { Failpoints::instance().hit(name); }
inline bool failpointRefuses(std::string_view name) { return Failpoints::instance().refuses(name); }

}  // namespace patchgate
