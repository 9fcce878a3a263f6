#include "layerstore/oci/oci_conversion.h"

#include <gtest/gtest.h>

#include "layerstore/oci/image.h"
#include "tests/tools/test_images.h"

namespace layerfs::testing {
namespace {

TEST(OciConversionTest, MakesEveryMediaTypeOciAndKeepsBlobsAndTheSourceDigest) {
  auto docker = AsDockerSchema2(MakeImage({MakeLayer({{"a", "1"}}), MakeLayer({{"b", "2"}}, Compression::kNone)}, {}));
  auto oci = OciManifestFromDocker(docker.manifest, docker.manifest_digest, "m");
  ASSERT_TRUE(oci.ok()) << oci.status().message();
  Image image;
  ASSERT_TRUE(ParseManifest(*oci, "oci", &image).ok());
  EXPECT_EQ(image.manifest_media_type, kOciManifestType);
  EXPECT_EQ(image.config_descriptor.media_type, kOciConfigType);
  EXPECT_EQ(image.config_descriptor.digest, docker.config_digest);
  EXPECT_EQ(image.config_descriptor.size, docker.config.size());
  ASSERT_EQ(image.layers.size(), 2u);
  EXPECT_EQ(image.layers[0].media_type, kOciLayerGzipType);
  EXPECT_EQ(image.layers[1].media_type, kOciLayerTarType);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(image.layers[i].digest, docker.layers[i].digest);
    EXPECT_EQ(image.layers[i].size, docker.layers[i].blob.size());
  }
  EXPECT_EQ(image.source_manifest.digest, docker.manifest_digest);
  EXPECT_EQ(image.repo_digest(), docker.manifest_digest);
  EXPECT_EQ(OciManifestFromDocker(docker.manifest, docker.manifest_digest, "m").value(), *oci);  // deterministic
}

TEST(OciConversionTest, KeepsOtherFieldsAndMapsForeignLayers) {
  nlohmann::json doc = nlohmann::json::parse(AsDockerSchema2(MakeImage({MakeLayer({{"a", "1"}})}, {})).manifest);
  doc["layers"][0]["mediaType"] = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
  doc["layers"][0]["urls"] = {"https://example.com/layer"};
  std::string bytes = doc.dump();
  auto oci = OciManifestFromDocker(bytes, Sha256Of(bytes), "m");
  ASSERT_TRUE(oci.ok()) << oci.status().message();
  nlohmann::json out = nlohmann::json::parse(*oci);
  EXPECT_EQ(out["layers"][0]["mediaType"], "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip");
  EXPECT_EQ(out["layers"][0]["urls"], doc["layers"][0]["urls"]);
  EXPECT_EQ(out["schemaVersion"], 2);
}

TEST(OciConversionTest, RefusesWhatIsNotADockerManifest) {
  auto oci = MakeImage({MakeLayer({{"a", "1"}})}, {});
  auto r = OciManifestFromDocker(oci.manifest, oci.manifest_digest, "manifest X");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), EINVAL);
  EXPECT_EQ(r.status().message(), "manifest X: not a Docker schema2 manifest");
  EXPECT_FALSE(OciManifestFromDocker("{", Sha256Of("{"), "m").ok());
}

TEST(OciConversionTest, MapsMediaTypes) {
  EXPECT_EQ(OciMediaType(kDockerManifestType), kOciManifestType);
  EXPECT_EQ(OciMediaType(kDockerListType), kOciIndexType);
  EXPECT_EQ(OciMediaType(kDockerConfigType), kOciConfigType);
  EXPECT_EQ(OciMediaType(kDockerLayerGzipType), kOciLayerGzipType);
  EXPECT_EQ(OciMediaType(kDockerLayerTarType), kOciLayerTarType);
  EXPECT_EQ(OciMediaType(kOciLayerZstdType), kOciLayerZstdType);
}

}  // namespace
}  // namespace layerfs::testing
