// InodeTable and MergedIndex under concurrency (run it under the tsan preset): many threads
// look up lower entries while others acquire/forget/detach nodes and copy-up-like state
// changes happen; a Node is found again while referenced and gone once forgotten.
#include "fs/engine/inode_table.h"

#include <atomic>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "fs/index/merged_index.h"
#include "layerstore/base/digest.h"

namespace layerfs {
namespace {

std::shared_ptr<Node> MakeNode() { return std::make_shared<Node>(); }
bool Any(const Node&) { return true; }

TEST(InodeTable, SameKeySameNodeUntilForgotten) {
  InodeTable t;
  auto a = t.Acquire(7, MakeNode, Any);
  auto b = t.Acquire(7, MakeNode, Any);
  EXPECT_EQ(a.get(), b.get());
  EXPECT_EQ(a->nlookup.load(), 2u);
  t.Forget(a.get(), 2);
  EXPECT_EQ(t.size(), 0u);
  auto c = t.Acquire(7, MakeNode, Any);
  EXPECT_NE(c.get(), a.get());
}

TEST(InodeTable, DetachLetsTheKeyBeReusedWhileTheOldNodeLives) {
  InodeTable t;
  auto old = t.Acquire(InodeTable::UpperKey(5), MakeNode, Any);
  t.Detach(old.get());
  auto fresh = t.Acquire(InodeTable::UpperKey(5), MakeNode, Any);
  EXPECT_NE(fresh.get(), old.get());
  EXPECT_EQ(t.size(), 2u);
  t.Forget(old.get(), 1);
  EXPECT_EQ(t.size(), 1u);
  t.Forget(fresh.get(), 1);
  EXPECT_EQ(t.size(), 0u);
}

TEST(InodeTable, ConcurrentLookupsForgetsAndIndexReads) {
  LayerIndex layer;
  for (int i = 0; i < 2000; ++i) {
    LayerEntry e;
    e.path = "d" + std::to_string(i % 20) + "/f" + std::to_string(i);
    e.mode = 0644;
    layer.entries().push_back(e);
  }
  layer.Sort();
  auto built = MergedIndex::Build({&layer}, Sha256Of("c"));
  ASSERT_TRUE(built.ok());
  const MergedIndex& index = *built;
  InodeTable table;
  std::atomic<uint64_t> found{0};
  std::vector<std::thread> threads;
  threads.reserve(8);
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < 3000; ++round) {
        int i = (round * 7 + t * 13) % 2000;
        auto idx = index.LookupPath("d" + std::to_string(i % 20) + "/f" + std::to_string(i));
        if (!idx) continue;
        found++;
        auto node = table.Acquire(
            InodeTable::LowerKey(*idx), [&] {
              auto n = std::make_shared<Node>();
              n->lower = *idx;
              return n;
            },
            Any);
        if (node->lower != *idx) std::abort();
        if (t % 2 == 0) node->upper.store(true, std::memory_order_release);  // like a copy-up
        node->SetLocation(nullptr, std::to_string(round));
        (void)node->Location();
        if (round % 3 == 0) table.Detach(node.get());
        table.Forget(node.get(), 1);
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(found.load(), 8u * 3000u);
  EXPECT_EQ(table.size(), 0u);
}

}  // namespace
}  // namespace layerfs
