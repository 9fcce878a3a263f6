// Dockerfile: parses the Dockerfile language into instructions, and expands $VAR references.
//
// Parsing follows Docker's rules: parser directives (`# escape=` honoured, `# syntax=` and
// `# check=` ignored with a note) only at the very top; comment lines (also inside a
// continuation); the escape character at the end of a line continues it; the first word is the
// instruction (any case); leading `--flag[=value]` words of FROM/RUN/COPY/ADD are flags;
// arguments that parse as a JSON string array are the exec form, anything else the shell form.
// Heredocs (`<<EOF`) are not supported and are refused. Which instructions are allowed is the
// builder's business; the parser keeps every instruction with its line number.
//
// Substitution (ExpandWords/ExpandWord) is Docker's shell-like word processing for ENV, ARG,
// LABEL, COPY, ADD, WORKDIR, USER, EXPOSE, VOLUME, FROM: $VAR, ${VAR}, ${VAR:-word},
// ${VAR-word}, ${VAR:+word}, ${VAR+word}, ${VAR:?msg}; single quotes are literal, double quotes
// group and still expand; the escape character makes the next character literal.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "layerstore/base/status.h"

namespace layerfs {

struct DockerfileInstruction {
  int line = 0;                                            // 1-based line on which the instruction starts
  std::string keyword;                                     // upper case: "RUN", "COPY"
  std::string original;                                    // the whole instruction as joined, for messages
  std::vector<std::pair<std::string, std::string>> flags;  // "--chown=a:b" -> {"chown","a:b"}
  std::string args;                                        // argument text after the flags (shell form)
  bool exec_form = false;                                  // args was a JSON string array
  std::vector<std::string> exec_args;                      // the array, when exec_form
};

struct Dockerfile {
  char escape = '\\';
  std::vector<std::string> notes;  // ignored directives etc., for the user to read
  std::vector<DockerfileInstruction> instructions;
};

// Errors (EINVAL) say "Dockerfile line N: ..." where `name` is the file name to show.
Result<Dockerfile> ParseDockerfile(std::string_view text, const std::string& name = "Dockerfile");

// Variables visible to substitution: name -> value.
using VarMap = std::map<std::string, std::string>;

// Splits `text` into words (unquoted whitespace separates), removing quotes and expanding
// variables. An unset variable expands to "". Errors: unterminated quote or ${, ${X:?msg}.
Result<std::vector<std::string>> ExpandWords(std::string_view text, const VarMap& vars, char escape = '\\');
// The same processing without splitting on whitespace (WORKDIR, USER, one JSON-form element).
Result<std::string> ExpandWord(std::string_view text, const VarMap& vars, char escape = '\\');

// "KEY=VALUE KEY2=VALUE2" pairs (ENV, LABEL, ARG) or the legacy "KEY VALUE..." form of ENV
// (allow_legacy). ARG may name a key without "=" (value "", has_value false).
struct KeyValue {
  std::string key;
  std::string value;
  bool has_value = true;
};
Result<std::vector<KeyValue>> ParseKeyValues(std::string_view text, const VarMap& vars, char escape,
                                             bool allow_legacy, bool allow_bare_key);

}  // namespace layerfs
