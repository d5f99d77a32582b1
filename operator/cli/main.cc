// patchctl (also installed as the kubectl plug-in kubectl-patchgate): wiring
// only. Parses the command line, loads the user's kubeconfig, builds the
// client and hands everything to cli::run.
#include <cstdlib>
#include <filesystem>
#include <iostream>

#include "cli/args.h"
#include "cli/patchctl_commands.h"
#include "common/clock.h"
#include "common/random.h"
#include "kube/client_impl.h"
#include "kube/config/rest_config.h"
#include "kube/transport/cpprest_transport.h"

int main(int argc, char** argv) {
  using namespace patchgate;
  std::string self = argc > 0 ? std::filesystem::path(argv[0]).filename().string() : "patchctl";
  std::string program = self == "kubectl-patchgate" ? "kubectl patchgate" : "patchctl";
  std::vector<std::string> args(argv + 1, argv + argc);

  auto inv = cli::parseArgs(args);
  if (!inv.ok()) {
    std::string hint = program;
    for (const auto& a : args)
      if (cli::isCommand(a)) {
        hint += " " + a;
        break;
      }
    std::cerr << "error: " << inv.status().message() << "\nRun '" << hint << " --help' for usage.\n";
    return cli::kExitUsage;
  }
  if (inv->help || inv->command.empty()) {
    (inv->help ? std::cout : std::cerr) << cli::usage(program, inv->command);
    return inv->help ? cli::kExitOk : cli::kExitUsage;
  }
  if (inv->command == "version") {
    std::cout << "patchctl " << cli::kVersion << "\n";
    return cli::kExitOk;
  }
  if (inv->command == "completion") {
    std::cout << cli::bashCompletion(program);
    return cli::kExitOk;
  }

  auto config = kube::loadDefaultConfig(inv->kubeconfig, inv->context);
  if (!config.ok()) {
    std::cerr << "error: no usable Kubernetes configuration: " << config.status().message()
              << "\n(give --kubeconfig, set $KUBECONFIG, or create ~/.kube/config)\n";
    return cli::kExitFailure;
  }
  config->userAgent = std::string("patchctl/") + cli::kVersion;
  auto transport = kube::makeCpprestTransport(*config);
  if (!transport.ok()) {
    std::cerr << "error: " << transport.status().message() << "\n";
    return cli::kExitFailure;
  }
  kube::ClientImpl client(std::move(*transport), "patchctl", config->qps, config->burst);
  RealClock clock;
  RandomImpl random;
  cli::Env env{client,    inv->ns.empty() ? config->defaultNamespace : inv->ns,
               config->server, std::cout, std::cerr, clock, random, nullptr};
  int code = cli::run(*inv, env);
  std::cout.flush();
  std::cerr.flush();
  // Skip static destructors and atexit handlers: at exit, OpenSSL 3's cleanup
  // can race cpprestsdk's pool threads still freeing TLS state, and the
  // process then spins forever (seen as a hung `patchctl get`). Nothing is
  // left to release that the kernel does not reclaim.
  std::_Exit(code);
}
