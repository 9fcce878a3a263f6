// A Dockerfile from a build context: ParseDockerfile, then the word processing the builder
// applies to each instruction's arguments (ExpandWords / ExpandWord / ParseKeyValues with the
// variables earlier ENV and ARG lines set, as image_builder.cc does).
#include "layerstore/build/dockerfile.h"
#include "tests/fuzz/fuzz_scratch.h"

namespace {

using namespace layerfs;

void ProcessArguments(const DockerfileInstruction& ins, char escape, VarMap* vars) {
  if (ins.keyword == "ENV" || ins.keyword == "ARG" || ins.keyword == "LABEL") {
    bool is_arg = ins.keyword == "ARG";
    auto kvs = ParseKeyValues(ins.args, *vars, escape, /*allow_legacy=*/!is_arg, /*allow_bare_key=*/is_arg);
    if (kvs.ok() && ins.keyword != "LABEL")
      for (const KeyValue& kv : *kvs) (*vars)[kv.key] = kv.value;
    return;
  }
  (void)ExpandWords(ins.args, *vars, escape);
  (void)ExpandWord(ins.args, *vars, escape);
  for (const std::string& arg : ins.exec_args) (void)ExpandWord(arg, *vars, escape);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto dockerfile = ParseDockerfile(fuzz::AsText(data, size));
  if (!dockerfile.ok()) return 0;
  VarMap vars = {{"HOME", "/root"}, {"PATH", "/usr/bin:/bin"}};
  for (const DockerfileInstruction& ins : dockerfile->instructions) ProcessArguments(ins, dockerfile->escape, &vars);
  return 0;
}
