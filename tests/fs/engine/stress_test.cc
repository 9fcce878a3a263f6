// Stress: 8 threads of mixed operations on one layerfs mount for a bounded time, racing on the
// copy-up of the same lower files, renaming lower dirs and reading directories while others
// write; then every file must read back as the threads' models say, work/ must hold nothing
// left over, the unmount must be clean and a remount must show the same tree.
// Env: LAYERFS_STRESS_SECONDS (default 8), LAYERFS_STRESS_THREADS (default 8).
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include <gtest/gtest.h>

#include "tests/fs/fs_harness.h"
#include "tests/fs/tree_snapshot.h"

namespace layerfs::fstest {
namespace {

namespace fs = std::filesystem;

constexpr int kSharedFiles = 16;
constexpr size_t kBlock = 4096;

std::string Pattern(int thread, size_t len, uint32_t gen = 0) {
  std::string s(len, '\0');
  for (size_t i = 0; i < len; ++i) s[i] = static_cast<char>('A' + (thread * 7 + gen + i) % 26);
  return s;
}

std::string ReadFile(const fs::path& p, int* err) {
  int fd = open(p.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    *err = errno;
    return "";
  }
  std::string out;
  char buf[65536];
  ssize_t n;
  while ((n = read(fd, buf, sizeof(buf))) > 0) out.append(buf, n);
  *err = n < 0 ? errno : 0;
  close(fd);
  return out;
}

// Lower layout: shared/s<N> (kThreads blocks each, raced on by every thread), own/t<T>/ (a dir
// per thread with files, renamed back and forth by its thread), readonly/ (never written).
LayerSpec StressLayer(int threads) {
  LayerSpec layer;
  auto dir = [&](const std::string& p) {
    SpecEntry e;
    e.path = p;
    e.type = EntryType::kDirectory;
    e.mode = 0755;
    layer.push_back(e);
  };
  auto file = [&](const std::string& p, std::string content) {
    SpecEntry e;
    e.path = p;
    e.content = std::move(content);
    layer.push_back(e);
  };
  dir("own");
  for (int t = 0; t < threads; ++t) {
    dir("own/t" + std::to_string(t));
    for (int i = 0; i < 4; ++i) file("own/t" + std::to_string(t) + "/f" + std::to_string(i), Pattern(100 + t, 5000 + i));
  }
  dir("readonly");
  for (int i = 0; i < 8; ++i) file("readonly/r" + std::to_string(i), Pattern(200 + i, 30000));
  dir("shared");
  for (int i = 0; i < kSharedFiles; ++i) file("shared/s" + std::to_string(i), Pattern(300 + i, kBlock * threads));
  std::sort(layer.begin(), layer.end(), [](const SpecEntry& a, const SpecEntry& b) { return a.path < b.path; });
  return layer;
}

struct Shared {
  fs::path root;
  int threads = 0;
  std::atomic<bool> stop{false};
  std::mutex mu;
  std::vector<std::string> errors;
  // written[file][thread]: the thread's block of that shared file holds its pattern.
  std::vector<std::vector<std::atomic<bool>>> written;
  std::vector<std::vector<std::atomic<bool>>> xattr_set;  // [file][thread]: user.t<thread> set
  void Error(const std::string& e) {
    std::lock_guard lock(mu);
    if (errors.size() < 50) errors.push_back(e);
  }
};

class Worker {
 public:
  Worker(Shared* s, int id) : s_(s), id_(id), rng_(id * 7919 + 1) {
    own_ = "own/t" + std::to_string(id);
    for (int i = 0; i < 4; ++i) files_["f" + std::to_string(i)] = Pattern(100 + id, 5000 + i);
  }

  void Run() {
    while (!s_->stop.load()) {
      switch (rng_() % 8) {
        case 0:
        case 1: WriteShared(); break;
        case 2: XattrShared(); break;
        case 3: WriteOwn(); break;
        case 4: RenameOwnDir(); break;
        case 5: CheckOwn(); break;
        case 6: ListShared(); break;
        case 7: CreateOrRemove(); break;
      }
      ++ops_;
    }
    CheckOwn();
  }

  const std::map<std::string, std::string>& files() const { return files_; }
  const std::string& own() const { return own_; }
  uint64_t ops() const { return ops_; }

 private:
  fs::path Own(const std::string& name) const { return s_->root / own_ / name; }

  // Every thread writes its own block of the same lower files: the copy-up races.
  void WriteShared() {
    int f = rng_() % kSharedFiles;
    fs::path p = s_->root / "shared" / ("s" + std::to_string(f));
    int fd = open(p.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) return s_->Error("open " + p.string() + ": " + strerror(errno));
    std::string data = Pattern(id_, kBlock);
    if (pwrite(fd, data.data(), data.size(), id_ * kBlock) != static_cast<ssize_t>(kBlock))
      s_->Error("pwrite " + p.string() + ": " + strerror(errno));
    else
      s_->written[f][id_] = true;
    close(fd);
  }

  void XattrShared() {
    int f = rng_() % kSharedFiles;
    fs::path p = s_->root / "shared" / ("s" + std::to_string(f));
    std::string name = "user.t" + std::to_string(id_);
    if (lsetxattr(p.c_str(), name.c_str(), "1", 1, 0) != 0) s_->Error("setxattr " + p.string() + ": " + strerror(errno));
    else
      s_->xattr_set[f][id_] = true;
  }

  void WriteOwn() {
    auto it = std::next(files_.begin(), rng_() % files_.size());
    std::string data = Pattern(id_, 1 + rng_() % 9000, rng_());
    size_t off = rng_() % (it->second.size() + 1);
    int fd = open(Own(it->first).c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) return s_->Error("open " + Own(it->first).string() + ": " + strerror(errno));
    if (pwrite(fd, data.data(), data.size(), off) != static_cast<ssize_t>(data.size())) {
      s_->Error("pwrite " + Own(it->first).string() + ": " + strerror(errno));
    } else {
      if (it->second.size() < off + data.size()) it->second.resize(off + data.size());
      it->second.replace(off, data.size(), data);
    }
    close(fd);
  }

  // Renames this thread's (lower) directory away and back, checking it moved whole.
  void RenameOwnDir() {
    std::string away = own_ == "own/t" + std::to_string(id_) ? "own/moved" + std::to_string(id_) : "own/t" + std::to_string(id_);
    if (rename((s_->root / own_).c_str(), (s_->root / away).c_str()) != 0)
      return s_->Error("rename " + own_ + " -> " + away + ": " + strerror(errno));
    own_ = away;
  }

  void CheckOwn() {
    for (const auto& [name, content] : files_) {
      int err = 0;
      std::string got = ReadFile(Own(name), &err);
      if (err) s_->Error("read " + Own(name).string() + ": " + strerror(err));
      else if (got != content)
        s_->Error("content of " + Own(name).string() + " differs from the model (" +
                  std::to_string(got.size()) + " vs " + std::to_string(content.size()) + " bytes)");
    }
  }

  void ListShared() {
    for (const char* dir : {"shared", "readonly"}) {
      DIR* d = opendir((s_->root / dir).c_str());
      if (!d) return s_->Error(std::string("opendir ") + dir + ": " + strerror(errno));
      std::set<std::string> names;
      while (dirent* e = readdir(d))
        if (!names.insert(e->d_name).second) s_->Error(std::string("readdir ") + dir + ": duplicate " + e->d_name);
      closedir(d);
      size_t want = (std::string(dir) == "shared" ? kSharedFiles : 8) + 2;
      if (names.size() != want)
        s_->Error(std::string("readdir ") + dir + ": " + std::to_string(names.size()) + " names, want " + std::to_string(want));
    }
  }

  void CreateOrRemove() {
    std::string name = "n" + std::to_string(rng_() % 6);
    if (files_.count(name)) {
      if (unlink(Own(name).c_str()) != 0) return s_->Error("unlink " + Own(name).string() + ": " + strerror(errno));
      files_.erase(name);
      return;
    }
    std::string data = Pattern(id_, rng_() % 20000, rng_());
    int fd = open(Own(name).c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
    if (fd < 0) return s_->Error("create " + Own(name).string() + ": " + strerror(errno));
    if (write(fd, data.data(), data.size()) != static_cast<ssize_t>(data.size()))
      s_->Error("write " + Own(name).string() + ": " + strerror(errno));
    else
      files_[name] = data;
    close(fd);
  }

  Shared* s_;
  int id_;
  std::mt19937 rng_;
  std::string own_;
  std::map<std::string, std::string> files_;
  uint64_t ops_ = 0;
};

std::vector<std::string> CheckShared(const fs::path& root, const Shared& s) {
  std::vector<std::string> errors;
  for (int f = 0; f < kSharedFiles; ++f) {
    fs::path p = root / "shared" / ("s" + std::to_string(f));
    int err = 0;
    std::string got = ReadFile(p, &err);
    std::string lower = Pattern(300 + f, kBlock * s.threads);
    if (err || got.size() != lower.size()) {
      errors.push_back(p.string() + ": unreadable or wrong size " + std::to_string(got.size()));
      continue;
    }
    for (int t = 0; t < s.threads; ++t) {
      std::string block = got.substr(t * kBlock, kBlock);
      std::string want = s.written[f][t] ? Pattern(t, kBlock) : lower.substr(t * kBlock, kBlock);
      if (block != want) errors.push_back(p.string() + ": block of thread " + std::to_string(t) + " lost (" +
                                          (s.written[f][t] ? "write" : "lower data") + ")");
    }
  }
  return errors;
}

// Anything left in work/ after a clean unmount is a copy-up that never finished or leaked.
std::vector<std::string> WorkLeftovers(const fs::path& work) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : fs::recursive_directory_iterator(work, ec))
    if (!e.is_directory()) out.push_back(e.path().string());
  return out;
}

TEST(Stress, ThreadsRacingOnOneMount) {
  if (access("/dev/fuse", R_OK | W_OK) != 0) GTEST_SKIP() << "no /dev/fuse";
  int threads = std::max(8, EnvInt("LAYERFS_STRESS_THREADS", 8));
  int seconds = EnvInt("LAYERFS_STRESS_SECONDS", 8);
  TempDir tmp("layerfs-stress");
  auto store = Store::Open(tmp.path() / "store");
  ASSERT_TRUE(store.ok()) << store.status().message();
  auto tar = BuildLayerTar(StressLayer(threads));
  ASSERT_TRUE(tar.ok());
  auto diff_id = AddLayer(*store, *tar);
  ASSERT_TRUE(diff_id.ok()) << diff_id.status().message();
  fs::path upper = tmp.path() / "upper", work = tmp.path() / "work", mnt = tmp.path() / "mnt";
  for (const auto& d : {upper, work, mnt}) fs::create_directories(d);

  Shared shared;
  shared.root = mnt;
  shared.threads = threads;
  shared.written = std::vector<std::vector<std::atomic<bool>>>(kSharedFiles);
  for (auto& w : shared.written) w = std::vector<std::atomic<bool>>(threads);
  shared.xattr_set = std::vector<std::vector<std::atomic<bool>>>(kSharedFiles);
  for (auto& w : shared.xattr_set) w = std::vector<std::atomic<bool>>(threads);
  std::vector<std::unique_ptr<Worker>> workers;
  Tree before_unmount;
  {
    auto m = MountLayerfs(tmp.path() / "store", {*diff_id}, upper, work, mnt);
    ASSERT_TRUE(m.ok()) << m.status().message();
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t) {
      workers.push_back(std::make_unique<Worker>(&shared, t));
      pool.emplace_back([w = workers.back().get()] { w->Run(); });
    }
    std::this_thread::sleep_for(std::chrono::seconds(seconds));
    shared.stop = true;
    for (auto& t : pool) t.join();
    uint64_t ops = 0;
    for (const auto& w : workers) ops += w->ops();
    std::printf("stress: %d threads, %d s, %llu ops\n", threads, seconds, static_cast<unsigned long long>(ops));

    for (const auto& e : CheckShared(mnt, shared)) shared.errors.push_back(e);
    std::string walk_errors;
    before_unmount = SnapshotTree(mnt, &walk_errors);
    EXPECT_EQ(walk_errors, "") << "every file must be readable";
    for (int f = 0; f < kSharedFiles; ++f) {  // xattrs set by any thread must all be there
      const auto& xattrs = before_unmount["shared/s" + std::to_string(f)].xattrs;
      for (int t = 0; t < threads; ++t) {
        if (shared.xattr_set[f][t]) {
          EXPECT_EQ(xattrs.count("user.t" + std::to_string(t)), 1u) << "shared/s" << f;
        }
      }
    }
    Status st = (*m)->Unmount();
    EXPECT_TRUE(st.ok()) << "unmount: " << st.message();
  }
  for (const auto& e : shared.errors) ADD_FAILURE() << e;
  for (const auto& e : WorkLeftovers(work)) ADD_FAILURE() << "left in work/: " << e;

  auto again = MountLayerfs(tmp.path() / "store", {*diff_id}, upper, work, mnt);
  ASSERT_TRUE(again.ok()) << again.status().message();
  std::string walk_errors;
  Tree after = SnapshotTree(mnt, &walk_errors);
  EXPECT_EQ(walk_errors, "");
  CompareOptions opt;
  opt.compare_raw_ino = true;
  for (const auto& d : CompareTrees(before_unmount, after, opt)) ADD_FAILURE() << "after remount: " << d;
  for (const auto& e : CheckShared(mnt, shared)) ADD_FAILURE() << "after remount: " << e;
  EXPECT_TRUE((*again)->Unmount().ok());
}

}  // namespace
}  // namespace layerfs::fstest
