// LazyLayerLock: one owner per lazy layer directory. A second Acquire, in this process or
// another, is EBUSY naming the owner's pid; a fork shares the lock and, once it records its
// pid, is the one named; a dead owner frees the directory; Held() probes without taking it.
#include "layerstore/store/lazy_layer_lock.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "tests/layerstore/test_util.h"

namespace layerfs::testing {
namespace {

TEST(LazyLayerLockTest, OneOwnerAtATimeNamedByItsPid) {
  TempDir dir;
  EXPECT_FALSE(LazyLayerLock::Held(dir.path())) << "no lock file: nobody owns it";
  auto lock = LazyLayerLock::Acquire(dir.path(), "layer L");
  ASSERT_TRUE(lock.ok()) << lock.status().message();
  EXPECT_TRUE(LazyLayerLock::Held(dir.path()));
  auto second = LazyLayerLock::Acquire(dir.path(), "layer L");
  ASSERT_EQ(second.status().code(), EBUSY);
  EXPECT_EQ(second.status().message(),
            "layer L is being pulled lazily by another process (pid " + std::to_string(::getpid()) + ")");
  *lock = LazyLayerLock();
  EXPECT_FALSE(LazyLayerLock::Held(dir.path()));
  EXPECT_TRUE(LazyLayerLock::Acquire(dir.path(), "layer L").ok()) << "released with its owner";
}

// The mount's case: the opener forks the daemon and exits; the daemon holds the lock on.
TEST(LazyLayerLockTest, AForkKeepsTheLockAndNamesItselfAfterItsOpenerIsGone) {
  TempDir dir;
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  auto lock = LazyLayerLock::Acquire(dir.path(), "layer L");
  ASSERT_TRUE(lock.ok());
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    lock->RecordPid();
    (void)!::write(ready[1], "x", 1);
    ::pause();
    ::_exit(0);
  }
  char c;
  EXPECT_EQ(::read(ready[0], &c, 1), 1);
  ::close(ready[0]);
  ::close(ready[1]);
  *lock = LazyLayerLock();  // the opener is gone
  auto second = LazyLayerLock::Acquire(dir.path(), "layer L");
  EXPECT_EQ(second.status().code(), EBUSY);
  EXPECT_NE(second.status().message().find("(pid " + std::to_string(child) + ")"), std::string::npos)
      << second.status().message();
  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
  EXPECT_FALSE(LazyLayerLock::Held(dir.path())) << "a killed owner frees the directory";
  EXPECT_TRUE(LazyLayerLock::Acquire(dir.path(), "layer L").ok());
}

}  // namespace
}  // namespace layerfs::testing
