// SnapshotService: containerd's gRPC snapshot service (containerd.services.snapshots.v1) as a
// thin translation onto layerfs::Snapshotter: requests become calls, errno codes become gRPC
// codes (ENOENT NotFound, EEXIST AlreadyExists, EBUSY FailedPrecondition, EINVAL
// InvalidArgument), which containerd turns back into its errdefs. Each failed call logs one
// line on stderr.
#pragma once

#include <grpcpp/grpcpp.h>

#include "containerd/snapshots/snapshots.grpc.pb.h"
#include "layerstore/snapshots/snapshotter.h"

namespace layerfs::cli {

namespace api = containerd::services::snapshots::v1;

class SnapshotService final : public api::Snapshots::Service {
 public:
  explicit SnapshotService(Snapshotter* snapshotter) : sn_(snapshotter) {}

  grpc::Status Prepare(grpc::ServerContext* ctx, const api::PrepareSnapshotRequest* req,
                       api::PrepareSnapshotResponse* resp) override;
  grpc::Status View(grpc::ServerContext* ctx, const api::ViewSnapshotRequest* req,
                    api::ViewSnapshotResponse* resp) override;
  grpc::Status Mounts(grpc::ServerContext* ctx, const api::MountsRequest* req, api::MountsResponse* resp) override;
  grpc::Status Commit(grpc::ServerContext* ctx, const api::CommitSnapshotRequest* req,
                      google::protobuf::Empty* resp) override;
  grpc::Status Remove(grpc::ServerContext* ctx, const api::RemoveSnapshotRequest* req,
                      google::protobuf::Empty* resp) override;
  grpc::Status Stat(grpc::ServerContext* ctx, const api::StatSnapshotRequest* req,
                    api::StatSnapshotResponse* resp) override;
  grpc::Status Update(grpc::ServerContext* ctx, const api::UpdateSnapshotRequest* req,
                      api::UpdateSnapshotResponse* resp) override;
  grpc::Status List(grpc::ServerContext* ctx, const api::ListSnapshotsRequest* req,
                    grpc::ServerWriter<api::ListSnapshotsResponse>* writer) override;
  grpc::Status Usage(grpc::ServerContext* ctx, const api::UsageRequest* req, api::UsageResponse* resp) override;
  grpc::Status Cleanup(grpc::ServerContext* ctx, const api::CleanupRequest* req,
                       google::protobuf::Empty* resp) override;

 private:
  Snapshotter* sn_;
};

}  // namespace layerfs::cli
