// Shared fixture of the image tests: a fresh store in a temp dir and a listing of its tree to
// prove a failed operation changed nothing.
#pragma once

#include <set>
#include <string>

#include <gtest/gtest.h>

#include "layerstore/store/store.h"
#include "tests/layerstore/test_util.h"
#include "tests/tools/test_images.h"

namespace layerfs::testing {

// Every path of the store with its size (files), ignoring tmp/ and the lock file.
inline std::set<std::string> StoreListing(const fs::path& root) {
  std::set<std::string> out;
  for (const auto& p : ListTree(root)) {
    if (p == "lock" || p == "tmp" || p.rfind("tmp/", 0) == 0) continue;
    std::error_code ec;
    fs::path full = root / p;
    std::string size = fs::is_regular_file(fs::symlink_status(full, ec)) ? " " + std::to_string(fs::file_size(full, ec)) : "";
    out.insert(p + size);
  }
  return out;
}

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = Store::Open(dir_.path() / "store");
    ASSERT_TRUE(s.ok()) << s.status().message();
    store_.emplace(std::move(*s));
  }
  const Store& store() const { return *store_; }
  fs::path Scratch(const std::string& name) const { return dir_.path() / name; }

  TempDir dir_;
  std::optional<Store> store_;
};

}  // namespace layerfs::testing
