// fsops: the timed file-system operations of the bench harness (bench/run.py compiles it with
// g++ -O2). Each subcommand does one workload on a directory or file and prints one JSON line
// with its own wall time, so interpreter start-up never lands in a measurement.
//
//   fsops walk DIR                   lstat every entry (readdir + fstatat), metadata digest
//   fsops readall DIR [SKIP]         read every regular file to the end (SKIP: a top dir to leave out)
//   fsops seqread FILE               read FILE sequentially with 1 MiB reads
//   fsops randread FILE SECONDS      4 KiB preads at random aligned offsets for SECONDS
//   fsops firstwrite LISTFILE ROOT   open O_WRONLY + write 1 byte at 0 for each listed path
//   fsops churn DIR COUNT SIZE       create+write COUNT files of SIZE bytes, then unlink them
//   fsops statlist LISTFILE ROOT     lstat each listed path
//
// The walk digest (order-independent sum of per-entry FNV-1a hashes over path, type, mode, uid,
// gid and size) lets the harness check that every implementation shows the same tree.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "fsops: %s: %s\n", what.c_str(), std::strerror(errno));
  std::exit(1);
}

uint64_t Fnv1a(const void* data, size_t len, uint64_t h = 1469598103934665603ull) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < len; ++i) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

struct WalkTotals {
  uint64_t entries = 0;
  uint64_t digest = 0;
};

uint64_t EntryHash(const std::string& path, const struct stat& st) {
  uint64_t h = Fnv1a(path.data(), path.size());
  uint64_t fields[] = {st.st_mode, st.st_uid, st.st_gid, S_ISDIR(st.st_mode) ? 0 : uint64_t(st.st_size)};
  return Fnv1a(fields, sizeof fields, h);
}

// Recursive walk on directory fds: one openat per directory, one fstatat per entry.
void Walk(int dirfd, const std::string& rel, WalkTotals* totals) {
  DIR* dir = fdopendir(dirfd);
  if (!dir) Die("fdopendir " + rel);
  while (dirent* de = readdir(dir)) {
    if (!std::strcmp(de->d_name, ".") || !std::strcmp(de->d_name, "..")) continue;
    struct stat st;
    if (fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) Die("stat " + rel + de->d_name);
    std::string path = rel + de->d_name;
    totals->entries++;
    totals->digest += EntryHash(path, st);
    if (S_ISDIR(st.st_mode)) {
      int fd = openat(dirfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
      if (fd < 0) Die("open " + path);
      Walk(fd, path + "/", totals);
    }
  }
  closedir(dir);
}

int CmdWalk(const char* root) {
  auto start = Clock::now();
  int fd = open(root, O_RDONLY | O_DIRECTORY);
  if (fd < 0) Die(std::string("open ") + root);
  WalkTotals totals;
  Walk(fd, "", &totals);
  std::printf("{\"seconds\": %.6f, \"entries\": %llu, \"digest\": \"%016llx\"}\n", SecondsSince(start),
              (unsigned long long)totals.entries, (unsigned long long)totals.digest);
  return 0;
}

uint64_t ReadFd(int fd, std::vector<char>& buf) {
  uint64_t total = 0;
  for (;;) {
    ssize_t n = read(fd, buf.data(), buf.size());
    if (n < 0) Die("read");
    if (n == 0) return total;
    total += n;
  }
}

void ReadAll(int dirfd, const char* skip, std::vector<char>& buf, uint64_t* files, uint64_t* bytes) {
  DIR* dir = fdopendir(dirfd);
  if (!dir) Die("fdopendir");
  while (dirent* de = readdir(dir)) {
    if (!std::strcmp(de->d_name, ".") || !std::strcmp(de->d_name, "..")) continue;
    if (de->d_type == DT_DIR) {
      if (skip && !std::strcmp(de->d_name, skip)) continue;
      int fd = openat(dirfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
      if (fd < 0) Die(std::string("open dir ") + de->d_name);
      ReadAll(fd, nullptr, buf, files, bytes);
    } else if (de->d_type == DT_REG) {
      int fd = openat(dirfd, de->d_name, O_RDONLY | O_NOFOLLOW);
      if (fd < 0) Die(std::string("open ") + de->d_name);
      *bytes += ReadFd(fd, buf);
      ++*files;
      close(fd);
    }
  }
  closedir(dir);
}

int CmdReadAll(const char* root, const char* skip) {
  std::vector<char> buf(128 << 10);
  auto start = Clock::now();
  int fd = open(root, O_RDONLY | O_DIRECTORY);
  if (fd < 0) Die(std::string("open ") + root);
  uint64_t files = 0, bytes = 0;
  ReadAll(fd, skip, buf, &files, &bytes);
  std::printf("{\"seconds\": %.6f, \"files\": %llu, \"bytes\": %llu}\n", SecondsSince(start),
              (unsigned long long)files, (unsigned long long)bytes);
  return 0;
}

int CmdSeqRead(const char* file) {
  std::vector<char> buf(1 << 20);
  auto start = Clock::now();
  int fd = open(file, O_RDONLY);
  if (fd < 0) Die(std::string("open ") + file);
  uint64_t bytes = ReadFd(fd, buf);
  close(fd);
  std::printf("{\"seconds\": %.6f, \"bytes\": %llu}\n", SecondsSince(start), (unsigned long long)bytes);
  return 0;
}

int CmdRandRead(const char* file, double seconds) {
  int fd = open(file, O_RDONLY);
  if (fd < 0) Die(std::string("open ") + file);
  struct stat st;
  if (fstat(fd, &st) != 0) Die("fstat");
  uint64_t blocks = st.st_size / 4096;
  std::mt19937_64 rng(12345);
  char buf[4096];
  uint64_t ops = 0;
  auto start = Clock::now();
  double elapsed = 0;
  while (elapsed < seconds) {
    for (int i = 0; i < 256; ++i, ++ops) {
      if (pread(fd, buf, sizeof buf, off_t(rng() % blocks) * 4096) != sizeof buf) Die("pread");
    }
    elapsed = SecondsSince(start);
  }
  close(fd);
  std::printf("{\"seconds\": %.6f, \"ops\": %llu}\n", elapsed, (unsigned long long)ops);
  return 0;
}

std::vector<std::string> ReadList(const char* listfile) {
  std::ifstream in(listfile);
  if (!in) Die(std::string("open ") + listfile);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) lines.push_back(line);
  return lines;
}

int CmdFirstWrite(const char* listfile, const std::string& root) {
  auto paths = ReadList(listfile);
  auto start = Clock::now();
  for (const auto& p : paths) {
    std::string full = root + "/" + p;
    int fd = open(full.c_str(), O_WRONLY);
    if (fd < 0) Die("open for write " + full);
    if (pwrite(fd, "x", 1, 0) != 1) Die("pwrite " + full);
    if (close(fd) != 0) Die("close " + full);
  }
  std::printf("{\"seconds\": %.6f, \"files\": %zu}\n", SecondsSince(start), paths.size());
  return 0;
}

int CmdChurn(const std::string& dir, int count, size_t size) {
  std::vector<char> data(size, 'c');
  auto start = Clock::now();
  if (mkdir(dir.c_str(), 0755) != 0) Die("mkdir " + dir);
  for (int i = 0; i < count; ++i) {
    std::string f = dir + "/f" + std::to_string(i);
    int fd = open(f.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0644);
    if (fd < 0) Die("create " + f);
    if (write(fd, data.data(), size) != ssize_t(size)) Die("write " + f);
    if (close(fd) != 0) Die("close " + f);
  }
  for (int i = 0; i < count; ++i) {
    std::string f = dir + "/f" + std::to_string(i);
    if (unlink(f.c_str()) != 0) Die("unlink " + f);
  }
  if (rmdir(dir.c_str()) != 0) Die("rmdir " + dir);
  std::printf("{\"seconds\": %.6f, \"files\": %d}\n", SecondsSince(start), count);
  return 0;
}

int CmdStatList(const char* listfile, const std::string& root) {
  auto paths = ReadList(listfile);
  for (auto& p : paths) p = root + "/" + p;
  auto start = Clock::now();
  struct stat st;
  for (const auto& p : paths)
    if (lstat(p.c_str(), &st) != 0) Die("lstat " + p);
  std::printf("{\"seconds\": %.6f, \"paths\": %zu}\n", SecondsSince(start), paths.size());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string cmd = argc > 1 ? argv[1] : "";
  if (cmd == "walk" && argc == 3) return CmdWalk(argv[2]);
  if (cmd == "readall" && (argc == 3 || argc == 4)) return CmdReadAll(argv[2], argc == 4 ? argv[3] : nullptr);
  if (cmd == "seqread" && argc == 3) return CmdSeqRead(argv[2]);
  if (cmd == "randread" && argc == 4) return CmdRandRead(argv[2], std::stod(argv[3]));
  if (cmd == "firstwrite" && argc == 4) return CmdFirstWrite(argv[2], argv[3]);
  if (cmd == "churn" && argc == 5) return CmdChurn(argv[2], std::stoi(argv[3]), std::strtoull(argv[4], nullptr, 10));
  if (cmd == "statlist" && argc == 4) return CmdStatList(argv[2], argv[3]);
  std::fprintf(stderr, "usage: fsops walk|readall|seqread|randread|firstwrite|churn|statlist ...\n");
  return 2;
}
