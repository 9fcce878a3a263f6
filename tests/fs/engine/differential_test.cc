// Differential test: kernel overlayfs is the reference. The same random layers are mounted by
// kernel overlayfs (as overlay lower dirs) and by layerfs (as OCI tar layers in a temp store);
// the same random operation sequence runs on both; every op's result and then both whole trees
// must agree. layerfs is then remounted on the same upper and must show the same tree with the
// same st_ino. A failing seed is shrunk to a minimal sequence, printed readably.
//
// `layerfs overlay` runs the same way on the very lower directories kernel overlayfs mounts;
// then both uppers are swapped: kernel overlayfs mounts the upper layerfs wrote and layerfs
// the kernel's, and each must show the reference tree (the format is shared both ways).
//
// Fixed scenarios (ScenarioTest below) then cover what random ops do not reach: O_DIRECT, ...
// Each is one function of the mount root that records every call's result; it runs on kernel
// overlayfs and on both layerfs faces over the same lowers, and the records must be equal.
//
// Env: LAYERFS_DIFF_SEEDS (default 100), LAYERFS_DIFF_OPS (default 60), LAYERFS_DIFF_SEED_BASE
// (first seed, default 1). LAYERFS_SCENARIO_PRINT: print each scenario's record on kernel overlayfs.
// LAYERFS_DIFF_SELFCHECK_SEEDS: seeds for the harness self-check that
// runs fuse-overlayfs against kernel overlayfs (default 0: off, as fuse-overlayfs 1.10 has its
// own deviations, e.g. no ".." at the mount root and lchown lost when a symlink is copied up).
#include <fcntl.h>
#include <grp.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "fs/mount/overlay_options.h"
#include "tests/fs/file_helpers.h"
#include "tests/fs/fs_harness.h"
#include "tests/fs/tree_snapshot.h"

namespace layerfs::fstest {
namespace {

namespace fs = std::filesystem;

enum class Candidate { kLayerfs,
                       kLayerfsOverlay,
                       kLayerfsOverlayNoOpen,  // -o no_open: copy-up at the first write, not the open
                       kFuseOverlayfs };

// The layers of one seed, materialised in both formats; shared by every run of that seed.
class SeedSetup {
 public:
  explicit SeedSetup(uint64_t seed) : seed_(seed), tmp_("layerfs-diff"), layers_(RandomLayers(seed)) {}
  explicit SeedSetup(std::vector<LayerSpec> layers) : seed_(0), tmp_("layerfs-diff"), layers_(std::move(layers)) {}

  Status Prepare(Candidate candidate) {
    for (size_t i = 0; i < layers_.size(); ++i) {
      lowers_.push_back(tmp_.path() / ("lower" + std::to_string(i)));
      RETURN_IF_ERROR(WriteOverlayLower(layers_[i], lowers_.back()));
    }
    if (candidate != Candidate::kLayerfs) return Status::Ok();
    ASSIGN_OR_RETURN(Store store, Store::Open(tmp_.path() / "store"));
    for (const auto& layer : layers_) {
      ASSIGN_OR_RETURN(std::string tar, BuildLayerTar(layer));
      ASSIGN_OR_RETURN(Digest diff_id, AddLayer(store, tar));
      diff_ids_.push_back(diff_id);
    }
    return Status::Ok();
  }

  uint64_t seed() const { return seed_; }
  const fs::path& dir() const { return tmp_.path(); }
  const std::vector<LayerSpec>& layers() const { return layers_; }
  const std::vector<fs::path>& lowers() const { return lowers_; }
  fs::path store_root() const { return tmp_.path() / "store"; }
  const std::vector<Digest>& diff_ids() const { return diff_ids_; }

 private:
  uint64_t seed_;
  TempDir tmp_;
  std::vector<LayerSpec> layers_;
  std::vector<fs::path> lowers_;
  std::vector<Digest> diff_ids_;
};

// Fresh upper/work/mount dirs for one side of one run; removed on destruction.
struct SideDirs {
  // Names existing dirs without owning them (not created, not removed).
  static SideDirs Of(const fs::path& upper, const fs::path& work, const fs::path& mnt) {
    SideDirs d;
    d.upper = upper;
    d.work = work;
    d.mnt = mnt;
    return d;
  }
  SideDirs(const fs::path& base, const std::string& name)
      : upper(base / (name + "-upper")), work(base / (name + "-work")), mnt(base / (name + "-mnt")) {
    for (const auto& d : {upper, work, mnt}) {
      fs::create_directories(d);
      chmod(d.c_str(), 0755);
    }
  }
  ~SideDirs() {
    if (!owned) return;
    ForceUnmount(mnt);  // no-op unless a run failed half-way
    std::error_code ec;
    for (const auto& d : {upper, work, mnt}) fs::remove_all(d, ec);
  }
  fs::path upper, work, mnt;
  bool owned = true;

 private:
  SideDirs() : owned(false) {}
};

const char* CandidateName(Candidate c) {
  switch (c) {
    case Candidate::kLayerfs: return "layerfs";
    case Candidate::kLayerfsOverlay: return "layerfs overlay";
    case Candidate::kLayerfsOverlayNoOpen: return "layerfs overlay -o no_open";
    default: return "fuse-overlayfs";
  }
}

bool IsLayerfs(Candidate c) { return c != Candidate::kFuseOverlayfs; }

// Known, documented deviations of the candidate from kernel overlayfs; each filter is narrow.
CompareOptions OptionsFor(Candidate c) {
  CompareOptions opt;
  opt.merged_dir_nlink_one = true;  // overlayfs: st_nlink 1 for merged dirs (ovl_getattr)
  // layerfs deviation (merged_index.h: "hard-link members in the merged view"; reported, not yet
  // in fs docs): a lower hard link whose other member is whited out shows nlink 1, not 2.
  opt.nlink_counts_visible_links = IsLayerfs(c);
  if (c == Candidate::kFuseOverlayfs) {
    // fuse-overlayfs 1.10 deviates where the harness first ran: parent dir mtimes move on
    // copy-up, st_ino/hard-link identity differs from overlayfs with index=on. The self-check
    // is about the harness, so those are not compared (other deviations still show).
    opt.compare_ino_identity = false;
    opt.mtime_before = 0;
  }
  return opt;
}

Result<std::unique_ptr<TestMount>> MountCandidate(Candidate c, const SeedSetup& setup, const SideDirs& d) {
  if (c == Candidate::kLayerfs) return MountLayerfs(setup.store_root(), setup.diff_ids(), d.upper, d.work, d.mnt);
  if (c == Candidate::kLayerfsOverlay) return MountLayerfsOverlay(setup.lowers(), d.upper, d.work, d.mnt);
  if (c == Candidate::kLayerfsOverlayNoOpen)
    return MountLayerfsOverlay(setup.lowers(), d.upper, d.work, d.mnt, "no_open");
  return MountFuseOverlayfs(setup.lowers(), d.upper, d.work, d.mnt);
}

std::string Lines(const std::vector<std::string>& lines, size_t max = 20) {
  std::string out;
  for (size_t i = 0; i < lines.size() && i < max; ++i) out += "    " + lines[i] + "\n";
  if (lines.size() > max) out += "    ... " + std::to_string(lines.size() - max) + " more\n";
  return out;
}

// Each upper under the other implementation (both unmounted by now). Kernel overlayfs must show
// `reference` from the candidate's upper (no index: that upper has none; redirects not
// followed: layerfs overlay writes none). The other way round the kernel's upper must be
// self-contained: with index=on the kernel keeps copied-up hard links only in its work dir's
// index/, so the same ops run once more on a kernel mount without index, and layerfs must show
// that tree from that upper.
std::string CrossCheck(const SeedSetup& setup, Candidate candidate, const std::vector<Op>& ops, const fs::path& base,
                       const SideDirs& cand_dirs, const Tree& reference) {
  std::string failure, errors;
  SideDirs swapped(base, "kernel-on-cand");
  auto kernel = MountKernelOverlay(setup.lowers(), cand_dirs.upper, swapped.work, swapped.mnt, /*index=*/false,
                                   "redirect_dir=nofollow");
  if (!kernel.ok()) return "kernel overlayfs cannot mount the layerfs upper: " + kernel.status().message() + "\n";
  CompareOptions opt = OptionsFor(candidate);
  opt.compare_ino_identity = false;  // without index, copied-up links are the upper's business
  auto diffs = CompareTrees(reference, SnapshotTree(swapped.mnt, &errors), opt);
  (void)(*kernel)->Unmount();
  if (!diffs.empty()) failure += "  kernel overlayfs on the layerfs upper (expected = reference):\n" + Lines(diffs);

  SideDirs plain(base, "overlay-noindex");
  auto noindex = MountKernelOverlay(setup.lowers(), plain.upper, plain.work, plain.mnt, /*index=*/false);
  if (!noindex.ok()) return failure + "reference mount without index failed: " + noindex.status().message() + "\n";
  for (const Op& op : ops) ApplyOp(plain.mnt, op);
  Tree plain_tree = SnapshotTree(plain.mnt, &errors);
  (void)(*noindex)->Unmount();
  SideDirs layerfs_dirs(base, "cand-on-kernel");
  auto layerfs = MountCandidate(candidate, setup, SideDirs::Of(plain.upper, layerfs_dirs.work, layerfs_dirs.mnt));
  if (!layerfs.ok()) return failure + "layerfs cannot mount the kernel's upper: " + layerfs.status().message() + "\n";
  opt = OptionsFor(candidate);
  opt.compare_ino_identity = false;  // overlayfs without index breaks lower hard links on copy-up
  diffs = CompareTrees(plain_tree, SnapshotTree(layerfs_dirs.mnt, &errors), opt);
  (void)(*layerfs)->Unmount();
  if (!diffs.empty()) failure += "  layerfs on the kernel's upper (index=off; expected = that kernel's tree):\n" + Lines(diffs);
  if (!errors.empty()) failure += "  walk errors on swapped uppers:\n" + errors;
  return failure;
}

// Runs ops on both sides from fresh uppers; returns "" when they agree, else what differed.
std::string RunCase(const SeedSetup& setup, Candidate candidate, const std::vector<Op>& ops, bool remount) {
  static int run = 0;
  fs::path base = setup.dir() / ("run" + std::to_string(run++));
  SideDirs ref_dirs(base, "overlay"), cand_dirs(base, "cand");
  auto ref = MountKernelOverlay(setup.lowers(), ref_dirs.upper, ref_dirs.work, ref_dirs.mnt);
  if (!ref.ok()) return "reference mount failed: " + ref.status().message();
  auto cand = MountCandidate(candidate, setup, cand_dirs);
  if (!cand.ok()) return std::string(CandidateName(candidate)) + " mount failed: " + cand.status().message();

  std::string failure;
  for (size_t i = 0; i < ops.size() && failure.empty(); ++i) {
    std::string r = ApplyOp(ref_dirs.mnt, ops[i]);
    std::string c = ApplyOp(cand_dirs.mnt, ops[i]);
    if (r != c)
      failure = "op #" + std::to_string(i) + " " + Describe(ops[i]) + ": overlayfs -> " + r + ", " +
                CandidateName(candidate) + " -> " + c + "\n";
  }
  std::string errors;
  Tree ref_tree = SnapshotTree(ref_dirs.mnt, &errors);
  Tree cand_tree = SnapshotTree(cand_dirs.mnt, &errors);
  auto diffs = CompareTrees(ref_tree, cand_tree, OptionsFor(candidate));
  if (!errors.empty()) failure += "  walk errors:\n" + errors;
  if (!diffs.empty()) failure += "  trees differ (expected = overlayfs):\n" + Lines(diffs);
  if (!failure.empty() || !remount) return failure;

  Status st = (*cand)->Unmount();
  if (!st.ok()) return "unmount failed: " + st.message();
  auto again = MountCandidate(candidate, setup, cand_dirs);
  if (!again.ok()) return "remount failed: " + again.status().message();
  Tree remounted = SnapshotTree(cand_dirs.mnt, &errors);
  CompareOptions opt = OptionsFor(candidate);
  opt.merged_dir_nlink_one = false;
  opt.compare_raw_ino = opt.compare_ino_identity;
  diffs = CompareTrees(cand_tree, remounted, opt);
  if (!errors.empty()) failure += "  walk errors after remount:\n" + errors;
  if (!diffs.empty()) failure += "  tree changed across remount (expected = before):\n" + Lines(diffs);
  if (!failure.empty() || candidate == Candidate::kLayerfs) return failure;
  st = (*again)->Unmount();
  if (st.ok()) st = (*ref)->Unmount();
  if (!st.ok()) return "unmount failed: " + st.message();
  return CrossCheck(setup, candidate, ops, base, cand_dirs, ref_tree);
}

std::string DescribeLayers(const std::vector<LayerSpec>& layers) {
  std::string out;
  for (size_t i = 0; i < layers.size(); ++i) {
    out += "  layer " + std::to_string(i) + ":";
    for (const auto& e : layers[i]) {
      static const char* kTypes[] = {"f", "d", "l", "p", "c", "b", "s", "wh"};
      out += " " + e.path + "(" + kTypes[static_cast<int>(e.type)] + (e.opaque ? ",opaque" : "") +
             (e.hardlink.empty() ? "" : ",link=" + e.hardlink) + ")";
    }
    out += "\n";
  }
  return out;
}

// Seeds (at the default 60 ops) that show a known, documented layerfs deviation (docs/upper-format.md,
// "Known deviations"). They must keep failing: one that starts to match is reported, so the list
// only ever shrinks. Empty: seeds 1-300 all match (28 and 239, hard-link groups, were fixed).
const std::set<int> kKnownLayerfsDeviations = {};

// `layerfs overlay` has no list: seeds 1-200 match (uppers swapped both ways included).
bool IsKnownDeviation(Candidate candidate, int seed, int ops_per_seed) {
  return candidate == Candidate::kLayerfs && ops_per_seed == 60 && kKnownLayerfsDeviations.count(seed) > 0;
}

void RunSeeds(Candidate candidate, int seeds, int ops_per_seed, int first_seed) {
  int failures = 0, shrunk = 0;
  for (int seed = first_seed; seed < first_seed + seeds; ++seed) {
    SeedSetup setup(seed);
    Status st = setup.Prepare(candidate);
    ASSERT_TRUE(st.ok()) << "seed " << seed << ": " << st.message();
    auto ops = RandomOps(seed, ops_per_seed, PathsOf(setup.layers()));
    std::string failure = RunCase(setup, candidate, ops, /*remount=*/true);
    if (IsKnownDeviation(candidate, seed, ops_per_seed)) {
      if (failure.empty()) ADD_FAILURE() << "seed " << seed << " now matches overlayfs: drop it from kKnownLayerfsDeviations";
      else
        std::printf("seed %d: known deviation (see kKnownLayerfsDeviations)\n", seed);
      continue;
    }
    if (failure.empty()) continue;
    ++failures;
    std::string baseline = RunCase(setup, candidate, {}, true);
    if (!baseline.empty()) {  // nothing to shrink: it fails before any operation
      ADD_FAILURE() << "seed " << seed << " fails with no operations at all:\n"
                    << baseline
                    << "layers (bottom first):\n"
                    << DescribeLayers(setup.layers());
      if (baseline.find("mount failed") != std::string::npos) return;  // every seed would
      continue;
    }
    std::string report = "seed " + std::to_string(seed) + " fails:\n" + failure;
    if (shrunk++ < 3) {  // shrinking costs many mounts: only for the first few failing seeds
      auto fails = [&](const std::vector<Op>& subset) { return !RunCase(setup, candidate, subset, true).empty(); };
      auto minimal = ShrinkOps(ops, fails);
      report += "layers (bottom first):\n" + DescribeLayers(setup.layers());
      report += "minimal sequence (" + std::to_string(minimal.size()) + " of " + std::to_string(ops.size()) + " ops):\n";
      for (const auto& op : minimal) report += "    " + Describe(op) + "\n";
      report += "which gives:\n" + RunCase(setup, candidate, minimal, true);
    }
    ADD_FAILURE() << report;
  }
  ::testing::Test::RecordProperty("failing_seeds", failures);
  std::printf("%s vs kernel overlayfs: %d seeds x %d ops, %d failing\n", CandidateName(candidate), seeds,
              ops_per_seed, failures);
}

class Differential : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "kernel overlayfs (the reference) needs root";
  }
};

TEST_F(Differential, LayerfsMatchesKernelOverlayfs) {
  RunSeeds(Candidate::kLayerfs, EnvInt("LAYERFS_DIFF_SEEDS", 100), EnvInt("LAYERFS_DIFF_OPS", 60),
           EnvInt("LAYERFS_DIFF_SEED_BASE", 1));
}

// Same lower directories for both: kernel overlayfs and `layerfs overlay`, then uppers swapped.
TEST_F(Differential, LayerfsOverlayMatchesKernelOverlayfs) {
  RunSeeds(Candidate::kLayerfsOverlay, EnvInt("LAYERFS_DIFF_OVERLAY_SEEDS", 60), EnvInt("LAYERFS_DIFF_OPS", 60),
           EnvInt("LAYERFS_DIFF_SEED_BASE", 1));
}

TEST_F(Differential, LayerfsOverlayNoOpenMatchesKernelOverlayfs) {
  RunSeeds(Candidate::kLayerfsOverlayNoOpen, EnvInt("LAYERFS_DIFF_NOOPEN_SEEDS", 30), EnvInt("LAYERFS_DIFF_OPS", 60),
           EnvInt("LAYERFS_DIFF_SEED_BASE", 1));
}

// Validates the harness itself against a second, independent implementation of overlay
// semantics: if this fails, suspect the harness (or fuse-overlayfs) before layerfs.
TEST_F(Differential, HarnessSelfCheckFuseOverlayfs) {
  if (access("/usr/bin/fuse-overlayfs", X_OK) != 0) GTEST_SKIP() << "fuse-overlayfs not installed";
  int seeds = EnvInt("LAYERFS_DIFF_SELFCHECK_SEEDS", 0);
  if (seeds == 0) GTEST_SKIP() << "set LAYERFS_DIFF_SELFCHECK_SEEDS to run";
  RunSeeds(Candidate::kFuseOverlayfs, seeds, EnvInt("LAYERFS_DIFF_OPS", 60),
           EnvInt("LAYERFS_DIFF_SEED_BASE", 1));
}

// ---------------------------------------------------------------------------------------------
// Fixed scenarios

// What a scenario saw, one line per call: "what: ok", "what: 4096" (a byte count) or
// "what: EINVAL". Equal records on overlayfs and layerfs mean the same calls gave the same results.
class Record {
 public:
  void Rc(const std::string& what, long rc) {
    lines_ += what + ": " + (rc < 0 ? ErrnoName(errno) : rc == 0 ? "ok"
                                                                 : std::to_string(rc)) +
              "\n";
  }
  void Text(const std::string& what, const std::string& value) { lines_ += what + ": " + value + "\n"; }
  const std::string& lines() const { return lines_; }

 private:
  static std::string ErrnoName(int err) {
    const char* name = strerrorname_np(err);
    return name ? name : "E" + std::to_string(err);
  }
  std::string lines_;
};

// Page-aligned memory, as O_DIRECT users allocate it (the alignment of user memory is not what
// the scenarios compare: see docs/upper-format.md).
class AlignedBuffer {
 public:
  explicit AlignedBuffer(size_t size) : size_(size) {
    if (posix_memalign(&data_, 4096, size) != 0) std::abort();
    for (size_t i = 0; i < size; ++i) bytes()[i] = static_cast<char>('a' + i % 23);
  }
  ~AlignedBuffer() { free(data_); }
  char* bytes() const { return static_cast<char*>(data_); }
  size_t size() const { return size_; }

 private:
  void* data_ = nullptr;
  size_t size_;
};

std::string ContentDigest(const fs::path& p) {
  std::string bytes = ReadAll(p);
  return std::to_string(bytes.size()) + " bytes, hash " + std::to_string(std::hash<std::string>{}(bytes));
}

// A user and a group it is not in, for the permission scenarios.
constexpr uid_t kUser = 1000;
constexpr gid_t kOtherGroup = 2000;

// A directory of group kOtherGroup with S_ISGID, writable by all (new entries inherit the group).
SpecEntry SetgidDir(const std::string& path) {
  SpecEntry e = DirEntry(path, 02777);
  e.gid = kOtherGroup;
  return e;
}

// The lowers every scenario starts from (bottom first).
std::vector<LayerSpec> ScenarioLayers() {
  std::string image(64 * 1024 + 1000, '\0');  // not a multiple of any block size
  for (size_t i = 0; i < image.size(); ++i) image[i] = static_cast<char>(i * 31 % 251);
  return {
      {DirEntry("d"), FileEntry("d/image", image), FileEntry("d/small", "lower small file\n")},
      {DirEntry("e"), FileEntry("e/notes", "second layer\n", 0640), FileEntry("e/tool", "#!/bin/sh\nexit 0\n", 0755),
       FileEntry("e/setgid", "setgid file\n", 02775, kUser, kOtherGroup), SetgidDir("e/shared")},
  };
}

// O_DIRECT as ext4 under overlayfs answers it: aligned offsets and lengths work on new, lower
// (read) and copied-up files; misaligned ones fail with EINVAL; reads stop at EOF; O_DIRECT
// O_DIRECT set and cleared with fcntl(F_SETFL) is DirectIoSetByFcntlScenario.
std::string DirectIoScenario(const fs::path& root) {
  Record r;
  AlignedBuffer buf(size_t{64} * 1024);
  int fd = open((root / "new").c_str(), O_CREAT | O_RDWR | O_DIRECT, 0644);
  r.Rc("create O_DIRECT", fd < 0 ? -1 : 0);
  r.Rc("write 4096 at 0", pwrite(fd, buf.bytes(), 4096, 0));
  r.Rc("write 512 at 4096", pwrite(fd, buf.bytes(), 512, 4096));
  r.Rc("write 4096 at 100", pwrite(fd, buf.bytes(), 4096, 100));
  r.Rc("write 100 at 0", pwrite(fd, buf.bytes(), 100, 0));
  r.Rc("read 8192 at 0", pread(fd, buf.bytes(), 8192, 0));
  r.Rc("read 512 at 4096", pread(fd, buf.bytes(), 512, 4096));
  r.Rc("read 512 at 10", pread(fd, buf.bytes(), 512, 10));
  close(fd);
  r.Text("new after direct writes", ContentDigest(root / "new"));

  fd = open((root / "d/image").c_str(), O_RDONLY | O_DIRECT);
  r.Rc("open lower O_DIRECT", fd < 0 ? -1 : 0);
  r.Rc("lower read 4096 at 0", pread(fd, buf.bytes(), 4096, 0));
  r.Text("lower bytes", std::to_string(std::hash<std::string>{}(std::string(buf.bytes(), 4096))));
  r.Rc("lower read 4096 at 1", pread(fd, buf.bytes(), 4096, 1));
  r.Rc("lower read 8192 at 61440 (past EOF)", pread(fd, buf.bytes(), 8192, 61440));
  close(fd);

  fd = open((root / "d/image").c_str(), O_RDWR | O_DIRECT);  // copies up
  r.Rc("open lower O_RDWR|O_DIRECT", fd < 0 ? -1 : 0);
  for (size_t i = 0; i < 4096; ++i) buf.bytes()[i] = 'Z';
  r.Rc("copied-up write 4096 at 8192", pwrite(fd, buf.bytes(), 4096, 8192));
  r.Rc("copied-up write 1000 at 8192", pwrite(fd, buf.bytes(), 1000, 8192));
  r.Rc("copied-up read 4096 at 8192", pread(fd, buf.bytes(), 4096, 8192));
  close(fd);
  r.Text("image after direct writes", ContentDigest(root / "d/image"));

  return r.lines();
}

// O_DIRECT from memory that is not aligned: ext4 refuses it (EINVAL).
std::string DirectIoUnalignedMemoryScenario(const fs::path& root) {
  Record r;
  AlignedBuffer buf(8192);
  int fd = open((root / "d/image").c_str(), O_RDWR | O_DIRECT);
  r.Rc("read into memory at +1", pread(fd, buf.bytes() + 1, 4096, 0));
  r.Rc("write from memory at +1", pwrite(fd, buf.bytes() + 1, 4096, 0));
  close(fd);
  return r.lines();
}

// O_DIRECT set and cleared with fcntl(F_SETFL) on an open file takes effect at once.
std::string DirectIoSetByFcntlScenario(const fs::path& root) {
  Record r;
  int fd = open((root / "d/small").c_str(), O_RDWR);
  r.Rc("buffered write 3 at 1", pwrite(fd, "XYZ", 3, 1));
  r.Rc("F_SETFL O_DIRECT", fcntl(fd, F_SETFL, O_DIRECT));
  r.Rc("now-direct write 3 at 1", pwrite(fd, "XYZ", 3, 1));
  r.Rc("F_SETFL 0", fcntl(fd, F_SETFL, 0));
  r.Rc("buffered again write 3 at 5", pwrite(fd, "abc", 3, 5));
  close(fd);
  r.Text("small after", ContentDigest(root / "d/small"));
  return r.lines();
}

// The mount's flags as a caller meets them: statvfs, exec permission, PROT_EXEC, creating.
std::string MountFlagsScenario(const fs::path& root) {
  Record r;
  struct statvfs sv {};
  r.Rc("statvfs", statvfs(root.c_str(), &sv));
  static const std::pair<unsigned long, const char*> kNames[] = {
      {ST_RDONLY, "ro"}, {ST_NOSUID, "nosuid"}, {ST_NODEV, "nodev"}, {ST_NOEXEC, "noexec"}, {ST_SYNCHRONOUS, "sync"}, {ST_NOATIME, "noatime"}, {ST_NODIRATIME, "nodiratime"}, {ST_RELATIME, "relatime"}};
  std::string names;
  for (const auto& [bit, name] : kNames)
    if (sv.f_flag & bit) names += std::string(" ") + name;
  r.Text("statvfs flags", names);
  r.Rc("access X_OK", access((root / "e/tool").c_str(), X_OK));
  int fd = open((root / "e/tool").c_str(), O_RDONLY);
  void* map = mmap(nullptr, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE, fd, 0);
  r.Rc("mmap PROT_EXEC", map == MAP_FAILED ? -1 : 0);
  if (map != MAP_FAILED) munmap(map, 4096);
  close(fd);
  fd = open((root / "created").c_str(), O_CREAT | O_WRONLY, 0644);
  r.Rc("create", fd < 0 ? -1 : 0);
  if (fd >= 0) close(fd);
  return r.lines();
}

// "moved" when path's atime is no longer `before`.
std::string AtimeMoved(const fs::path& path, const struct timespec& before) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) return "stat failed";
  return st.st_atim.tv_sec == before.tv_sec && st.st_atim.tv_nsec == before.tv_nsec ? "kept" : "moved";
}

struct timespec Atime(const fs::path& path) {
  struct stat st {};
  stat(path.c_str(), &st);
  return st.st_atim;
}

// Sets path's atime to 2001 (older than its mtime: relatime updates it on the next access).
void AgeAtime(const fs::path& path) {
  struct timespec times[2] = {{1000000000, 0}, {0, UTIME_OMIT}};
  utimensat(AT_FDCWD, path.c_str(), times, 0);
}

int Exec(const fs::path& program) {
  pid_t pid = fork();
  if (pid == 0) {
    execl(program.c_str(), program.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

// Which accesses move atime: reads and an exec of upper files (new, copied up), a second read
// at once (relatime: only the first moves it), a read of a lower file (never: overlayfs opens
// its real files O_NOATIME and touches only upper atimes).
std::string AtimeScenario(const fs::path& root) {
  Record r;
  WriteAll(root / "new", "new file\n");
  WriteAll(root / "true", ReadAll("/bin/true"));
  chmod((root / "true").c_str(), 0755);
  for (const char* name : {"new", "d/small", "true"}) AgeAtime(root / name);  // d/small: copied up
  for (const char* name : {"new", "d/small"}) {
    struct timespec before = Atime(root / name);
    ReadAll(root / name);
    r.Text(std::string("read ") + name, AtimeMoved(root / name, before));
    before = Atime(root / name);
    usleep(20000);  // past the kernel's coarse clock tick: strictatime would move it again
    ReadAll(root / name);
    r.Text(std::string("read again ") + name, AtimeMoved(root / name, before));
  }
  struct timespec before = Atime(root / "true");
  r.Rc("exec", Exec(root / "true"));
  r.Text("exec true", AtimeMoved(root / "true", before));
  before = Atime(root / "e/notes");
  ReadAll(root / "e/notes");
  r.Text("read lower e/notes", AtimeMoved(root / "e/notes", before));
  return r.lines();
}

// mount(2) MS_REMOUNT to read-only and back, as `mount -o remount,ro` does.
std::string RemountScenario(const fs::path& root) {
  Record r;
  WriteAll(root / "before", "x");
  r.Rc("remount ro", mount(nullptr, root.c_str(), nullptr, MS_REMOUNT | MS_RDONLY, nullptr));
  r.Rc("create on ro", open((root / "created").c_str(), O_CREAT | O_WRONLY, 0644) < 0 ? -1 : 0);
  r.Rc("open for write on ro", open((root / "before").c_str(), O_WRONLY) < 0 ? -1 : 0);
  r.Rc("chmod lower on ro", chmod((root / "d/small").c_str(), 0600));
  r.Text("read on ro", ReadAll(root / "before"));
  r.Rc("remount rw", mount(nullptr, root.c_str(), nullptr, MS_REMOUNT, nullptr));
  int fd = open((root / "created").c_str(), O_CREAT | O_WRONLY, 0644);
  r.Rc("create on rw", fd < 0 ? -1 : 0);
  if (fd >= 0) close(fd);
  r.Rc("chmod lower on rw", chmod((root / "d/small").c_str(), 0600));
  return r.lines();
}

// Runs fn as kUser (group kUser only) in a child; "ok" or the errno name of its failure.
std::string AsUser(const std::function<int()>& fn) {
  pid_t pid = fork();
  if (pid == 0) {
    if (setgroups(0, nullptr) != 0 || setresgid(kUser, kUser, kUser) != 0 || setresuid(kUser, kUser, kUser) != 0) _exit(255);
    umask(022);
    _exit(fn() == 0 ? 0 : errno);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  int code = WIFEXITED(status) ? WEXITSTATUS(status) : 254;
  if (code == 0) return "ok";
  const char* name = strerrorname_np(code);
  return name ? name : "exit " + std::to_string(code);
}

std::string ModeOwner(const fs::path& path) {
  struct stat st {};
  if (lstat(path.c_str(), &st) != 0) return "missing";
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%04o %u:%u", st.st_mode & 07777, st.st_uid, st.st_gid);
  return buf;
}

// The kernel's S_ISGID rules: a chmod by the owner who is not in the file's group drops it, a
// write or truncate by a non-root user drops it (with group exec), a file created with it in a
// setgid directory of a group the creator is not in drops it, a directory made there keeps the
// directory's S_ISGID. On a lower file (copied up by the change) and on an upper one.
std::string SetgidScenario(const fs::path& root) {
  Record r;
  WriteAll(root / "upper-sgid", "x\n");
  chown((root / "upper-sgid").c_str(), kUser, kOtherGroup);
  chmod((root / "upper-sgid").c_str(), 02775);
  for (const char* name : {"e/setgid", "upper-sgid"}) {
    fs::path p = root / name;
    r.Text(std::string("chmod 02775 by owner ") + name, AsUser([&] { return chmod(p.c_str(), 02775); }));
    r.Text(std::string("mode ") + name, ModeOwner(p));
    chmod(p.c_str(), 02775);
    r.Text(std::string("append by owner ") + name, AsUser([&] {
             int fd = open(p.c_str(), O_WRONLY | O_APPEND);
             return fd >= 0 && write(fd, "y", 1) == 1 ? close(fd) : -1;
           }));
    r.Text(std::string("mode after write ") + name, ModeOwner(p));
    chmod(p.c_str(), 02775);
    r.Text(std::string("truncate by owner ") + name, AsUser([&] { return truncate(p.c_str(), 1); }));
    r.Text(std::string("mode after truncate ") + name, ModeOwner(p));
  }
  fs::path file = root / "e/shared/file", dir = root / "e/shared/dir";
  r.Text("create 02755 in setgid dir", AsUser([&] {
           int fd = open(file.c_str(), O_CREAT | O_WRONLY, 02755);
           return fd >= 0 ? close(fd) : -1;
         }));
  r.Text("new file", ModeOwner(file));
  r.Text("mkdir 0755 in setgid dir", AsUser([&] { return mkdir(dir.c_str(), 0755); }));
  r.Text("new dir", ModeOwner(dir));
  return r.lines();
}

// Runs a shell script with the mount root as $R (and the harness's user as $U); its output and
// exit status, with the root's path taken out of the output.
std::string Shell(const fs::path& root, const std::string& script) {
  std::string cmd = "R='" + root.string() + "' U=" + std::to_string(kUser) + " G=" + std::to_string(kOtherGroup) +
                    " sh -c '" + script + "' 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return "popen failed";
  std::string out;
  char buf[4096];
  while (size_t n = fread(buf, 1, sizeof(buf), p)) out.append(buf, n);
  int status = pclose(p);
  for (size_t at; (at = out.find(root.string())) != std::string::npos;) out.replace(at, root.string().size(), "$R");
  return out + "exit " + std::to_string(WIFEXITED(status) ? WEXITSTATUS(status) : -1);
}

// POSIX ACLs with the acl tools: default ACLs set with setfacl -d are inherited by new files
// and directories (mode from the ACL, not the umask; with a setgid directory too), the umask
// applies where there is none, named entries are enforced, chmod rewrites the mask, an access
// ACL set on a lower file copies it up, and one set by an owner outside the file's group drops
// S_ISGID.
std::string PosixAclScenario(const fs::path& root) {
  Record r;
  r.Text("default acl", Shell(root, R"(mkdir $R/acl && setfacl -d -m u::rwx,g::r-x,o::---,u:$U:rwx $R/acl &&
    umask 022 && touch $R/acl/file && mkdir $R/acl/sub && mkdir -m 0700 $R/acl/private &&
    stat -c "%n %a %u:%g" $R/acl/file $R/acl/sub $R/acl/private && getfacl -cnp $R/acl/file $R/acl/sub)"));
  r.Text("umask without acl", Shell(root, R"(mkdir $R/plain && umask 027 && touch $R/plain/file && mkdir $R/plain/sub &&
    stat -c "%n %a" $R/plain/file $R/plain/sub && getfacl -cnp $R/plain/file)"));
  r.Text("setgid dir", Shell(root, R"(mkdir $R/sg && chown 0:$G $R/sg && chmod 2777 $R/sg && setfacl -d -m g::rwx,o::r-x $R/sg &&
    setpriv --reuid $U --regid $U --clear-groups sh -c "umask 077; touch $R/sg/file; mkdir $R/sg/sub" &&
    stat -c "%n %a %u:%g" $R/sg/file $R/sg/sub && getfacl -cnp $R/sg/sub)"));
  r.Text("enforced", Shell(root, R"(echo x > $R/guarded && chmod 644 $R/guarded && setfacl -m u:$U:--- $R/guarded &&
    setpriv --reuid $U --regid $U --clear-groups cat $R/guarded; chmod 604 $R/guarded && getfacl -cnp $R/guarded)"));
  r.Text("lower file", Shell(root, R"(setfacl -m u:$U:rw $R/d/small && getfacl -cnp $R/d/small && stat -c "%a" $R/d/small)"));
  r.Text("setgid dropped", Shell(root, R"(echo x > $R/sgfile && chown $U:$G $R/sgfile && chmod 2775 $R/sgfile &&
    setpriv --reuid $U --regid $U --clear-groups setfacl -m u:0:r $R/sgfile; stat -c "%a" $R/sgfile)"));
  return r.lines();
}

// chattr / lsattr (FS_IOC_GETFLAGS / SETFLAGS): flags of lower and new files, immutable and
// append-only enforced (write, append, unlink, rename), flags on a lower file copy it up,
// nodump and noatime on a directory, immutable refused to a non-root caller.
std::string ChattrScenario(const fs::path& root) {
  Record r;
  r.Text("lower flags", Shell(root, R"(lsattr $R/d/small; lsattr -d $R/d)"));
  r.Text("immutable", Shell(root, R"(echo x > $R/frozen && chattr +i $R/frozen && lsattr $R/frozen;
    echo y > $R/frozen; echo y >> $R/frozen; rm -f $R/frozen; mv $R/frozen $R/moved; ln $R/frozen $R/linked;
    chmod 600 $R/frozen; chattr -i $R/frozen && rm $R/frozen && echo removed)"));
  r.Text("append-only lower", Shell(root, R"(chattr +a $R/d/small && lsattr $R/d/small; echo y > $R/d/small;
    echo y >> $R/d/small && cat $R/d/small; chattr -a $R/d/small)"));
  r.Text("directory", Shell(root, R"(mkdir $R/nodump && chattr +dA $R/nodump && lsattr -d $R/nodump; chattr +i $R/e &&
    touch $R/e/new; rm -f $R/e/notes; chattr -i $R/e; lsattr -d $R/e)"));
  r.Text("non-root", Shell(root, R"(echo x > $R/mine && chown $U $R/mine &&
    setpriv --reuid $U --regid $U --clear-groups sh -c "chattr +i $R/mine; chattr +d $R/mine"; lsattr $R/mine)"));
  return r.lines();
}

// name_to_handle_at / open_by_handle_at of a live file. Kernel overlayfs without nfs_export
// refuses the first (EOPNOTSUPP); a FUSE mount always offers it (docs/upper-format.md).
std::string FileHandleScenario(const fs::path& root) {
  Record r;
  WriteAll(root / "handled", "x");
  std::vector<char> storage(sizeof(file_handle) + MAX_HANDLE_SZ);
  auto* handle = reinterpret_cast<file_handle*>(storage.data());
  handle->handle_bytes = MAX_HANDLE_SZ;
  int mount_id = 0;
  for (const char* name : {"handled", "d/small"}) {
    handle->handle_bytes = MAX_HANDLE_SZ;
    int rc = name_to_handle_at(AT_FDCWD, (root / name).c_str(), handle, &mount_id, 0);
    r.Rc(std::string("name_to_handle_at ") + name, rc);
    if (rc != 0) continue;
    int mount_fd = open(root.c_str(), O_RDONLY | O_DIRECTORY);
    int fd = open_by_handle_at(mount_fd, handle, O_RDONLY);
    r.Rc(std::string("open_by_handle_at ") + name, fd < 0 ? -1 : 0);
    if (fd >= 0) close(fd);
    close(mount_fd);
  }
  return r.lines();
}

// Where a scenario is known to differ from kernel overlayfs (docs/upper-format.md): there it
// must keep differing, so that a fix shows up and the mark goes.
enum class Known { kMatches,
                   kDiffersWithPassthrough,
                   kDiffersWithoutPassthrough,
                   kDiffersOnLibfuse314,
                   kDiffers };

struct Scenario {
  const char* name;
  std::function<std::string(const fs::path& root)> run;
  Known known = Known::kMatches;
  const char* options = "";  // mount(8) options for every mount of the scenario
  const char* needs = "";    // a program the scenario runs (else it would compare two "not found")
};

void PrintTo(const Scenario& s, std::ostream* os) { *os << s.name; }

const Scenario kScenarios[] = {
    {"direct_io", DirectIoScenario},
    // Passthrough: the kernel reads and writes the inode's shared backing file with that file's
    // own flags; fcntl(F_SETFL) reaches neither it nor the daemon.
    {"direct_io_set_by_fcntl", DirectIoSetByFcntlScenario, Known::kDiffersWithPassthrough},
    // Without passthrough the kernel copies the caller's data into the request: any memory works.
    {"direct_io_unaligned_memory", DirectIoUnalignedMemoryScenario, Known::kDiffersWithoutPassthrough},
    {"mount_flags_default", MountFlagsScenario},
    {"mount_flags_nosuid_nodev_noexec", MountFlagsScenario, Known::kMatches, "nosuid,nodev,noexec"},
    {"mount_flags_ro", MountFlagsScenario, Known::kMatches, "ro"},
    {"mount_flags_sync_nodiratime", MountFlagsScenario, Known::kMatches, "sync,dirsync,nodiratime,lazytime"},
    {"mount_flags_strictatime", MountFlagsScenario, Known::kMatches, "noatime,strictatime"},
    {"atime_relatime", AtimeScenario, Known::kMatches, "relatime"},
    // Passthrough: the kernel opens each open's backing file itself, with the caller's flags on
    // the upper's own mount (relatime), so reads move the upper atime whatever the daemon asks.
    {"atime_noatime", AtimeScenario, Known::kDiffersWithPassthrough, "noatime"},
    // The daemon's reads leave atime to the upper's filesystem (relatime here): a second read
    // does not move it again as strictatime would.
    {"atime_strictatime", AtimeScenario, Known::kDiffers, "strictatime"},
    {"remount_ro_rw", RemountScenario},
    {"setgid", SetgidScenario},
    {"posix_acl", PosixAclScenario, Known::kMatches, "", "/usr/bin/setfacl"},
    {"chattr", ChattrScenario, Known::kMatches, "", "/usr/bin/chattr"},
    // With libfuse >= 3.17 the daemon refuses handles (FUSE_NO_EXPORT_SUPPORT): EOPNOTSUPP, as
    // overlayfs. libfuse 3.14 cannot say so: the kernel encodes handles, which open while it
    // keeps the inode and give ESTALE once it has forgotten it (node ids do not outlive that).
    {"file_handles", FileHandleScenario, Known::kDiffersOnLibfuse314},
};

// Built against libfuse >= 3.17 (CMake defines LAYERFS_HAVE_PASSTHROUGH exactly then).
#if LAYERFS_HAVE_PASSTHROUGH
constexpr bool kLibfuse317 = true;
#else
constexpr bool kLibfuse317 = false;
#endif

// This build serves reads and writes by FUSE passthrough here (fs/engine/passthrough.h: libfuse
// 3.17, root in the initial user namespace; the kernel of this machine has it).
bool PassthroughActive() {
#if LAYERFS_HAVE_PASSTHROUGH
  const char* off = std::getenv("LAYERFS_PASSTHROUGH");
  return geteuid() == 0 && !(off && (std::strcmp(off, "off") == 0 || std::strcmp(off, "0") == 0));
#else
  return false;
#endif
}

class ScenarioTest : public ::testing::TestWithParam<Scenario> {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "kernel overlayfs (the reference) needs root";
  }

  // The scenario on kernel overlayfs and on `candidate`, each from fresh uppers over the same lowers.
  void Compare(Candidate candidate) {
    if (*GetParam().needs && access(GetParam().needs, X_OK) != 0)
      GTEST_SKIP() << GetParam().needs << " is not installed (.ci/install-deps)";
    SeedSetup setup(ScenarioLayers());
    ASSERT_TRUE(setup.Prepare(candidate).ok());
    SideDirs ref_dirs(setup.dir(), "overlay"), cand_dirs(setup.dir(), "cand");
    MountFlags flags;
    for (const std::string& option : SplitOverlayOptions(GetParam().options))
      ASSERT_TRUE(option.empty() || flags.Parse(option)) << option;
    auto ref = MountKernelOverlay(setup.lowers(), ref_dirs.upper, ref_dirs.work, ref_dirs.mnt, /*index=*/true,
                                  "redirect_dir=on", flags);
    ASSERT_TRUE(ref.ok()) << ref.status().message();
    auto cand = candidate == Candidate::kLayerfs
                    ? MountLayerfs(setup.store_root(), setup.diff_ids(), cand_dirs.upper, cand_dirs.work,
                                   cand_dirs.mnt, flags)
                    : MountLayerfsOverlay(setup.lowers(), cand_dirs.upper, cand_dirs.work, cand_dirs.mnt,
                                          GetParam().options);
    ASSERT_TRUE(cand.ok()) << cand.status().message();
    std::string expected = GetParam().run(ref_dirs.mnt);
    std::string actual = GetParam().run(cand_dirs.mnt);
    if (std::getenv("LAYERFS_SCENARIO_PRINT") != nullptr) std::printf("kernel overlayfs:\n%s", expected.c_str());
    Known known = GetParam().known;
    bool passthrough = PassthroughActive();
    if (known == Known::kDiffers || (known == Known::kDiffersWithPassthrough && passthrough) ||
        (known == Known::kDiffersWithoutPassthrough && !passthrough) ||
        (known == Known::kDiffersOnLibfuse314 && !kLibfuse317))
      EXPECT_NE(actual, expected) << "now matches kernel overlayfs: drop its Known mark";
    else
      EXPECT_EQ(actual, expected) << CandidateName(candidate) << " differs from kernel overlayfs";
    EXPECT_TRUE((*cand)->Unmount().ok());
    EXPECT_TRUE((*ref)->Unmount().ok());
  }
};

TEST_P(ScenarioTest, LayerfsMatchesKernelOverlayfs) { Compare(Candidate::kLayerfs); }
TEST_P(ScenarioTest, LayerfsOverlayMatchesKernelOverlayfs) { Compare(Candidate::kLayerfsOverlay); }

INSTANTIATE_TEST_SUITE_P(Differential, ScenarioTest, ::testing::ValuesIn(kScenarios),
                         [](const auto& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace layerfs::fstest
