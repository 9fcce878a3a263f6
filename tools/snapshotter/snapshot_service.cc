#include "tools/snapshotter/snapshot_service.h"

#include <cstdio>
#include <map>
#include <string>
#include <vector>

namespace layerfs::cli {

namespace {

grpc::Status ToGrpc(const char* method, const layerfs::Status& st) {
  if (st.ok()) return grpc::Status::OK;
  std::fprintf(stderr, "layerfs snapshotter: %s: %s\n", method, st.message().c_str());
  switch (st.code()) {
    case ENOENT: return {grpc::StatusCode::NOT_FOUND, st.message()};
    case EEXIST: return {grpc::StatusCode::ALREADY_EXISTS, st.message()};
    case EBUSY: return {grpc::StatusCode::FAILED_PRECONDITION, st.message()};
    case EINVAL: return {grpc::StatusCode::INVALID_ARGUMENT, st.message()};
    default: return {grpc::StatusCode::UNKNOWN, st.message()};
  }
}

Snapshotter::Labels LabelsOf(const google::protobuf::Map<std::string, std::string>& m) {
  return {m.begin(), m.end()};
}

void SetTime(int64_t ns, google::protobuf::Timestamp* t) {
  t->set_seconds(ns / 1000000000);
  t->set_nanos(static_cast<int32_t>(ns % 1000000000));
}

void ToProto(const SnapshotInfo& info, api::Info* out) {
  out->set_name(info.name);
  out->set_parent(info.parent);
  out->set_kind(static_cast<api::Kind>(info.kind));
  SetTime(info.created_ns, out->mutable_created_at());
  SetTime(info.updated_ns, out->mutable_updated_at());
  out->mutable_labels()->insert(info.labels.begin(), info.labels.end());
}

void ToProto(const std::vector<SnapshotMount>& mounts, google::protobuf::RepeatedPtrField<containerd::types::Mount>* out) {
  for (const auto& m : mounts) {
    auto* pm = out->Add();
    pm->set_type(m.type);
    pm->set_source(m.source);
    for (const auto& o : m.options) pm->add_options(o);
  }
}

}  // namespace

grpc::Status SnapshotService::Prepare(grpc::ServerContext*, const api::PrepareSnapshotRequest* req,
                                      api::PrepareSnapshotResponse* resp) {
  auto mounts = sn_->Prepare(req->key(), req->parent(), LabelsOf(req->labels()));
  if (mounts.ok()) ToProto(*mounts, resp->mutable_mounts());
  return ToGrpc("prepare", mounts.status());
}

grpc::Status SnapshotService::View(grpc::ServerContext*, const api::ViewSnapshotRequest* req,
                                   api::ViewSnapshotResponse* resp) {
  auto mounts = sn_->View(req->key(), req->parent(), LabelsOf(req->labels()));
  if (mounts.ok()) ToProto(*mounts, resp->mutable_mounts());
  return ToGrpc("view", mounts.status());
}

grpc::Status SnapshotService::Mounts(grpc::ServerContext*, const api::MountsRequest* req, api::MountsResponse* resp) {
  auto mounts = sn_->Mounts(req->key());
  if (mounts.ok()) ToProto(*mounts, resp->mutable_mounts());
  return ToGrpc("mounts", mounts.status());
}

grpc::Status SnapshotService::Commit(grpc::ServerContext*, const api::CommitSnapshotRequest* req,
                                     google::protobuf::Empty*) {
  return ToGrpc("commit", sn_->Commit(req->name(), req->key(), LabelsOf(req->labels())));
}

grpc::Status SnapshotService::Remove(grpc::ServerContext*, const api::RemoveSnapshotRequest* req,
                                     google::protobuf::Empty*) {
  return ToGrpc("remove", sn_->Remove(req->key()));
}

grpc::Status SnapshotService::Stat(grpc::ServerContext*, const api::StatSnapshotRequest* req,
                                   api::StatSnapshotResponse* resp) {
  auto info = sn_->Stat(req->key());
  if (info.ok()) ToProto(*info, resp->mutable_info());
  return ToGrpc("stat", info.status());
}

grpc::Status SnapshotService::Update(grpc::ServerContext*, const api::UpdateSnapshotRequest* req,
                                     api::UpdateSnapshotResponse* resp) {
  SnapshotInfo info;
  info.name = req->info().name();
  info.labels = LabelsOf(req->info().labels());
  std::vector<std::string> paths(req->update_mask().paths().begin(), req->update_mask().paths().end());
  auto updated = sn_->Update(info, paths);
  if (updated.ok()) ToProto(*updated, resp->mutable_info());
  return ToGrpc("update", updated.status());
}

grpc::Status SnapshotService::List(grpc::ServerContext*, const api::ListSnapshotsRequest* req,
                                   grpc::ServerWriter<api::ListSnapshotsResponse>* writer) {
  std::vector<std::string> filters(req->filters().begin(), req->filters().end());
  auto infos = sn_->List(filters);
  if (!infos.ok()) return ToGrpc("list", infos.status());
  // containerd's own service sends batches of 100
  constexpr size_t kBatch = 100;
  for (size_t i = 0; i < infos->size(); i += kBatch) {
    api::ListSnapshotsResponse resp;
    for (size_t j = i; j < std::min(infos->size(), i + kBatch); ++j) ToProto((*infos)[j], resp.add_info());
    if (!writer->Write(resp)) break;
  }
  return grpc::Status::OK;
}

grpc::Status SnapshotService::Usage(grpc::ServerContext*, const api::UsageRequest* req, api::UsageResponse* resp) {
  auto usage = sn_->Usage(req->key());
  if (usage.ok()) {
    resp->set_size(usage->size);
    resp->set_inodes(usage->inodes);
  }
  return ToGrpc("usage", usage.status());
}

grpc::Status SnapshotService::Cleanup(grpc::ServerContext*, const api::CleanupRequest*, google::protobuf::Empty*) {
  return ToGrpc("cleanup", sn_->Cleanup());
}

}  // namespace layerfs::cli
