// Registry commands: pull, push, login, logout. Only parsing and printing live here; the work
// is in layerstore/image_pull, image_push, registry_client and registry_auth.
#include <csignal>
#include <cstdio>
#include <iostream>

#include "layerstore/registry/image_pull.h"
#include "layerstore/registry/image_push.h"
#include "layerstore/registry/registry_auth.h"
#include "layerstore/registry/registry_client.h"
#include "tools/cli.h"
#include "tools/estargz_flags.h"
#include "tools/progress.h"

namespace layerfs::cli {

namespace {

// "redis" and "a/b@sha256:.." take the default tag; "redis:7" and "host:5000/a:1" do not.
bool NamesTag(const std::string& text) {
  std::string name = text.substr(0, text.find('@'));
  size_t slash = name.rfind('/');
  return name.find(':', slash == std::string::npos ? 0 : slash) != std::string::npos;
}

std::string Server(std::string server) {
  for (const char* scheme : {"https://", "http://"})
    if (server.starts_with(scheme)) server = server.substr(std::string(scheme).size());
  while (!server.empty() && server.back() == '/') server.pop_back();
  if (server == "index.docker.io/v1" || server == "index.docker.io" || server == "registry-1.docker.io") return "docker.io";
  return server;
}

// What pull and push share: the reference parsed, the store opened, Docker's "Using default
// tag" line, and a progress callback that is empty with --quiet.
template <class Transfer>
int RunTransfer(Cli& cli, const std::string& name, bool quiet, Transfer&& transfer) {
  auto ref = ParseReference(name);
  if (!ref.ok()) return cli.Fail(ref.status());
  auto store = cli.OpenStore();
  if (!store.ok()) return 1;
  std::signal(SIGPIPE, SIG_IGN);
  ProgressPrinter printer(stdout, StdoutIsTerminal());
  if (!quiet && ref->digest.empty() && !NamesTag(name)) printer.Message("Using default tag: " + ref->tag);
  TransferCallback progress;
  if (!quiet) progress = [&](const TransferEvent& e) { printer.Handle(e); };
  return transfer(*ref, *store, printer, progress);
}

struct PullArgs {
  std::string name;
  std::string platform;
  bool quiet = false;
  size_t max_concurrent = 3;
  std::vector<std::string> insecure;
};

int RunPull(Cli& cli, const PullArgs& a) {
  auto platform = ParsePlatform(a.platform);
  if (!platform.ok()) return cli.Fail(platform.status());
  return RunTransfer(cli, a.name, a.quiet, [&](const Reference& ref, const Store& store, ProgressPrinter& printer, const TransferCallback& progress) {
    if (!a.quiet) printer.Message((ref.digest.empty() ? ref.tag : ref.digest) + ": Pulling from " + ref.path);
    PullOptions options;
    options.platform = *platform;
    options.max_concurrent_downloads = a.max_concurrent;
    options.insecure_registries = a.insecure;
    auto result = PullImage(store, ref, options, progress);
    if (!result.ok()) return cli.Fail(result.status());
    if (!a.quiet) {
      printer.Message("Digest: " + result->digest.str());
      printer.Message(std::string(result->up_to_date ? "Status: Image is up to date for "
                                                     : "Status: Downloaded newer image for ") +
                      ref.FamiliarString());
    }
    printer.Message(ref.String());
    return 0;
  });
}

struct PushArgs {
  std::string name;
  bool quiet = false;
  size_t max_concurrent = 5;
  std::vector<std::string> insecure;
  EstargzFlags estargz;
};

int RunPush(Cli& cli, const PushArgs& a) {
  auto estargz = a.estargz.Options();
  if (!estargz.ok()) return cli.Fail(estargz.status().WithContext("push"));
  return RunTransfer(cli, a.name, a.quiet, [&](const Reference& ref, const Store& store, ProgressPrinter& printer, const TransferCallback& progress) {
    if (!a.quiet) printer.Message("The push refers to repository [" + ref.Name() + "]");
    PushOptions options;
    options.max_concurrent_uploads = a.max_concurrent;
    options.insecure_registries = a.insecure;
    options.estargz = a.estargz.on;
    options.estargz_options = *estargz;
    auto result = PushImage(store, ref, options, progress);
    if (!result.ok()) return cli.Fail(result.status());
    if (a.quiet) printer.Message(ref.String());
    else
      printer.Message(ref.tag + ": digest: " + result->manifest_digest.str() + " size: " + std::to_string(result->manifest_size));
    return 0;
  });
}

struct LoginArgs {
  std::string server = "docker.io";
  std::string username;
  std::string password;
  bool password_stdin = false;
  std::vector<std::string> insecure;
};

int RunLogin(Cli& cli, LoginArgs a) {
  std::string server = Server(a.server);
  if (a.password_stdin) {
    std::getline(std::cin, a.password);
    if (!a.password.empty() && a.password.back() == '\r') a.password.pop_back();
  }
  if (a.username.empty() || a.password.empty())
    return cli.Fail("login " + server + ": give a username (-u) and a password (-p or --password-stdin)");
  RegistryOptions o;
  o.registry = server;
  o.insecure = std::find(a.insecure.begin(), a.insecure.end(), server) != a.insecure.end();
  o.credentials = {a.username, a.password};
  o.max_attempts = 2;
  RegistryClient client(o);
  if (Status st = client.Ping(); !st.ok()) return cli.Fail(st.WithContext("login " + server));
  if (Status st = StoreCredentials(server, o.credentials); !st.ok()) return cli.Fail(st.WithContext("login " + server));
  std::fprintf(stderr, "WARNING! Your password will be stored unencrypted in %s.\n", DockerConfigPath().c_str());
  std::printf("Login Succeeded\n");
  return 0;
}

int RunLogout(Cli& cli, const std::string& raw_server) {
  std::string server = Server(raw_server);
  auto removed = RemoveCredentials(server);
  if (!removed.ok()) return cli.Fail(removed.status().WithContext("logout " + server));
  if (*removed) std::printf("Removing login credentials for %s\n", server.c_str());
  else
    std::printf("Not logged in to %s\n", server.c_str());
  return 0;
}

void AddPull(CLI::App& app, Cli& cli) {
  auto args = std::make_shared<PullArgs>();
  CLI::App* cmd = app.add_subcommand("pull", "Download an image from a registry");
  cmd->add_option("NAME", args->name, "NAME[:TAG|@DIGEST]")->required();
  cmd->add_option("--platform", args->platform, "Pick this platform from a multi-platform image (os/arch[/variant])");
  cmd->add_flag("-q,--quiet", args->quiet, "Print only the image reference");
  cmd->add_option("--max-concurrent-downloads", args->max_concurrent, "Layers downloaded at once (default 3)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--insecure-registry", args->insecure, "Allow plain HTTP to this registry host[:port]")->allow_extra_args(false);
  cmd->callback([args, &cli] { cli.exit_code = RunPull(cli, *args); });
}

void AddPush(CLI::App& app, Cli& cli) {
  auto args = std::make_shared<PushArgs>();
  CLI::App* cmd = app.add_subcommand("push", "Upload an image to a registry");
  cmd->add_option("NAME", args->name, "NAME[:TAG]")->required();
  cmd->add_flag("-q,--quiet", args->quiet, "Print only the image reference");
  cmd->add_option("--max-concurrent-uploads", args->max_concurrent, "Layers uploaded at once (default 5)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--insecure-registry", args->insecure, "Allow plain HTTP to this registry host[:port]")->allow_extra_args(false);
  args->estargz.Add(cmd);
  cmd->callback([args, &cli] { cli.exit_code = RunPush(cli, *args); });
}

void AddLogin(CLI::App& app, Cli& cli) {
  auto args = std::make_shared<LoginArgs>();
  CLI::App* cmd = app.add_subcommand(
      "login", "Log in to a registry; credentials go to ~/.docker/config.json ($DOCKER_CONFIG), shared with docker");
  cmd->add_option("SERVER", args->server, "Registry host[:port] (default: docker.io)");
  cmd->add_option("-u,--username", args->username, "Username");
  cmd->add_option("-p,--password", args->password, "Password");
  cmd->add_flag("--password-stdin", args->password_stdin, "Read the password from stdin");
  cmd->add_option("--insecure-registry", args->insecure, "Allow plain HTTP to this registry host[:port]")->allow_extra_args(false);
  cmd->callback([args, &cli] { cli.exit_code = RunLogin(cli, *args); });
}

void AddLogout(CLI::App& app, Cli& cli) {
  auto server = std::make_shared<std::string>("docker.io");
  CLI::App* cmd = app.add_subcommand("logout", "Remove the stored credentials of a registry");
  cmd->add_option("SERVER", *server, "Registry host[:port] (default: docker.io)");
  cmd->callback([server, &cli] { cli.exit_code = RunLogout(cli, *server); });
}

}  // namespace

void RegisterRegistryCommands(CLI::App& app, Cli& cli) {
  AddPull(app, cli);
  AddPush(app, cli);
  AddLogin(app, cli);
  AddLogout(app, cli);
}

}  // namespace layerfs::cli
