// TransferEvent: what pull and push report about each layer, in Docker's words ("Pulling fs
// layer", "Downloading", "Verifying Checksum", "Download complete", "Extracting", "Pull complete",
// "Already exists"; "Preparing", "Pushing", "Pushed", "Layer already exists", "Mounted from X").
// The callback runs on transfer threads, several at once: it must be thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

namespace layerfs {

struct TransferEvent {
  std::string id;  // the layer's 12-hex short id
  std::string status;
  uint64_t current = 0;  // bytes so far, for statuses with a bar (Downloading, Pushing)
  uint64_t total = 0;
  bool bar = false;  // true: current/total are meaningful
};

using TransferCallback = std::function<void(const TransferEvent&)>;

}  // namespace layerfs
