#include "tools/prune_output.h"

#include <cstdio>
#include <iostream>

#include "layerstore/oci/reference.h"

namespace layerfs::cli {

namespace {
void PrintLine(const std::string& s) { std::fputs((s + "\n").c_str(), stdout); }
}  // namespace

bool Confirm(const std::string& warning) {
  std::fputs((warning + "\nAre you sure you want to continue? [y/N] ").c_str(), stdout);
  std::fflush(stdout);
  std::string answer;
  std::getline(std::cin, answer);
  return answer == "y" || answer == "Y" || answer == "yes";
}

void PrintRemoval(const RemovalReport& r, bool prune_style) {
  for (const auto& t : r.untagged) PrintLine(std::string(prune_style ? "untagged: " : "Untagged: ") + FamiliarString(t));
  for (const auto& d : r.deleted_images) PrintLine(std::string(prune_style ? "deleted: " : "Deleted: ") + d.str());
  for (const auto& d : r.deleted_layers) PrintLine(std::string(prune_style ? "deleted: " : "Deleted: ") + d.str());
}

}  // namespace layerfs::cli
