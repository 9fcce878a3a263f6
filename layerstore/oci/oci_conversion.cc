#include "layerstore/oci/oci_conversion.h"

#include "layerstore/oci/image.h"

namespace layerfs {

namespace {

constexpr const char* kDockerForeignLayerGzipType = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
constexpr const char* kOciNondistributableGzipType = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip";

Status ConvertDescriptorType(nlohmann::json* descriptor, const std::string& what) {
  if (!descriptor->is_object() || !(*descriptor)["mediaType"].is_string())
    return Status::Error(EINVAL, what + ": descriptor without a media type");
  (*descriptor)["mediaType"] = OciMediaType((*descriptor)["mediaType"].get<std::string>());
  return Status::Ok();
}

}  // namespace

std::string OciMediaType(std::string_view t) {
  if (t == kDockerManifestType) return kOciManifestType;
  if (t == kDockerListType) return kOciIndexType;
  if (t == kDockerConfigType) return kOciConfigType;
  if (t == kDockerLayerGzipType) return kOciLayerGzipType;
  if (t == kDockerLayerTarType) return kOciLayerTarType;
  if (t == kDockerForeignLayerGzipType) return kOciNondistributableGzipType;
  return std::string(t);
}

Result<std::string> OciManifestFromDocker(std::string_view docker_manifest, const Digest& docker_digest,
                                          const std::string& what) {
  ASSIGN_OR_RETURN(nlohmann::json doc, ParseJson(docker_manifest, what));
  if (DocumentMediaType(doc) != kDockerManifestType)
    return Status::Error(EINVAL, what + ": not a Docker schema2 manifest");
  doc["mediaType"] = kOciManifestType;
  RETURN_IF_ERROR(ConvertDescriptorType(&doc["config"], what + " config"));
  if (!doc["layers"].is_array()) return Status::Error(EINVAL, what + ": manifest has no layers array");
  for (auto& layer : doc["layers"]) RETURN_IF_ERROR(ConvertDescriptorType(&layer, what + " layer"));
  if (!doc["annotations"].is_object()) doc["annotations"] = nlohmann::json::object();
  doc["annotations"][kSourceManifestAnnotation] = docker_digest.str();
  return doc.dump();
}

}  // namespace layerfs
