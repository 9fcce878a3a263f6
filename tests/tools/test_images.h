// Test images built for real: tar layers written with libarchive, configs, manifests, and the
// archive formats `layerfs load` reads (docker-archive old and Docker 25+ layouts, oci-archive,
// OCI layout directory). Shared by the layerstore, tools and fs tests.
//
//   auto base = MakeLayer({{"bin/sh", "#!sh"}, {"etc/", ""}, {"lib/link", "", "../bin/sh"}});
//   auto img = MakeImage({base, MakeLayer({{".wh.sh", ""}})}, {"redis:latest"});
//   WriteOciLayout(dir, {img});  WriteDockerArchive(file, {img});
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "layerstore/base/digest.h"
#include "tests/layerstore/test_util.h"  // Compression, TempDir, ReadFile, WriteFile

namespace layerfs::testing {

struct TestFile {
  std::string path;     // "dir/" (trailing slash) for a directory
  std::string content;  // regular files
  std::string symlink;  // non-empty: a symlink to this target
  uint32_t mode = 0;    // 0: 0644 files, 0755 dirs
};

// Raw tar bytes (optionally gzip-compressed) of the files, in the given order.
std::string BuildLayerTar(const std::vector<TestFile>& files, Compression c = Compression::kNone);
std::string BuildLayerTarGz(const std::vector<TestFile>& files);
std::string Gzip(const std::string& bytes);
std::string Compress(const std::string& bytes, Compression c);  // raw gzip or zstd stream

struct TestLayer {
  std::string blob;           // bytes as stored (compressed or not)
  std::string media_type;     // OCI layer type
  Digest digest;              // of blob
  Digest diff_id;             // of the uncompressed tar
  uint64_t content_size = 0;  // regular file bytes + symlink target lengths
};
TestLayer MakeLayer(const std::vector<TestFile>& files, Compression c = Compression::kGzip);
// A layer of `bytes` pseudo-random (incompressible) bytes in one file; fast for big sizes.
TestLayer MakeRandomLayer(const std::string& file_name, uint64_t bytes, uint32_t seed, Compression c = Compression::kNone);

struct TestImage {
  std::vector<TestLayer> layers;
  std::vector<std::string> tags;  // as written into archives ("redis:latest")
  std::string config;             // JSON bytes
  std::string manifest;           // OCI manifest JSON bytes
  Digest config_digest;           // the image ID
  Digest manifest_digest;
};
// created_by of each layer's history entry defaults to "layer <i>"; one extra empty_layer
// entry (CMD) is appended, as Dockerfiles produce.
TestImage MakeImage(const std::vector<TestLayer>& layers, const std::vector<std::string>& tags,
                    const std::string& created = "2024-01-02T03:04:05Z");

// The same image as a Docker schema2 manifest (what Docker Hub serves and containerd exports):
// Docker media types for manifest, config and layers; same config and layer blobs.
TestImage AsDockerSchema2(const TestImage& img);

// An OCI image layout directory; each tagged image gets one index entry per tag with
// org.opencontainers.image.ref.name = the tag as given (and io.containerd.image.name).
void WriteOciLayout(const std::filesystem::path& dir, const std::vector<TestImage>& images);
// The same, as one (plain) tar.
void WriteOciArchive(const std::filesystem::path& file, const std::vector<TestImage>& images);
// docker save output: old layout (manifest.json, repositories, <id>/layer.tar, <id>.json), or
// with docker25 = true the Docker 25+ layout (index.json, oci-layout, blobs/, manifest.json).
void WriteDockerArchive(const std::filesystem::path& file, const std::vector<TestImage>& images, bool docker25 = false);

// An OCI index wrapping the image for several platforms (others get a different tiny image).
// Writes an OCI layout whose index.json names the list, tagged `tag`.
void WriteMultiPlatformLayout(const std::filesystem::path& dir, const TestImage& amd64, const TestImage& arm64,
                              const std::string& tag);

// Writes a tar (plain) of name -> bytes entries, in order.
void WriteTar(const std::filesystem::path& file, const std::vector<std::pair<std::string, std::string>>& entries);

}  // namespace layerfs::testing
