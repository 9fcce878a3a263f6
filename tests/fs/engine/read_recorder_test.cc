// --record-reads on a real mount: the image files opened, each once, first open first; a stat,
// a listing or a file the container made is not an open of an image file.
#include "fs/engine/read_recorder.h"

#include <fcntl.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "fs/mount/mount.h"
#include "tests/fs/file_helpers.h"
#include "tests/fs/fs_harness.h"

namespace layerfs::fstest {
namespace {

namespace fs = std::filesystem;

void OpenClose(const fs::path& p, int flags = O_RDONLY) {
  int fd = ::open(p.c_str(), flags | O_CLOEXEC, 0644);
  ASSERT_GE(fd, 0) << p;
  ::close(fd);
}

TEST(ReadRecorderTest, RecordsEachImageFileOnceInOrderOfFirstOpen) {
  TempDir tmp("layerfs-recordreads");
  auto store = Store::Open(tmp.path() / "store");
  ASSERT_TRUE(store.ok()) << store.status().message();
  auto bottom = AddLayer(*store, *BuildLayerTar({DirEntry("usr"), DirEntry("usr/bin"), FileEntry("usr/bin/python3", "elf"),
                                                 FileEntry("usr/bin/unused", "never opened")}));
  auto top = AddLayer(*store, *BuildLayerTar({DirEntry("usr"), DirEntry("usr/lib"), FileEntry("usr/lib/os.py", "import"),
                                              FileEntry("usr/lib/json.py", "json")}));
  ASSERT_TRUE(bottom.ok() && top.ok());
  fs::create_directories(tmp.path() / "c");
  MountConfig c = ContainerMountConfig(tmp.path() / "store", {*bottom, *top}, tmp.path() / "c");
  c.record_reads = tmp.path() / "reads.txt";
  auto m = Mount::Start(c);
  ASSERT_TRUE(m.ok()) << m.status().message();
  const fs::path root = c.mountpoint;

  OpenClose(root / "usr/bin/python3");
  OpenClose(root / "usr/lib/os.py");
  OpenClose(root / "usr/bin/python3");  // again: not a second line
  (void)fs::exists(root / "usr/bin/unused");
  for (const auto& e : fs::directory_iterator(root / "usr/bin")) (void)e;
  OpenClose(root / "usr/made-here", O_WRONLY | O_CREAT);
  OpenClose(root / "usr/made-here");
  OpenClose(root / "usr/lib/json.py", O_WRONLY | O_APPEND);  // copied up as it opens: still the image's file
  OpenClose(root / "usr/lib/json.py");                       // now the upper copy
  EXPECT_EQ(ReadAll(c.record_reads), "usr/bin/python3\nusr/lib/os.py\nusr/lib/json.py\n")
      << "written as they happen, before the unmount";
  EXPECT_TRUE((*m)->Unmount().ok());
}

TEST(ReadRecorderTest, AFileThatCannotBeWrittenIsRefusedAtCreate) {
  auto r = ReadRecorder::Create("/nonexistent-dir/reads.txt");
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ENOENT);
}

}  // namespace
}  // namespace layerfs::fstest
