// Image commands: load, import, save, images, history, inspect, tag, rmi, and the same under
// `image` (ls, rm, prune, ...). Only parsing and printing live here; the work is in
// layerstore/ (image_load, image_save, image_import, image_gc, image_store, disk_usage) and
// tools/table.
#include <algorithm>
#include <cstdio>
#include <ctime>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "layerstore/archive/image_import.h"
#include "layerstore/archive/image_load.h"
#include "layerstore/archive/image_save.h"
#include "layerstore/lazy/partial_image.h"
#include "layerstore/oci/reference.h"
#include "layerstore/store/container_store.h"
#include "layerstore/store/disk_usage.h"
#include "layerstore/store/image_gc.h"
#include "layerstore/store/image_store.h"
#include "tools/cli.h"
#include "tools/estargz_flags.h"
#include "tools/progress.h"
#include "tools/prune_output.h"
#include "tools/table.h"

namespace layerfs::cli {

namespace {

using Json = nlohmann::json;

std::string ImageIdText(const Digest& id, bool no_trunc) { return no_trunc ? id.str() : id.short_id(); }

std::string Created(const Image& image) { return image.config.value("created", std::string()); }

void PrintLine(const std::string& s) { std::fputs((s + "\n").c_str(), stdout); }

// ---- load / import / save ----

void AddLoad(CLI::App& parent, Cli& cli) {
  auto* cmd = parent.add_subcommand("load", "Load images from a docker-archive, oci-archive or OCI layout directory");
  struct Opts {
    std::string input, positional;
    LoadOptions load;
    bool quiet = false;
  };
  auto o = std::make_shared<Opts>();
  cmd->add_option("-i,--input", o->input, "Archive file or OCI layout directory to read");
  cmd->add_option("FILE", o->positional, "Archive file or OCI layout directory (same as -i)");
  cmd->add_option("--platform", o->load.platform, "Platform to pick from a multi-platform image (os/arch[/variant]); default linux/amd64");
  cmd->add_option("--tag", o->load.only_ref, "Load only the image the archive names so (e.g. redis:7)");
  cmd->add_flag("-q,--quiet", o->quiet, "Suppress the per-layer progress output");
  cmd->callback([&cli, o] {
    std::string input = o->input.empty() ? o->positional : o->input;
    if (input.empty()) return (void)cli.Fail("load: give the archive as FILE or with -i FILE");
    auto store = cli.OpenStore();
    if (!store.ok()) return;
    ProgressPrinter printer(stdout, StdoutIsTerminal());
    LoadOptions options = o->load;
    if (!o->quiet) options.progress = [&printer](const TransferEvent& e) { printer.Handle(e); };
    auto report = LoadImages(*store, input, options);
    if (!report.ok()) return (void)cli.Fail(report.status());
    for (const auto& loaded : report->images) {
      if (loaded.refs.empty()) PrintLine("Loaded image ID: " + loaded.image.id().str());
      for (const auto& ref : loaded.refs) PrintLine("Loaded image: " + FamiliarString(ref));
    }
  });
}

void AddImport(CLI::App& parent, Cli& cli) {
  auto* cmd = parent.add_subcommand("import", "Create a one-layer image from a rootfs tarball (tar, tar.gz, tar.zst)");
  struct Opts {
    std::string file;
    ImportOptions import;
  };
  auto o = std::make_shared<Opts>();
  cmd->add_option("FILE", o->file, "Root filesystem tarball")->required();
  cmd->add_option("REPOSITORY[:TAG]", o->import.ref, "Name for the image");
  cmd->add_option("-m,--message", o->import.message, "Commit message recorded in the history");
  cmd->callback([&cli, o] {
    auto store = cli.OpenStore();
    if (!store.ok()) return;
    auto image = ImportRootfs(*store, o->file, o->import);
    if (!image.ok()) return (void)cli.Fail(image.status());
    PrintLine(image->id().str());
  });
}

void AddSave(CLI::App& parent, Cli& cli) {
  auto* cmd = parent.add_subcommand("save", "Save images to a docker-archive or oci-archive tar file");
  struct Opts {
    std::vector<std::string> images;
    std::string output, format = "docker-archive";
    EstargzFlags estargz;
  };
  auto o = std::make_shared<Opts>();
  cmd->add_option("IMAGE", o->images, "Images (references or IDs)")->required();
  cmd->add_option("-o,--output", o->output, "Write to this file")->required();
  cmd->add_option("--format", o->format, "docker-archive (default) or oci-archive");
  o->estargz.Add(cmd);
  cmd->callback([&cli, o] {
    auto format = ParseSaveFormat(o->format);
    if (!format.ok()) return (void)cli.Fail(format.status());
    auto estargz = o->estargz.Options();
    if (!estargz.ok()) return (void)cli.Fail(estargz.status().WithContext("save"));
    auto store = cli.OpenStore();
    if (!store.ok()) return;
    Status st = SaveImages(*store, o->images, o->output, *format, o->estargz.on ? &*estargz : nullptr);
    if (!st.ok()) cli.Fail(st);
  });
}

// ---- images ----

struct ImagesOpts {
  std::string filter, format;
  bool all = false, quiet = false, digests = false, no_trunc = false;
};

bool MatchesFilter(const std::string& ref, const std::string& filter) {
  if (filter.empty()) return true;
  auto r = ParseReference(ref);
  if (!r.ok()) return false;
  bool has_tag = filter.find(':', filter.rfind('/') == std::string::npos ? 0 : filter.rfind('/')) != std::string::npos;
  auto f = ParseReference(filter);
  if (!f.ok()) return false;
  return r->Name() == f->Name() && (!has_tag || r->tag == f->tag);
}

struct ImageRow {
  std::string repo, tag, digest, id, created_since, created_at, size;
  std::optional<LocalBytes> partial;  // an image still arriving under a lazy mount
};

std::vector<ImageRow> ImageRows(std::vector<Image>& images, LayerSizes& sizes, const ImagesOpts& o, Status* st) {
  std::stable_sort(images.begin(), images.end(), [](const Image& a, const Image& b) { return Created(a) > Created(b); });
  std::vector<ImageRow> rows;
  std::time_t now = std::time(nullptr);
  for (const auto& image : images) {
    auto size = sizes.ImageSize(image);
    if (!size.ok()) {
      *st = size.status();
      return rows;
    }
    ImageRow base{"<none>", "<none>", image.repo_digest().str(), ImageIdText(image.id(), o.no_trunc),
                  CreatedSince(Created(image), now), GoTimeString(Created(image)), HumanSize(*size, 3)};
    if (image.tags.empty() && o.filter.empty()) rows.push_back(base);
    for (const auto& t : image.tags) {
      if (!MatchesFilter(t, o.filter)) continue;
      auto r = ParseReference(t);
      ImageRow row = base;
      row.repo = r.ok() ? r->FamiliarName() : t;
      row.tag = r.ok() ? r->tag : "<none>";
      rows.push_back(row);
    }
  }
  return rows;
}

// Images lazy mounts are still fetching (partial_image.h): one row per image the store has not
// recorded yet, SIZE saying how much of it is local. `images -q` leaves them out: no command
// that takes an image ID can use one yet.
void AddPartialRows(const Store& store, const std::vector<Image>& recorded, const ImagesOpts& o, std::vector<ImageRow>* rows) {
  std::set<Digest> seen;
  for (const Image& image : recorded) seen.insert(image.id());
  ContainerStore containers(store);
  std::time_t now = std::time(nullptr);
  for (const auto& c : containers.List()) {
    auto partial = ReadPartialImage(containers.partial_image_file(c.id));
    if (!partial.ok() || !seen.insert(partial->config_digest).second || !MatchesFilter(partial->ref, o.filter)) continue;
    LocalBytes local = LocalBytesOf(store, *partial);
    auto r = ParseReference(partial->ref);
    rows->push_back({r.ok() ? r->FamiliarName() : partial->ref, r.ok() ? r->tag : "<none>", partial->manifest_digest.str(),
                     ImageIdText(partial->config_digest, o.no_trunc), CreatedSince(partial->created, now),
                     GoTimeString(partial->created),
                     std::to_string(local.Percent()) + "% of " + HumanSize(local.total, 3) + " (lazy)", local});
  }
}

void PrintImages(const std::vector<ImageRow>& rows, const ImagesOpts& o) {
  if (o.quiet) {
    std::set<std::string> seen;
    for (const auto& r : rows)
      if (!r.partial && seen.insert(r.id).second) PrintLine(r.id);
    return;
  }
  if (o.format == "json") {
    for (const auto& r : rows) {
      Json j{{"Containers", "N/A"}, {"CreatedAt", r.created_at}, {"CreatedSince", r.created_since}, {"Digest", r.digest}, {"ID", r.id}, {"Repository", r.repo}, {"SharedSize", "N/A"}, {"Size", r.size}, {"Tag", r.tag}, {"UniqueSize", "N/A"}, {"VirtualSize", r.size}};
      if (r.partial) j["Partial"] = LocalBytesJson(*r.partial);
      PrintLine(j.dump());
    }
    return;
  }
  std::vector<std::string> header = {"REPOSITORY", "TAG"};
  if (o.digests) header.push_back("DIGEST");
  for (const char* h : {"IMAGE ID", "CREATED", "SIZE"}) header.push_back(h);
  Table table(header);
  for (const auto& r : rows) {
    std::vector<std::string> row = {r.repo, r.tag};
    if (o.digests) row.push_back(r.digest);
    for (const auto& v : {r.id, r.created_since, r.size}) row.push_back(v);
    table.AddRow(row);
  }
  std::fputs(table.Render().c_str(), stdout);
}

void AddImages(CLI::App& parent, Cli& cli, const std::string& name, const std::string& alias = "") {
  auto* cmd = parent.add_subcommand(name, "List images");
  if (!alias.empty()) cmd->alias(alias);
  auto o = std::make_shared<ImagesOpts>();
  cmd->add_option("REPOSITORY[:TAG]", o->filter, "Show only images of this repository (and tag)");
  cmd->add_flag("-a,--all", o->all, "Show all images (there are no intermediate images; same as default)");
  cmd->add_flag("-q,--quiet", o->quiet, "Only show image IDs");
  cmd->add_flag("--digests", o->digests, "Show manifest digests");
  cmd->add_flag("--no-trunc", o->no_trunc, "Don't truncate output");
  cmd->add_option("--format", o->format, "\"json\": one JSON object per line")->check(CLI::IsMember({"json", "table"}));
  cmd->callback([&cli, o] {
    auto store = cli.OpenStore();
    if (!store.ok()) return;
    auto images = ImageStore(*store).List();
    if (!images.ok()) return (void)cli.Fail(images.status());
    LayerSizes sizes(*store);
    Status st;
    auto rows = ImageRows(*images, sizes, *o, &st);
    if (!st.ok()) return (void)cli.Fail(st);
    AddPartialRows(*store, *images, *o, &rows);
    PrintImages(rows, *o);
  });
}

// ---- history / inspect / tag ----

void PrintHistory(const Image& image, LayerSizes& sizes, bool no_trunc, bool quiet, bool json, Cli& cli) {
  auto rows = HistoryLayers(image);
  std::reverse(rows.begin(), rows.end());
  std::time_t now = std::time(nullptr);
  Table table({"IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"});
  for (size_t i = 0; i < rows.size(); ++i) {
    const auto& [h, layer] = rows[i];
    uint64_t size = 0;
    if (layer >= 0) {
      auto s = sizes.Get(image.diff_ids[static_cast<size_t>(layer)]);
      if (!s.ok()) return (void)cli.Fail(s.status());
      size = *s;
    }
    std::string id = i == 0 ? ImageIdText(image.id(), no_trunc) : "<missing>";
    std::string created_by = h.created_by;
    std::replace(created_by.begin(), created_by.end(), '\t', ' ');
    if (!no_trunc) created_by = Ellipsis(created_by, 45);
    std::string since = CreatedSince(h.created, now);
    if (quiet) {
      PrintLine(id);
    } else if (json) {
      PrintLine(Json{{"Comment", h.comment}, {"CreatedAt", h.created}, {"CreatedBy", created_by}, {"CreatedSince", since}, {"ID", id}, {"Size", HumanSize(size, 3)}}.dump());
    } else {
      table.AddRow({id, since, created_by, HumanSize(size, 3), h.comment});
    }
  }
  if (!quiet && !json) std::fputs(table.Render().c_str(), stdout);
}

void AddHistory(CLI::App& parent, Cli& cli) {
  auto* cmd = parent.add_subcommand("history", "Show the history of an image");
  struct Opts {
    std::string image, format;
    bool no_trunc = false, quiet = false;
  };
  auto o = std::make_shared<Opts>();
  cmd->add_option("IMAGE", o->image, "Image (reference or ID)")->required();
  cmd->add_flag("--no-trunc", o->no_trunc, "Don't truncate output");
  cmd->add_flag("-q,--quiet", o->quiet, "Only show image IDs");
  cmd->add_option("--format", o->format, "\"json\": one JSON object per line")->check(CLI::IsMember({"json", "table"}));
  cmd->callback([&cli, o] {
    auto store = cli.OpenStore();
    if (!store.ok()) return;
    auto image = ImageStore(*store).Resolve(o->image);
    if (!image.ok()) return (void)cli.Fail(image.status());
    LayerSizes sizes(*store);
    PrintHistory(*image, sizes, o->no_trunc, o->quiet, o->format == "json", cli);
  });
}

void AddInspect(CLI::App& parent, Cli& cli) {
  auto* cmd = parent.add_subcommand("inspect", "Show details of images as JSON");
  auto images = std::make_shared<std::vector<std::string>>();
  cmd->add_option("IMAGE", *images, "Images (references or IDs)")->required();
  cmd->callback([&cli, images] {
    auto store = cli.OpenStore();
    if (!store.ok()) return;
    ImageStore image_store(*store);
    LayerSizes sizes(*store);
    Json out = Json::array();
    for (const auto& name : *images) {
      auto image = image_store.Resolve(name);
      auto size = image.ok() ? sizes.ImageSize(*image) : Result<uint64_t>(image.status());
      if (!size.ok()) {
        cli.Fail(size.status());
        continue;
      }
      out.push_back(InspectJson(*image, *size));
    }
    PrintLine(out.dump(4));
  });
}

void AddTag(CLI::App& parent, Cli& cli) {
  auto* cmd = parent.add_subcommand("tag", "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE");
  auto args = std::make_shared<std::pair<std::string, std::string>>();
  cmd->add_option("SOURCE_IMAGE", args->first, "Image (reference or ID)")->required();
  cmd->add_option("TARGET_IMAGE", args->second, "New reference")->required();
  cmd->callback([&cli, args] {
    auto store = cli.OpenStore();
    if (!store.ok()) return;
    Status st = ImageStore(*store).Tag(args->first, args->second);
    if (!st.ok()) cli.Fail(st);
  });
}

// ---- rmi / prune ----

void AddRmi(CLI::App& parent, Cli& cli, const std::string& name, const std::string& alias = "") {
  auto* cmd = parent.add_subcommand(name, "Remove images (untag; delete what nothing uses any more)");
  if (!alias.empty()) cmd->alias(alias);
  struct Opts {
    std::vector<std::string> images;
    bool force = false;
  };
  auto o = std::make_shared<Opts>();
  cmd->add_option("IMAGE", o->images, "Images (references or IDs)")->required();
  cmd->add_flag("-f,--force", o->force, "Remove an image with several tags by ID; untag one a container uses");
  cmd->callback([&cli, o] {
    auto store = cli.OpenStore();
    if (!store.ok()) return;
    for (const auto& image : o->images) {
      auto report = RemoveImage(*store, image, o->force);
      if (!report.ok()) {
        cli.Fail(report.status());
        continue;
      }
      PrintRemoval(*report, false);
    }
  });
}

void AddPrune(CLI::App& parent, Cli& cli) {
  auto* cmd = parent.add_subcommand("prune", "Remove dangling images (-a: every image no container uses)");
  struct Opts {
    bool all = false, force = false;
  };
  auto o = std::make_shared<Opts>();
  cmd->add_flag("-a,--all", o->all, "Remove all images not used by a container, not just dangling ones");
  cmd->add_flag("-f,--force", o->force, "Do not prompt for confirmation");
  cmd->callback([&cli, o] {
    std::string warning = o->all ? "WARNING! This will remove all images without at least one container associated to them."
                                 : "WARNING! This will remove all dangling images.";
    if (!o->force && !Confirm(warning)) return;
    auto store = cli.OpenStore();
    if (!store.ok()) return;
    auto report = PruneImages(*store, o->all);
    if (!report.ok()) return (void)cli.Fail(report.status());
    if (!report->deleted_images.empty() || !report->untagged.empty()) {
      PrintLine("Deleted Images:");
      PrintRemoval(*report, true);
      PrintLine("");
    }
    PrintLine("Total reclaimed space: " + HumanSize(report->reclaimed));
  });
}

}  // namespace

void RegisterImageCommands(CLI::App& app, Cli& cli) {
  AddLoad(app, cli);
  AddImport(app, cli);
  AddSave(app, cli);
  AddImages(app, cli, "images");
  AddHistory(app, cli);
  AddInspect(app, cli);
  AddTag(app, cli);
  AddRmi(app, cli, "rmi");

  auto* image = app.add_subcommand("image", "Manage images (ls, rm, prune, history, inspect, tag, load, save, import)");
  image->require_subcommand(1);
  AddImages(*image, cli, "ls", "list");
  AddRmi(*image, cli, "rm", "remove");
  AddPrune(*image, cli);
  AddHistory(*image, cli);
  AddInspect(*image, cli);
  AddTag(*image, cli);
  AddLoad(*image, cli);
  AddSave(*image, cli);
  AddImport(*image, cli);
}

}  // namespace layerfs::cli
