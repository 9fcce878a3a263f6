// System commands: `system df [-v] [--format json]`, `system prune [-a] [-f]`. Only parsing and
// printing live here; the numbers come from layerstore/store/disk_usage and layerstore/store/system_prune.
#include <cstdio>
#include <ctime>
#include <memory>
#include <string>

#include "layerstore/oci/reference.h"
#include "layerstore/store/disk_usage.h"
#include "layerstore/store/system_prune.h"
#include "tools/cli.h"
#include "tools/prune_output.h"
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
      {"Partial Layers", r.partial_layers.size(), r.partial_active, r.partial_size,
       Reclaimable(r.partial_reclaimable, r.partial_size)},
  };
}

void PrintSummary(const DiskUsageReport& r, bool json) {
  Table table({"TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"});
  for (const auto& s : Summary(r)) {
    if (json) {
      PrintLine(Json{{"Active", std::to_string(s.active)}, {"Reclaimable", s.reclaimable}, {"Size", HumanSize(s.size)}, {"TotalCount", std::to_string(s.total)}, {"Type", s.type}}.dump());
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
    Json base = {{"Repository", "<none>"}, {"Tag", "<none>"}, {"ID", u.image.id().short_id()}, {"CreatedSince", CreatedSince(created, now)}, {"Size", HumanSize(u.size, 3)}, {"SharedSize", HumanSize(u.shared_size)}, {"UniqueSize", HumanSize(u.unique_size)}, {"Containers", std::to_string(u.containers)}};
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

// Per layer: its compressed blob and its unpacked tree + index, which the store keeps both of.
std::vector<Json> LayerRows(const DiskUsageReport& r) {
  std::vector<Json> rows;
  for (const auto& l : r.layers)
    rows.push_back({{"ID", l.diff_id.short_id()}, {"Images", std::to_string(l.images)}, {"ContentSize", HumanSize(l.content_size)}, {"BlobSize", HumanSize(l.blob_size)}, {"UnpackedSize", HumanSize(l.unpacked_size)}, {"Size", HumanSize(l.blob_size + l.unpacked_size)}});
  return rows;
}

// Layers being pulled lazily (lazy/<hex>): what has arrived, and whether a process is on it.
std::vector<Json> PartialLayerRows(const DiskUsageReport& r) {
  std::vector<Json> rows;
  for (const auto& l : r.partial_layers)
    rows.push_back({{"ID", l.diff_id.short_id()}, {"Size", HumanSize(l.size)}, {"Status", l.owned ? "Pulling" : "Stopped"}});
  return rows;
}

std::vector<Json> ContainerRows(const DiskUsageReport& r) {
  std::vector<Json> rows;
  std::time_t now = std::time(nullptr);
  for (const auto& c : r.containers) {
    int64_t age = now - c.record.created_unix;
    rows.push_back({{"ID", c.record.id.substr(0, 12)}, {"Image", FamiliarString(c.record.image_ref)}, {"Command", "\"\""}, {"LocalVolumes", "0"}, {"Size", HumanSize(c.size)}, {"RunningFor", HumanDuration(age) + " ago"}, {"Status", c.active ? "Mounted on " + c.record.mountpoint : "Unmounted"}, {"Names", c.record.name}});
  }
  return rows;
}

void PrintVerbose(const DiskUsageReport& r, bool json) {
  auto images = ImageRows(r);
  auto layers = LayerRows(r);
  auto containers = ContainerRows(r);
  auto partial = PartialLayerRows(r);
  std::string total = HumanSize(r.store_total);
  if (json) {
    PrintLine(Json{{"Images", images}, {"Layers", layers}, {"Containers", containers}, {"Volumes", Json::array()}, {"BuildCache", Json::array()}, {"PartialLayers", partial}, {"StoreTotal", total}}.dump());
    return;
  }
  Table it({"REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE", "SHARED SIZE", "UNIQUE SIZE", "CONTAINERS"});
  for (const auto& i : images)
    it.AddRow({i["Repository"], i["Tag"], i["ID"], i["CreatedSince"], i["Size"], i["SharedSize"], i["UniqueSize"], i["Containers"]});
  Table lt({"LAYER (DIFF ID)", "IMAGES", "CONTENT SIZE", "BLOB SIZE", "UNPACKED SIZE", "SIZE"});
  for (const auto& l : layers)
    lt.AddRow({l["ID"], l["Images"], l["ContentSize"], l["BlobSize"], l["UnpackedSize"], l["Size"]});
  Table ct({"CONTAINER ID", "IMAGE", "COMMAND", "LOCAL VOLUMES", "SIZE", "CREATED", "STATUS", "NAMES"});
  for (const auto& c : containers)
    ct.AddRow({c["ID"], c["Image"], c["Command"], c["LocalVolumes"], c["Size"], c["RunningFor"], c["Status"], c["Names"]});
  Table pt({"LAYER (DIFF ID)", "SIZE", "STATUS"});
  for (const auto& p : partial) pt.AddRow({p["ID"], p["Size"], p["Status"]});
  std::string out = "Images space usage:\n\n" + it.Render() + "\nLayers space usage:\n\n" + lt.Render() +
                    "\nContainers space usage:\n\n" + ct.Render() +
                    "\nLocal Volumes space usage:\n\n" + Table({"VOLUME NAME", "LINKS", "SIZE"}).Render() +
                    "\nBuild cache usage: " + HumanSize(r.build_cache_size) + "\n\n" +
                    Table({"CACHE ID", "CACHE TYPE", "SIZE", "CREATED", "LAST USED", "USAGE", "SHARED"}).Render() +
                    "\nPartial layers (lazy pulls) space usage:\n\n" + pt.Render() + "\nStore total: " + total + " (allocated blocks, as du -s --block-size=1)\n";
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

std::string PruneWarning(bool all) {
  return std::string("WARNING! This will remove:\n") +
         (all ? "  - all images without at least one container associated to them\n  - all build cache\n"
                "  - partial layers of lazy pulls that no process is pulling and no container needs\n"
              : "  - all dangling images\n  - unused build cache\n") +
         "  - blobs, layers and merged indexes that no image, container or build cache uses\n"
         "  - litter in tmp/ left by layerfs processes that died\n"
         "Containers are kept, mounted or not (layerfs rm removes one).";
}

void PrintPrune(const SystemPruneReport& r) {
  if (!r.images.deleted_images.empty() || !r.images.untagged.empty()) {
    PrintLine("Deleted Images:");
    PrintRemoval(r.images, true);
    PrintLine("");
  }
  if (r.build_cache.records > 0) PrintLine("Deleted build cache records: " + std::to_string(r.build_cache.records) + "\n");
  const SweepReport& s = r.sweep;
  if (!s.partial_layers.empty()) {
    PrintLine("Deleted Partial Layers:");
    for (const Digest& d : s.partial_layers) PrintLine(d.str());
    PrintLine("");
  }
  if (s.blobs + s.layers + s.chains + s.tmp_entries > 0)
    PrintLine("Deleted unreferenced: " + std::to_string(s.blobs) + " blobs, " + std::to_string(s.layers) + " layers, " +
              std::to_string(s.chains) + " merged indexes, " + std::to_string(s.tmp_entries) + " tmp entries\n");
  PrintLine("Total reclaimed space: " + HumanSize(r.reclaimed));
}

void AddPrune(CLI::App& system, Cli& cli) {
  auto* cmd = system.add_subcommand("prune", "Remove dangling images, unused build cache and unreferenced data");
  struct Opts {
    bool all = false, force = false;
  };
  auto o = std::make_shared<Opts>();
  cmd->add_flag("-a,--all", o->all,
                "Remove all images without a container, all build cache and the partial layers of lazy pulls "
                "no process is pulling and no container needs, not just dangling images");
  cmd->add_flag("-f,--force", o->force, "Do not prompt for confirmation");
  cmd->callback([&cli, o] {
    if (!o->force && !Confirm(PruneWarning(o->all))) return;
    auto store = cli.OpenStore();
    if (!store.ok()) return;
    auto report = SystemPrune(*store, o->all);
    if (!report.ok()) return (void)cli.Fail(report.status());
    PrintPrune(*report);
  });
}

}  // namespace

void RegisterSystemCommands(CLI::App& app, Cli& cli) {
  auto* system = app.add_subcommand("system", "Manage the store (df, prune)");
  system->require_subcommand(1);
  AddDf(*system, cli);
  AddPrune(*system, cli);
}

}  // namespace layerfs::cli
