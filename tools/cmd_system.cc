// System commands: `system df [-v] [--format json]`. Only parsing and printing live here; the
// numbers come from layerstore/disk_usage.
#include <cstdio>
#include <ctime>
#include <memory>
#include <string>

#include "layerstore/disk_usage.h"
#include "layerstore/reference.h"
#include "tools/cli.h"
#include "tools/table.h"

namespace layerfs::cli {

namespace {

using Json = nlohmann::json;

void PrintLine(const std::string& s) { std::fputs((s + "\n").c_str(), stdout); }

// "12.3MB (45%)" as Docker prints RECLAIMABLE; no percentage for an empty total.
std::string Reclaimable(uint64_t reclaimable, uint64_t total) {
  std::string out = HumanSize(reclaimable);
  if (total > 0) out += " (" + std::to_string(reclaimable * 100 / total) + "%)";
  return out;
}

struct SummaryRow {
  std::string type;
  size_t total, active;
  uint64_t size;
  std::string reclaimable;
};

std::vector<SummaryRow> Summary(const DiskUsageReport& r) {
  return {
      {"Images", r.images.size(), r.images_active, r.images_size, Reclaimable(r.images_reclaimable, r.images_size)},
      {"Containers", r.containers.size(), r.containers_active, r.containers_size,
       Reclaimable(r.containers_reclaimable, r.containers_size)},
      {"Local Volumes", 0, 0, 0, HumanSize(0)},
      {"Build Cache", r.build_cache_count, r.build_cache_active, r.build_cache_size,
       Reclaimable(r.build_cache_reclaimable, r.build_cache_size)},
  };
}

void PrintSummary(const DiskUsageReport& r, bool json) {
  Table table({"TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"});
  for (const auto& s : Summary(r)) {
    if (json) {
      PrintLine(Json{{"Active", std::to_string(s.active)}, {"Reclaimable", s.reclaimable}, {"Size", HumanSize(s.size)},
                     {"TotalCount", std::to_string(s.total)}, {"Type", s.type}}.dump());
    } else {
      table.AddRow({s.type, std::to_string(s.total), std::to_string(s.active), HumanSize(s.size), s.reclaimable});
    }
  }
  if (!json) std::fputs(table.Render().c_str(), stdout);
}

// One row per tag (untagged: <none> <none>), as `docker system df -v`.
std::vector<Json> ImageRows(const DiskUsageReport& r) {
  std::vector<Json> rows;
  std::time_t now = std::time(nullptr);
  for (const auto& u : r.images) {
    std::string created = u.image.config.value("created", std::string());
    Json base = {{"Repository", "<none>"}, {"Tag", "<none>"}, {"ID", u.image.id().short_id()},
                 {"CreatedSince", CreatedSince(created, now)}, {"Size", HumanSize(u.size, 3)},
                 {"SharedSize", HumanSize(u.shared_size)}, {"UniqueSize", HumanSize(u.unique_size)},
                 {"Containers", std::to_string(u.containers)}};
    if (u.image.tags.empty()) rows.push_back(base);
    for (const auto& t : u.image.tags) {
      auto ref = ParseReference(t);
      Json row = base;
      row["Repository"] = ref.ok() ? ref->FamiliarName() : t;
      row["Tag"] = ref.ok() ? ref->tag : "<none>";
      rows.push_back(row);
    }
  }
  return rows;
}

std::vector<Json> ContainerRows(const DiskUsageReport& r) {
  std::vector<Json> rows;
  std::time_t now = std::time(nullptr);
  for (const auto& c : r.containers) {
    int64_t age = now - c.record.created_unix;
    rows.push_back({{"ID", c.record.id.substr(0, 12)}, {"Image", FamiliarString(c.record.image_ref)},
                    {"Command", "\"\""}, {"LocalVolumes", "0"}, {"Size", HumanSize(c.size)},
                    {"RunningFor", HumanDuration(age) + " ago"},
                    {"Status", c.active ? "Mounted on " + c.record.mountpoint : "Unmounted"},
                    {"Names", c.record.name}});
  }
  return rows;
}

void PrintVerbose(const DiskUsageReport& r, bool json) {
  auto images = ImageRows(r);
  auto containers = ContainerRows(r);
  if (json) {
    PrintLine(Json{{"Images", images}, {"Containers", containers}, {"Volumes", Json::array()}, {"BuildCache", Json::array()}}.dump());
    return;
  }
  Table it({"REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE", "SHARED SIZE", "UNIQUE SIZE", "CONTAINERS"});
  for (const auto& i : images)
    it.AddRow({i["Repository"], i["Tag"], i["ID"], i["CreatedSince"], i["Size"], i["SharedSize"], i["UniqueSize"], i["Containers"]});
  Table ct({"CONTAINER ID", "IMAGE", "COMMAND", "LOCAL VOLUMES", "SIZE", "CREATED", "STATUS", "NAMES"});
  for (const auto& c : containers)
    ct.AddRow({c["ID"], c["Image"], c["Command"], c["LocalVolumes"], c["Size"], c["RunningFor"], c["Status"], c["Names"]});
  std::string out = "Images space usage:\n\n" + it.Render() + "\nContainers space usage:\n\n" + ct.Render() +
                    "\nLocal Volumes space usage:\n\n" + Table({"VOLUME NAME", "LINKS", "SIZE"}).Render() +
                    "\nBuild cache usage: " + HumanSize(r.build_cache_size) + "\n\n" +
                    Table({"CACHE ID", "CACHE TYPE", "SIZE", "CREATED", "LAST USED", "USAGE", "SHARED"}).Render();
  std::fputs(out.c_str(), stdout);
}

void AddDf(CLI::App& system, Cli& cli) {
  auto* cmd = system.add_subcommand("df", "Show disk usage of images, containers and build cache");
  struct Opts {
    bool verbose = false;
    std::string format;
  };
  auto o = std::make_shared<Opts>();
  cmd->add_flag("-v,--verbose", o->verbose, "Per image and per container detail");
  cmd->add_option("--format", o->format, "\"json\": JSON output")->check(CLI::IsMember({"json", "table"}));
  cmd->callback([&cli, o] {
    auto store = cli.OpenStore();
    if (!store.ok()) return;
    auto report = ComputeDiskUsage(*store);
    if (!report.ok()) return (void)cli.Fail(report.status());
    bool json = o->format == "json";
    if (o->verbose) {
      PrintVerbose(*report, json);
    } else {
      PrintSummary(*report, json);
    }
  });
}

}  // namespace

void RegisterSystemCommands(CLI::App& app, Cli& cli) {
  auto* system = app.add_subcommand("system", "Manage the store (df)");
  system->require_subcommand(1);
  AddDf(*system, cli);
}

}  // namespace layerfs::cli
