#include "layerstore/build/dockerfile.h"

#include <cctype>
#include <regex>

#include <nlohmann/json.hpp>

namespace layerfs {

namespace {

std::string_view TrimLeft(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  return s;
}

std::string_view TrimRight(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

std::string_view Trim(std::string_view s) { return TrimRight(TrimLeft(s)); }

std::string Upper(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

std::vector<std::string_view> SplitLines(std::string_view text) {
  std::vector<std::string_view> lines;
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    lines.push_back(line);
    if (nl == std::string_view::npos) break;
    text.remove_prefix(nl + 1);
  }
  return lines;
}

Status LineError(const std::string& name, int line, const std::string& what) {
  return Status::Error(EINVAL, name + " line " + std::to_string(line) + ": " + what);
}

// Parser directives sit at the very top: "# key=value". Returns the index of the first line
// after them.
Result<size_t> ParseDirectives(const std::vector<std::string_view>& lines, const std::string& name,
                               Dockerfile* out) {
  static const std::regex kDirective(R"(^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$)");
  size_t i = 0;
  for (; i < lines.size(); ++i) {
    std::string line(lines[i]);
    std::smatch m;
    if (!std::regex_match(line, m, kDirective)) break;
    std::string key = Upper(m[1].str());
    std::string value = m[2].str();
    if (key == "ESCAPE") {
      if (value != "\\" && value != "`")
        return LineError(name, static_cast<int>(i + 1), "invalid escape token '" + value + "' (must be \\ or `)");
      out->escape = value[0];
    } else if (key == "SYNTAX" || key == "CHECK") {
      out->notes.push_back("parser directive \"" + m[1].str() + "=" + value + "\" ignored (built-in parser)");
    } else {
      break;  // an unknown directive is a comment, and ends the directives
    }
  }
  return i;
}

bool TakesFlags(const std::string& keyword) {
  return keyword == "FROM" || keyword == "RUN" || keyword == "COPY" || keyword == "ADD" ||
         keyword == "HEALTHCHECK";
}

// "<<EOF", "<<-EOF", "<<'EOF'", "<<\"EOF\"" as a word: a heredoc.
bool HasHeredoc(std::string_view args) {
  for (size_t pos = args.find("<<"); pos != std::string_view::npos; pos = args.find("<<", pos + 2)) {
    if (pos > 0 && !std::isspace(static_cast<unsigned char>(args[pos - 1]))) continue;
    std::string_view rest = args.substr(pos + 2);
    if (!rest.empty() && rest.front() == '-') rest.remove_prefix(1);
    if (!rest.empty() && (std::isalpha(static_cast<unsigned char>(rest.front())) || rest.front() == '_' ||
                          rest.front() == '\'' || rest.front() == '"'))
      return true;
  }
  return false;
}

void ParseExecForm(DockerfileInstruction* ins) {
  if (ins->args.empty() || ins->args.front() != '[') return;
  nlohmann::json j = nlohmann::json::parse(ins->args, nullptr, /*allow_exceptions=*/false);
  if (!j.is_array()) return;
  std::vector<std::string> out;
  for (const auto& e : j) {
    if (!e.is_string()) return;
    out.push_back(e.get<std::string>());
  }
  ins->exec_form = true;
  ins->exec_args = std::move(out);
}

Result<DockerfileInstruction> ParseInstruction(std::string_view text, int line, const std::string& name) {
  DockerfileInstruction ins;
  ins.line = line;
  ins.original = std::string(Trim(text));
  std::string_view rest = ins.original;
  size_t end = 0;
  while (end < rest.size() && !std::isspace(static_cast<unsigned char>(rest[end]))) ++end;
  ins.keyword = Upper(rest.substr(0, end));
  rest = TrimLeft(rest.substr(end));
  if (TakesFlags(ins.keyword)) {
    while (rest.substr(0, 2) == "--") {
      size_t stop = 0;
      while (stop < rest.size() && !std::isspace(static_cast<unsigned char>(rest[stop]))) ++stop;
      std::string_view flag = rest.substr(2, stop - 2);
      size_t eq = flag.find('=');
      if (eq == std::string_view::npos) ins.flags.emplace_back(std::string(flag), "");
      else
        ins.flags.emplace_back(std::string(flag.substr(0, eq)), std::string(flag.substr(eq + 1)));
      rest = TrimLeft(rest.substr(stop));
    }
  }
  ins.args = std::string(rest);
  if ((ins.keyword == "RUN" || ins.keyword == "COPY" || ins.keyword == "ADD") && HasHeredoc(ins.args))
    return LineError(name, line, "heredocs (<<EOF) are not supported by this builder: " + ins.keyword);
  ParseExecForm(&ins);
  return ins;
}

bool EndsWithEscape(std::string_view line, char escape) {
  line = TrimRight(line);
  return !line.empty() && line.back() == escape;
}

}  // namespace

Result<Dockerfile> ParseDockerfile(std::string_view text, const std::string& name) {
  Dockerfile out;
  std::vector<std::string_view> lines = SplitLines(text);
  ASSIGN_OR_RETURN(size_t first, ParseDirectives(lines, name, &out));
  std::string joined;
  int start = 0;
  bool continuing = false;
  for (size_t i = first; i < lines.size(); ++i) {
    std::string_view line = lines[i];
    std::string_view left = TrimLeft(line);
    if (left.empty() || left.front() == '#') continue;  // comments and blank lines, also mid-continuation
    if (!continuing) {
      start = static_cast<int>(i + 1);
      joined.clear();
    }
    if (EndsWithEscape(line, out.escape)) {
      std::string_view body = TrimRight(line);
      body.remove_suffix(1);
      joined += continuing ? body : TrimLeft(body);
      continuing = true;
      continue;
    }
    joined += continuing ? line : left;
    continuing = false;
    ASSIGN_OR_RETURN(DockerfileInstruction ins, ParseInstruction(joined, start, name));
    out.instructions.push_back(std::move(ins));
  }
  if (continuing && !Trim(joined).empty()) {
    ASSIGN_OR_RETURN(DockerfileInstruction ins, ParseInstruction(joined, start, name));
    out.instructions.push_back(std::move(ins));
  }
  return out;
}

namespace {

bool IsNameStart(char c) { return std::isalpha(static_cast<unsigned char>(c)) || c == '_'; }
bool IsNameChar(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }

// Docker's shell-word processing over one string: quotes, escapes and $ expansion.
class WordLexer {
 public:
  WordLexer(std::string_view text, const VarMap& vars, char escape) : s_(text), vars_(vars), escape_(escape) {}

  Result<std::vector<std::string>> Run(bool split) {
    std::vector<std::string> words;
    std::string cur;
    bool in_word = false;
    while (i_ < s_.size()) {
      char c = s_[i_];
      if (split && std::isspace(static_cast<unsigned char>(c))) {
        if (in_word) words.push_back(std::move(cur));
        cur.clear();
        in_word = false;
        ++i_;
        continue;
      }
      in_word = true;
      if (c == escape_) {
        ++i_;
        if (i_ < s_.size()) cur += s_[i_++];
        else
          cur += escape_;
      } else if (c == '\'') {
        RETURN_IF_ERROR(SingleQuoted(&cur));
      } else if (c == '"') {
        RETURN_IF_ERROR(DoubleQuoted(&cur));
      } else if (c == '$') {
        ++i_;
        std::string value;
        RETURN_IF_ERROR(Dollar(&value));
        if (split) SplitInto(value, &words, &cur, &in_word);
        else
          cur += value;
      } else {
        cur += c;
        ++i_;
      }
    }
    if (in_word) words.push_back(std::move(cur));
    return words;
  }

 private:
  // An unquoted expansion splits into words at its whitespace, as in a shell.
  static void SplitInto(const std::string& value, std::vector<std::string>* words, std::string* cur, bool* in_word) {
    bool had_text = *in_word && !cur->empty();
    *in_word = had_text;
    for (char ch : value) {
      if (std::isspace(static_cast<unsigned char>(ch))) {
        if (*in_word) words->push_back(std::move(*cur));
        cur->clear();
        *in_word = false;
      } else {
        *cur += ch;
        *in_word = true;
      }
    }
  }

  Status SingleQuoted(std::string* out) {
    size_t close = s_.find('\'', i_ + 1);
    if (close == std::string_view::npos) return Status::Error(EINVAL, "unterminated single quote in: " + std::string(s_));
    out->append(s_.substr(i_ + 1, close - i_ - 1));
    i_ = close + 1;
    return Status::Ok();
  }

  Status DoubleQuoted(std::string* out) {
    ++i_;
    while (i_ < s_.size() && s_[i_] != '"') {
      char c = s_[i_];
      if (c == escape_ && i_ + 1 < s_.size() &&
          (s_[i_ + 1] == '"' || s_[i_ + 1] == '$' || s_[i_ + 1] == escape_)) {
        *out += s_[i_ + 1];
        i_ += 2;
      } else if (c == '$') {
        ++i_;
        RETURN_IF_ERROR(Dollar(out));
      } else {
        *out += c;
        ++i_;
      }
    }
    if (i_ >= s_.size()) return Status::Error(EINVAL, "unterminated double quote in: " + std::string(s_));
    ++i_;
    return Status::Ok();
  }

  // After a '$': a name, ${...}, or a literal '$'.
  Status Dollar(std::string* out) {
    if (i_ < s_.size() && s_[i_] == '{') return Braced(out);
    if (i_ >= s_.size() || !IsNameStart(s_[i_])) {
      *out += '$';
      return Status::Ok();
    }
    size_t start = i_;
    while (i_ < s_.size() && IsNameChar(s_[i_])) ++i_;
    auto it = vars_.find(std::string(s_.substr(start, i_ - start)));
    if (it != vars_.end()) *out += it->second;
    return Status::Ok();
  }

  Status Braced(std::string* out) {
    ++i_;  // '{'
    size_t start = i_;
    while (i_ < s_.size() && IsNameChar(s_[i_])) ++i_;
    std::string name(s_.substr(start, i_ - start));
    if (name.empty()) return Status::Error(EINVAL, "bad substitution in: " + std::string(s_));
    auto it = vars_.find(name);
    bool set = it != vars_.end();
    std::string value = set ? it->second : "";
    if (i_ < s_.size() && s_[i_] == '}') {
      ++i_;
      *out += value;
      return Status::Ok();
    }
    bool colon = i_ < s_.size() && s_[i_] == ':';
    if (colon) ++i_;
    if (i_ >= s_.size() || (s_[i_] != '-' && s_[i_] != '+' && s_[i_] != '?'))
      return Status::Error(EINVAL, "bad substitution in: " + std::string(s_));
    char op = s_[i_++];
    ASSIGN_OR_RETURN(std::string word, BracedWord());
    bool present = colon ? !value.empty() : set;
    if (op == '-') *out += present ? value : word;
    if (op == '+') *out += present ? word : "";
    if (op == '?') {
      if (!present) return Status::Error(EINVAL, name + ": " + (word.empty() ? "is not allowed to be unset" : word));
      *out += value;
    }
    return Status::Ok();
  }

  // The word of ${X:-word} up to the matching '}', itself expanded.
  Result<std::string> BracedWord() {
    size_t start = i_;
    int depth = 0;
    for (; i_ < s_.size(); ++i_) {
      char c = s_[i_];
      if (c == escape_) {
        ++i_;
      } else if (c == '$' && i_ + 1 < s_.size() && s_[i_ + 1] == '{') {
        ++depth;
        ++i_;
      } else if (c == '}') {
        if (depth == 0) break;
        --depth;
      }
    }
    if (i_ >= s_.size()) return Status::Error(EINVAL, "missing '}' in: " + std::string(s_));
    std::string_view inner = s_.substr(start, i_ - start);
    ++i_;
    return ExpandWord(inner, vars_, escape_);
  }

  std::string_view s_;
  const VarMap& vars_;
  char escape_;
  size_t i_ = 0;
};

// Splits on unquoted whitespace without touching quotes, escapes or $ (for KEY=VALUE lists).
Result<std::vector<std::string>> SplitRaw(std::string_view s, char escape) {
  std::vector<std::string> words;
  std::string cur;
  char quote = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (!quote && std::isspace(static_cast<unsigned char>(c))) {
      if (!cur.empty()) words.push_back(std::move(cur));
      cur.clear();
      continue;
    }
    cur += c;
    if (c == escape && quote != '\'' && i + 1 < s.size()) {
      cur += s[++i];
    } else if (quote == 0 && (c == '"' || c == '\'')) {
      quote = c;
    } else if (c == quote) {
      quote = 0;
    }
  }
  if (quote) return Status::Error(EINVAL, "unterminated quote in: " + std::string(s));
  if (!cur.empty()) words.push_back(std::move(cur));
  return words;
}

}  // namespace

Result<std::vector<std::string>> ExpandWords(std::string_view text, const VarMap& vars, char escape) {
  return WordLexer(text, vars, escape).Run(/*split=*/true);
}

Result<std::string> ExpandWord(std::string_view text, const VarMap& vars, char escape) {
  ASSIGN_OR_RETURN(std::vector<std::string> words, WordLexer(text, vars, escape).Run(/*split=*/false));
  return words.empty() ? std::string() : words.front();
}

Result<std::vector<KeyValue>> ParseKeyValues(std::string_view text, const VarMap& vars, char escape,
                                             bool allow_legacy, bool allow_bare_key) {
  ASSIGN_OR_RETURN(std::vector<std::string> raw, SplitRaw(Trim(text), escape));
  std::vector<KeyValue> out;
  if (raw.empty()) return Status::Error(EINVAL, "missing KEY=VALUE");
  if (allow_legacy && raw.front().find('=') == std::string::npos) {
    std::string_view rest = TrimLeft(Trim(text).substr(raw.front().size()));
    if (rest.empty()) return Status::Error(EINVAL, "ENV " + raw.front() + " has no value");
    ASSIGN_OR_RETURN(std::string value, ExpandWord(rest, vars, escape));
    out.push_back({raw.front(), value, true});
    return out;
  }
  for (const std::string& word : raw) {
    size_t eq = word.find('=');
    if (eq == std::string::npos) {
      if (!allow_bare_key) return Status::Error(EINVAL, "\"" + word + "\" is not KEY=VALUE");
      ASSIGN_OR_RETURN(std::string key, ExpandWord(word, vars, escape));
      out.push_back({key, "", false});
      continue;
    }
    ASSIGN_OR_RETURN(std::string key, ExpandWord(word.substr(0, eq), vars, escape));
    ASSIGN_OR_RETURN(std::string value, ExpandWord(word.substr(eq + 1), vars, escape));
    if (key.empty()) return Status::Error(EINVAL, "empty key in \"" + word + "\"");
    out.push_back({key, value, true});
  }
  return out;
}

}  // namespace layerfs
