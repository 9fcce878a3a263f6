#include "layerstore/build/copy_plan.h"

#include <archive.h>
#include <archive_entry.h>
#include <fnmatch.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ctime>

#include "layerstore/base/digest.h"

namespace layerfs {

namespace {

namespace stdfs = std::filesystem;

// Normalises a path to layer form: no leading '/', no "." or empty components. ".." is refused
// when it would climb above the start.
Result<std::string> Normalize(std::string_view p, const std::string& what) {
  std::vector<std::string> parts;
  while (!p.empty()) {
    size_t slash = p.find('/');
    std::string part(p.substr(0, slash));
    if (part == "..") {
      if (parts.empty()) return Status::Error(EINVAL, what + ": path \"" + std::string(p) + "\" leaves the build context");
      parts.pop_back();
    } else if (!part.empty() && part != ".") {
      parts.push_back(part);
    }
    if (slash == std::string_view::npos) break;
    p.remove_prefix(slash + 1);
  }
  std::string out;
  for (const auto& part : parts) out += (out.empty() ? "" : "/") + part;
  return out;
}

std::string Join(const std::string& dir, const std::string& name) {
  if (dir.empty()) return name;
  if (name.empty()) return dir;
  return dir + "/" + name;
}

std::string Basename(const std::string& p) {
  size_t slash = p.rfind('/');
  return slash == std::string::npos ? p : p.substr(slash + 1);
}

bool IsUrl(std::string_view s) {
  return s.rfind("http://", 0) == 0 || s.rfind("https://", 0) == 0 || s.rfind("git@", 0) == 0 ||
         s.rfind("git://", 0) == 0;
}

bool HasWildcard(std::string_view s) { return s.find_first_of("*?[") != std::string_view::npos; }

class Planner {
 public:
  Planner(const CopyRequest& req, const ChainView& image) : req_(req), image_(image) {}

  Result<CopyPlan> Run() {
    ASSIGN_OR_RETURN(std::vector<std::string> sources, ExpandSources());
    bool dest_dir = req_.dest.ends_with("/") || req_.dest.ends_with("/.") || sources.size() > 1;
    if (sources.size() > 1 && !dest_dir)
      return Status::Error(EINVAL, "when copying more than one source, the destination must be a directory ending in /");
    ASSIGN_OR_RETURN(dest_, Normalize(req_.dest, "destination"));
    auto existing = image_.Lookup(dest_);
    dest_dir = dest_dir || dest_.empty() || (existing && existing->entry.type == EntryType::kDirectory);
    for (const std::string& src : sources) RETURN_IF_ERROR(AddSource(src, dest_dir));
    Hash();
    return std::move(plan_);
  }

 private:
  Result<std::vector<std::string>> ExpandSources() {
    std::vector<std::string> out;
    for (const std::string& raw : req_.sources) {
      if (IsUrl(raw)) return Status::Error(EINVAL, "source " + raw + ": URLs are not supported (no network during builds); download it into the context");
      ASSIGN_OR_RETURN(std::string src, Normalize(raw, "source " + raw));
      if (!HasWildcard(src)) {
        if (!Visible(src)) return Status::Error(ENOENT, "source " + raw + ": not found in the build context or excluded by .dockerignore");
        out.push_back(src);
        continue;
      }
      size_t before = out.size();
      Glob("", src, &out);
      if (out.size() == before) return Status::Error(ENOENT, "source " + raw + ": no files in the build context match");
    }
    return out;
  }

  bool Visible(const std::string& rel) const {
    std::error_code ec;
    if (!stdfs::exists(stdfs::symlink_status(req_.context / rel, ec))) return false;
    return rel.empty() || !req_.ignore || !req_.ignore->Excluded(rel);
  }

  // Matches `pattern` component by component below the context directory `dir`.
  void Glob(const std::string& dir, std::string_view pattern, std::vector<std::string>* out) const {
    size_t slash = pattern.find('/');
    std::string head(pattern.substr(0, slash));
    std::error_code ec;
    std::vector<std::string> names;
    for (const auto& e : stdfs::directory_iterator(req_.context / dir, ec)) names.push_back(e.path().filename());
    std::sort(names.begin(), names.end());
    for (const std::string& name : names) {
      if (fnmatch(head.c_str(), name.c_str(), FNM_PERIOD) != 0) continue;
      std::string rel = Join(dir, name);
      if (!Visible(rel)) continue;
      if (slash == std::string_view::npos) out->push_back(rel);
      else if (stdfs::is_directory(req_.context / rel, ec))
        Glob(rel, pattern.substr(slash + 1), out);
    }
  }

  TarEntryMeta Meta(const struct stat& st, bool apply_chmod) const {
    TarEntryMeta m;
    m.mode = apply_chmod && req_.chmod ? *req_.chmod : (st.st_mode & 07777);
    m.uid = req_.uid.value_or(0);
    m.gid = req_.gid.value_or(0);
    m.mtime_sec = st.st_mtim.tv_sec;
    m.mtime_nsec = st.st_mtim.tv_nsec;
    return m;
  }

  Status AddSource(const std::string& src, bool dest_dir) {
    stdfs::path path = req_.context / src;
    struct stat st;
    if (::stat(path.c_str(), &st) != 0) return Status::FromErrno("source " + src);  // follows a top-level symlink
    RETURN_IF_ERROR(Inside(path, src));
    if (S_ISDIR(st.st_mode)) {
      RETURN_IF_ERROR(AddParents(dest_));
      if (!dest_.empty()) AddDir(dest_, st);
      return AddTree(src, dest_);
    }
    if (!S_ISREG(st.st_mode)) return Status::Error(EINVAL, "source " + src + ": not a regular file or directory");
    if (req_.add) {
      ASSIGN_OR_RETURN(bool archive, IsArchive(path));
      if (archive) {
        RETURN_IF_ERROR(AddParents(dest_));
        if (!dest_.empty()) AddDir(dest_, st);
        plan_.archives.push_back({path, dest_});
        return Status::Ok();
      }
    }
    std::string target = dest_dir ? Join(dest_, Basename(src)) : dest_;
    RETURN_IF_ERROR(AddParents(target));
    plan_.entries[target] = CopyEntry{EntryType::kRegular, Meta(st, true), path, ""};
    return Status::Ok();
  }

  // A followed symlink must still land inside the context.
  Status Inside(const stdfs::path& path, const std::string& src) const {
    std::error_code ec;
    stdfs::path real = stdfs::canonical(path, ec);
    stdfs::path root = stdfs::canonical(req_.context, ec);
    auto rel = real.lexically_relative(root);
    if (ec || rel.empty() || *rel.begin() == "..")
      return Status::Error(EINVAL, "source " + src + ": resolves outside the build context");
    return Status::Ok();
  }

  void AddDir(const std::string& layer_path, const struct stat& st) {
    auto existing = image_.Lookup(layer_path);
    if (existing && existing->entry.type == EntryType::kDirectory && !req_.uid && !req_.chmod) {
      plan_.entries[layer_path] = FromIndex(existing->entry);
      return;
    }
    plan_.entries[layer_path] = CopyEntry{EntryType::kDirectory, Meta(st, true), {}, ""};
  }

  static CopyEntry FromIndex(const LayerEntry& e) {
    CopyEntry c{EntryType::kDirectory, {}, {}, ""};
    c.meta = TarEntryMeta{e.mode, e.uid, e.gid, e.mtime_sec, static_cast<long>(e.mtime_nsec)};
    return c;
  }

  // Each proper ancestor of layer_path: as the image has it, or a new 0755 root directory.
  Status AddParents(const std::string& layer_path) {
    for (size_t slash = layer_path.find('/'); slash != std::string::npos; slash = layer_path.find('/', slash + 1)) {
      std::string parent = layer_path.substr(0, slash);
      if (plan_.entries.count(parent)) continue;
      auto existing = image_.Lookup(parent);
      if (existing && existing->entry.type != EntryType::kDirectory)
        return Status::Error(ENOTDIR, "destination /" + layer_path + ": /" + parent + " is not a directory in the image");
      if (existing) {
        plan_.entries[parent] = FromIndex(existing->entry);
      } else {
        CopyEntry c{EntryType::kDirectory, {}, {}, ""};
        c.meta = TarEntryMeta{0755, 0, 0, static_cast<int64_t>(::time(nullptr)), 0};
        plan_.entries[parent] = c;
      }
    }
    return Status::Ok();
  }

  Status AddTree(const std::string& src_dir, const std::string& dest_dir) {
    std::error_code ec;
    std::vector<std::string> names;
    for (const auto& e : stdfs::directory_iterator(req_.context / src_dir, ec)) names.push_back(e.path().filename());
    if (ec) return Status::Error(ec.value(), "read directory " + src_dir + ": " + ec.message());
    std::sort(names.begin(), names.end());
    for (const std::string& name : names) RETURN_IF_ERROR(AddTreeEntry(Join(src_dir, name), Join(dest_dir, name)));
    return Status::Ok();
  }

  Status AddTreeEntry(const std::string& src, const std::string& dest) {
    stdfs::path path = req_.context / src;
    struct stat st;
    if (::lstat(path.c_str(), &st) != 0) return Status::FromErrno("source " + src);
    bool excluded = req_.ignore && req_.ignore->Excluded(src);
    if (S_ISDIR(st.st_mode)) {
      if (excluded && !req_.ignore->MayReinclude(src)) return Status::Ok();
      size_t before = plan_.entries.size();
      plan_.entries[dest] = CopyEntry{EntryType::kDirectory, Meta(st, true), {}, ""};
      RETURN_IF_ERROR(AddTree(src, dest));
      if (excluded && plan_.entries.size() == before + 1) plan_.entries.erase(dest);  // nothing re-included
      return Status::Ok();
    }
    if (excluded) return Status::Ok();
    if (S_ISREG(st.st_mode)) {
      plan_.entries[dest] = CopyEntry{EntryType::kRegular, Meta(st, true), path, ""};
    } else if (S_ISLNK(st.st_mode)) {
      std::error_code ec;
      std::string target = stdfs::read_symlink(path, ec).string();
      if (ec) return Status::Error(ec.value(), "read link " + src + ": " + ec.message());
      plan_.entries[dest] = CopyEntry{EntryType::kSymlink, Meta(st, false), {}, target};
      plan_.entries[dest].meta.mode = 0777;
    }
    // sockets, fifos and devices in a context are skipped, as Docker does
    return Status::Ok();
  }

  static Result<bool> IsArchive(const stdfs::path& path) {
    archive* a = archive_read_new();
    archive_read_support_filter_all(a);
    archive_read_support_format_tar(a);
    archive_read_support_format_gnutar(a);
    bool yes = false;
    if (archive_read_open_filename(a, path.c_str(), 1 << 16) == ARCHIVE_OK) {
      archive_entry* e;
      yes = archive_read_next_header(a, &e) == ARCHIVE_OK;
    }
    archive_read_free(a);
    return yes;
  }

  void Hash() {
    Sha256 h;
    auto field = [&](const std::string& s) {
      h.Update(std::to_string(s.size()) + ":");
      h.Update(s);
    };
    for (const auto& [path, e] : plan_.entries) {
      field(path);
      field(std::to_string(static_cast<int>(e.type)) + " " + std::to_string(e.meta.mode) + " " +
            std::to_string(e.meta.uid) + ":" + std::to_string(e.meta.gid));
      field(e.link_target);
      if (e.type == EntryType::kRegular) {
        auto d = Sha256OfFile(e.source);
        field(d.ok() ? d->hex() : "unreadable:" + e.source.string());
      }
    }
    for (const auto& a : plan_.archives) {
      field("archive " + a.dest_dir);
      auto d = Sha256OfFile(a.source);
      field(d.ok() ? d->hex() : "unreadable:" + a.source.string());
    }
    plan_.content_hash = h.Finish().hex();
  }

  const CopyRequest& req_;
  const ChainView& image_;
  std::string dest_;
  CopyPlan plan_;
};

Status WriteArchive(LayerTarWriter* w, const CopyPlan::Archive& a) {
  archive* in = archive_read_new();
  archive_read_support_filter_all(in);
  archive_read_support_format_tar(in);
  archive_read_support_format_gnutar(in);
  std::unique_ptr<archive, int (*)(archive*)> guard(in, archive_read_free);
  if (archive_read_open_filename(in, a.source.c_str(), 1 << 16) != ARCHIVE_OK)
    return Status::Error(EINVAL, a.source.string() + ": " + archive_error_string(in));
  archive_entry* e;
  int rc;
  while ((rc = archive_read_next_header(in, &e)) == ARCHIVE_OK) {
    std::string what = a.source.filename().string() + ": entry " + archive_entry_pathname(e);
    ASSIGN_OR_RETURN(std::string rel, Normalize(archive_entry_pathname(e), what));
    if (rel.empty()) continue;
    std::string link;
    if (const char* hl = archive_entry_hardlink(e)) {
      ASSIGN_OR_RETURN(std::string target, Normalize(hl, what));
      link = Join(a.dest_dir, target);
    }
    RETURN_IF_ERROR(w->AddArchiveEntry(in, e, Join(a.dest_dir, rel), link));
  }
  if (rc != ARCHIVE_EOF) return Status::Error(EINVAL, a.source.string() + ": " + archive_error_string(in));
  return Status::Ok();
}

}  // namespace

Result<CopyPlan> PlanCopy(const CopyRequest& request, const ChainView& image) {
  return Planner(request, image).Run();
}

Result<LayerBlob> WriteCopyLayer(const Store& store, const CopyPlan& plan) {
  ASSIGN_OR_RETURN(std::unique_ptr<LayerTarWriter> w, LayerTarWriter::Create(store));
  for (const auto& [path, e] : plan.entries) {
    if (e.type == EntryType::kDirectory) RETURN_IF_ERROR(w->AddDirectory(path, e.meta));
    if (e.type == EntryType::kRegular) RETURN_IF_ERROR(w->AddFile(path, e.meta, e.source));
    if (e.type == EntryType::kSymlink) RETURN_IF_ERROR(w->AddSymlink(path, e.meta, e.link_target));
  }
  for (const auto& a : plan.archives) RETURN_IF_ERROR(WriteArchive(w.get(), a));
  return w->Finish();
}

}  // namespace layerfs
