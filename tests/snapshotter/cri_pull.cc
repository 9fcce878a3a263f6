// cri-pull SOCKET IMAGE: pulls IMAGE through containerd's CRI plugin, as kubelet does (the
// image lands in containerd's k8s.io namespace, unpacked into the CRI plugin's snapshotter).
// Prints the image ID. A test tool: Debian has no crictl.
#include <cstdio>
#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>

#include "cri_image.grpc.pb.h"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: cri-pull SOCKET IMAGE\n");
    return 2;
  }
  auto channel = grpc::CreateChannel(std::string("unix:") + argv[1], grpc::InsecureChannelCredentials());
  std::unique_ptr<runtime::v1::ImageService::Stub> images = runtime::v1::ImageService::NewStub(channel);
  runtime::v1::PullImageRequest request;
  request.mutable_image()->set_image(argv[2]);
  runtime::v1::PullImageResponse response;
  grpc::ClientContext context;
  grpc::Status status = images->PullImage(&context, request, &response);
  if (!status.ok()) {
    std::fprintf(stderr, "cri-pull: %s: %s\n", argv[2], status.error_message().c_str());
    return 1;
  }
  std::printf("%s\n", response.image_ref().c_str());
  return 0;
}
