#include "layerstore/snapshots/snapshot_filter.h"

#include <re2/re2.h>

#include <cctype>
#include <utility>

namespace layerfs {

namespace {

// Reads a quoted string at text[*pos] (which is the quote), with backslash escapes.
Result<std::string> ReadQuoted(const std::string& text, size_t* pos) {
  char quote = text[*pos];
  std::string out;
  for (size_t i = *pos + 1; i < text.size(); ++i) {
    if (text[i] == '\\' && i + 1 < text.size()) {
      out += text[++i];
    } else if (text[i] == quote) {
      *pos = i + 1;
      return out;
    } else {
      out += text[i];
    }
  }
  return Status::Error(EINVAL, "filter " + text + ": unterminated quote");
}

// Reads an unquoted run up to any of `stops`.
std::string ReadBare(const std::string& text, size_t* pos, const char* stops) {
  size_t end = text.find_first_of(stops, *pos);
  if (end == std::string::npos) end = text.size();
  std::string out = text.substr(*pos, end - *pos);
  *pos = end;
  return out;
}

std::optional<std::string> FieldValue(const std::vector<std::string>& field, const SnapshotInfo& info) {
  if (field.size() == 1 && field[0] == "name") return info.name;
  if (field.size() == 1 && field[0] == "parent") return info.parent;
  if (field.size() == 1 && field[0] == "kind") {
    switch (info.kind) {
      case SnapshotKind::kView: return std::string("view");
      case SnapshotKind::kActive: return std::string("active");
      case SnapshotKind::kCommitted: return std::string("committed");
    }
  }
  if (field.size() >= 2 && field[0] == "labels") {
    std::string key = field[1];
    for (size_t i = 2; i < field.size(); ++i) key += "." + field[i];
    if (auto it = info.labels.find(key); it != info.labels.end()) return it->second;
  }
  return std::nullopt;
}

}  // namespace

Result<SnapshotFilter::Conjunction> SnapshotFilter::ParseOne(const std::string& text) {
  Conjunction all;
  size_t pos = 0;
  while (pos < text.size()) {
    Selector s;
    while (true) {  // field components
      if (pos < text.size() && (text[pos] == '"' || text[pos] == '\'')) {
        ASSIGN_OR_RETURN(std::string part, ReadQuoted(text, &pos));
        s.field.push_back(std::move(part));
      } else {
        s.field.push_back(ReadBare(text, &pos, ".,=!~"));
      }
      if (pos < text.size() && text[pos] == '.') ++pos;
      else
        break;
    }
    for (const auto& part : s.field)
      if (part.empty()) return Status::Error(EINVAL, "filter " + text + ": empty field name");
    if (text.compare(pos, 2, "==") == 0) s.op = Op::kEqual;
    else if (text.compare(pos, 2, "!=") == 0)
      s.op = Op::kNotEqual;
    else if (text.compare(pos, 2, "~=") == 0)
      s.op = Op::kMatch;
    else if (pos < text.size() && text[pos] != ',')
      return Status::Error(EINVAL, "filter " + text + ": bad operator");
    if (s.op != Op::kPresent) {
      pos += 2;
      if (pos < text.size() && (text[pos] == '"' || text[pos] == '\'')) {
        ASSIGN_OR_RETURN(s.value, ReadQuoted(text, &pos));
      } else {
        s.value = ReadBare(text, &pos, ",");
      }
    }
    if (s.op == Op::kMatch) {
      RE2::Options options;
      options.set_log_errors(false);
      s.re = std::make_shared<const RE2>(s.value, options);
      if (!s.re->ok()) return Status::Error(EINVAL, "filter " + text + ": bad regular expression " + s.value);
    }
    all.push_back(std::move(s));
    if (pos < text.size() && text[pos] == ',') ++pos;
    else if (pos < text.size())
      return Status::Error(EINVAL, "filter " + text + ": expected ','");
  }
  return all;
}

Result<SnapshotFilter> SnapshotFilter::Parse(const std::vector<std::string>& filters) {
  SnapshotFilter f;
  for (const auto& text : filters) {
    if (text.empty()) continue;
    ASSIGN_OR_RETURN(Conjunction c, ParseOne(text));
    f.any_of_.push_back(std::move(c));
  }
  return f;
}

bool SnapshotFilter::Matches(const Selector& s, const SnapshotInfo& info) {
  std::optional<std::string> v = FieldValue(s.field, info);
  switch (s.op) {
    case Op::kPresent: return v.has_value();
    case Op::kEqual: return v && *v == s.value;
    case Op::kNotEqual: return !v || *v != s.value;
    case Op::kMatch: return v && RE2::PartialMatch(*v, *s.re);
  }
  return false;
}

bool SnapshotFilter::Matches(const SnapshotInfo& info) const {
  if (any_of_.empty()) return true;
  for (const auto& all : any_of_) {
    bool ok = true;
    for (const auto& s : all) ok = ok && Matches(s, info);
    if (ok) return true;
  }
  return false;
}

}  // namespace layerfs
