#include "layerstore/store/image_store.h"

#include <gtest/gtest.h>

#include "layerstore/archive/image_load.h"
#include "layerstore/store/blob_store.h"
#include "tests/layerstore/images_fixture.h"

namespace layerfs::testing {
namespace {

class ImageStoreTest : public StoreTest {
 protected:
  TestImage LoadOne(const std::string& tag, const std::string& content) {
    auto img = MakeImage({MakeLayer({{"f", content}})}, tag.empty() ? std::vector<std::string>{} : std::vector<std::string>{tag});
    fs::path file = Scratch(content + ".tar");
    WriteOciArchive(file, {img});
    auto r = LoadImages(store(), file, {});
    EXPECT_TRUE(r.ok()) << r.status().message();
    return img;
  }
};

TEST(ChainId, FollowsTheOciDefinition) {
  Digest a = Sha256Of("a"), b = Sha256Of("b"), c = Sha256Of("c");
  EXPECT_TRUE(ChainId({}).empty());
  EXPECT_EQ(ChainId({a}), a);
  Digest ab = Sha256Of(a.str() + " " + b.str());
  EXPECT_EQ(ChainId({a, b}), ab);
  EXPECT_EQ(ChainId({a, b, c}), Sha256Of(ab.str() + " " + c.str()));
}

TEST_F(ImageStoreTest, ResolvesByReferenceIdPrefixAndDigest) {
  auto img = LoadOne("redis:7", "x");
  ImageStore images(store());
  for (const std::string& name : std::vector<std::string>{"redis:7", "docker.io/library/redis:7", img.config_digest.str(), img.config_digest.hex(),
                                                          img.config_digest.hex().substr(0, 5), "sha256:" + img.config_digest.hex().substr(0, 8),
                                                          "redis@" + img.manifest_digest.str()}) {
    auto r = images.Resolve(name);
    ASSERT_TRUE(r.ok()) << name << ": " << r.status().message();
    EXPECT_EQ(r->id(), img.config_digest) << name;
  }
  EXPECT_EQ(images.Resolve("redis").status().code(), ENOENT);  // :latest is not there
  EXPECT_EQ(images.Resolve("redis").status().message(), "no such image: redis");
  EXPECT_EQ(images.Resolve("Bad:Ref").status().code(), EINVAL);
}

// What pull does with a Docker schema2 manifest from a registry: its blobs, then Add.
TEST_F(ImageStoreTest, AddRecordsADockerManifestAsItsOciConversion) {
  auto docker = AsDockerSchema2(MakeImage({MakeLayer({{"f", "x"}})}, {}));
  BlobStore blobs(store());
  ASSERT_TRUE(blobs.PutBytes(docker.config, docker.config_digest).ok());
  ASSERT_TRUE(blobs.PutBytes(docker.layers[0].blob, docker.layers[0].digest).ok());
  ASSERT_TRUE(blobs.PutBytes(docker.manifest, docker.manifest_digest).ok());
  ImageStore images(store());
  ASSERT_TRUE(images.Add(docker.manifest_digest, "127.0.0.1:5000/app:1").ok());
  auto records = images.ReadRecords();
  ASSERT_TRUE(records.ok());
  ASSERT_EQ(records->size(), 1u);
  EXPECT_EQ((*records)[0].manifest.media_type, kOciManifestType);
  auto image = images.Resolve("127.0.0.1:5000/app:1");
  ASSERT_TRUE(image.ok()) << image.status().message();
  EXPECT_EQ(image->manifest_digest, (*records)[0].manifest.digest);
  EXPECT_EQ(image->repo_digest(), docker.manifest_digest);
  EXPECT_EQ(image->id(), docker.config_digest);
  auto tagged = images.Tag("127.0.0.1:5000/app:1", "other:1");
  ASSERT_TRUE(tagged.ok()) << tagged.message();
  EXPECT_EQ(images.Resolve("other:1")->repo_digest(), docker.manifest_digest);
}

// A store written before index.json named only OCI manifests: the next Store::Open converts it.
TEST_F(ImageStoreTest, OpenConvertsDockerRecordsOfAnOlderStore) {
  auto docker = AsDockerSchema2(MakeImage({MakeLayer({{"f", "x"}})}, {}));
  BlobStore blobs(store());
  ASSERT_TRUE(blobs.PutBytes(docker.config, docker.config_digest).ok());
  ASSERT_TRUE(blobs.PutBytes(docker.layers[0].blob, docker.layers[0].digest).ok());
  ASSERT_TRUE(blobs.PutBytes(docker.manifest, docker.manifest_digest).ok());
  Descriptor old{kDockerManifestType, docker.manifest_digest, docker.manifest.size(), nlohmann::json(), nlohmann::json()};
  ASSERT_TRUE(ImageStore(store()).WriteRecords({{old, "docker.io/library/redis:7"}}).ok());
  auto old_image = ImageStore(store()).Resolve("redis:7");  // readers take either form
  ASSERT_TRUE(old_image.ok());
  EXPECT_EQ(old_image->repo_digest(), docker.manifest_digest);

  auto reopened = Store::Open(store().root());
  ASSERT_TRUE(reopened.ok());
  auto records = ImageStore(*reopened).ReadRecords();
  ASSERT_TRUE(records.ok());
  ASSERT_EQ(records->size(), 1u);
  EXPECT_EQ((*records)[0].manifest.media_type, kOciManifestType);
  EXPECT_EQ((*records)[0].ref, "docker.io/library/redis:7");
  auto image = ImageStore(*reopened).Resolve("redis:7");
  ASSERT_TRUE(image.ok());
  EXPECT_EQ(image->repo_digest(), docker.manifest_digest);
  EXPECT_EQ(image->id(), docker.config_digest);
  auto again = ImageStore(*reopened).ConvertDockerRecords();
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, 0u);
}

TEST_F(ImageStoreTest, TagMovesAndLeavesTheOldImageDangling) {
  auto one = LoadOne("app:1", "one");
  auto two = LoadOne("app:2", "two");
  ImageStore images(store());
  ASSERT_TRUE(images.Tag("app:2", "app:1").ok());
  auto list = images.List();
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 2u);
  for (const auto& image : *list) {
    if (image.id() == one.config_digest) {
      EXPECT_TRUE(image.tags.empty());
    }
    if (image.id() == two.config_digest) {
      EXPECT_EQ(image.tags.size(), 2u);
    }
  }
  EXPECT_EQ(images.Resolve("app:1")->id(), two.config_digest);
  EXPECT_EQ(images.Resolve(one.config_digest.hex())->id(), one.config_digest);
  EXPECT_FALSE(images.Tag("nosuch", "x:1").ok());
}

TEST_F(ImageStoreTest, PutRecordKeepsOneRecordPerTagAndOneForADanglingImage) {
  Descriptor a{kOciManifestType, Sha256Of("a"), 1, nullptr, nullptr};
  Descriptor b{kOciManifestType, Sha256Of("b"), 1, nullptr, nullptr};
  std::vector<ImageStore::Record> records;
  ImageStore::PutRecord(&records, a, "");
  ImageStore::PutRecord(&records, a, "");
  EXPECT_EQ(records.size(), 1u);
  ImageStore::PutRecord(&records, a, "x:1");
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].ref, "x:1");
  ImageStore::PutRecord(&records, b, "x:1");
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records[0].manifest.digest, a.digest);
  EXPECT_EQ(records[0].ref, "");
  EXPECT_EQ(records[1].ref, "x:1");
}

TEST_F(ImageStoreTest, CreateChildExtendsConfigAndManifest) {
  auto base_img = LoadOne("base:1", "base");
  ImageStore images(store());
  auto base = images.Resolve("base:1");
  ASSERT_TRUE(base.ok());
  ImageStore::ChildSpec spec;
  spec.history.created_by = "RUN true";
  spec.config_changes = {{"Env", {"A=1"}}};
  auto child = images.CreateChild(&*base, spec, "child:1");
  ASSERT_TRUE(child.ok()) << child.status().message();
  EXPECT_EQ(child->diff_ids, base->diff_ids);
  EXPECT_TRUE(child->history.back().empty_layer);
  EXPECT_EQ(child->history.back().created_by, "RUN true");
  EXPECT_EQ(child->config["config"]["Env"], nlohmann::json({"A=1"}));
  EXPECT_EQ(images.Resolve("child:1")->manifest_digest, child->manifest_digest);
}

}  // namespace
}  // namespace layerfs::testing
