#include "layerstore/estargz/estargz_toc.h"

#include <charconv>
#include <ctime>
#include <set>

#include <nlohmann/json.hpp>

#include "layerstore/base/base64.h"

namespace layerfs {

namespace {

using Json = nlohmann::ordered_json;

const std::set<std::string, std::less<>> kTypes = {"dir", "reg", "symlink", "hardlink", "char", "block", "fifo", "chunk"};

// RFC 3339 in UTC, with the fraction only when there is one (as Go's RFC3339Nano prints).
std::string Rfc3339(int64_t sec, uint32_t nsec) {
  time_t t = static_cast<time_t>(sec);
  struct tm tm;
  gmtime_r(&t, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  std::string out = buf;
  if (nsec != 0) {
    std::string frac = std::to_string(1000000000u + nsec).substr(1);
    while (frac.back() == '0') frac.pop_back();
    out += "." + frac;
  }
  return out + "Z";
}

bool Digits(std::string_view s, size_t pos, size_t n, int* out) {
  if (pos + n > s.size()) return false;
  auto r = std::from_chars(s.data() + pos, s.data() + pos + n, *out);
  return r.ec == std::errc() && r.ptr == s.data() + pos + n;
}

// "2019-08-20T10:30:43Z", "...43.5Z", "...43+02:00".
bool ParseRfc3339(std::string_view s, int64_t* sec, uint32_t* nsec) {
  int year, mon, day, hour, min, second;
  if (s.size() < 20 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') || s[13] != ':' || s[16] != ':')
    return false;
  if (!Digits(s, 0, 4, &year) || !Digits(s, 5, 2, &mon) || !Digits(s, 8, 2, &day) || !Digits(s, 11, 2, &hour) ||
      !Digits(s, 14, 2, &min) || !Digits(s, 17, 2, &second))
    return false;
  size_t i = 19;
  uint32_t frac = 0;
  if (s[i] == '.') {
    size_t digits = 0;
    for (++i; i < s.size() && s[i] >= '0' && s[i] <= '9'; ++i, ++digits)
      if (digits < 9) frac = frac * 10 + static_cast<uint32_t>(s[i] - '0');
    if (digits == 0) return false;
    for (; digits < 9; ++digits) frac *= 10;
  }
  int offset_min = 0;
  if (i < s.size() && (s[i] == 'Z' || s[i] == 'z')) ++i;
  else {
    int oh, om;
    if (i + 6 != s.size() || (s[i] != '+' && s[i] != '-') || s[i + 3] != ':' || !Digits(s, i + 1, 2, &oh) ||
        !Digits(s, i + 4, 2, &om))
      return false;
    offset_min = (s[i] == '-' ? -1 : 1) * (oh * 60 + om);
    i += 6;
  }
  if (i != s.size() || mon < 1 || mon > 12 || day < 1 || day > 31 || hour > 23 || min > 59 || second > 60) return false;
  struct tm tm = {};
  tm.tm_year = year - 1900;
  tm.tm_mon = mon - 1;
  tm.tm_mday = day;
  tm.tm_hour = hour;
  tm.tm_min = min;
  tm.tm_sec = second;
  *sec = static_cast<int64_t>(timegm(&tm)) - int64_t{offset_min} * 60;
  *nsec = frac;
  return true;
}

Json EntryJson(const EstargzTocEntry& e) {
  Json j = {{"name", e.name}, {"type", e.type}};
  if (e.size) j["size"] = e.size;
  if (e.type != "chunk") j["modtime"] = Rfc3339(e.mtime_sec, e.mtime_nsec);
  if (!e.link_name.empty()) j["linkName"] = e.link_name;
  if (e.type != "chunk") {
    j["mode"] = e.mode;
    j["uid"] = e.uid;
    j["gid"] = e.gid;
  }
  if (!e.user_name.empty()) j["userName"] = e.user_name;
  if (!e.group_name.empty()) j["groupName"] = e.group_name;
  if (e.offset) j["offset"] = e.offset;
  if (e.inner_offset) j["innerOffset"] = e.inner_offset;
  if (e.type == "char" || e.type == "block") {
    j["devMajor"] = e.dev_major;
    j["devMinor"] = e.dev_minor;
  }
  if (!e.xattrs.empty()) {
    Json x = Json::object();
    for (const auto& [k, v] : e.xattrs) x[k] = Base64Encode(v);
    j["xattrs"] = x;
  }
  if (!e.digest.empty()) j["digest"] = e.digest;
  if (e.chunk_offset) j["chunkOffset"] = e.chunk_offset;
  if (e.chunk_size) j["chunkSize"] = e.chunk_size;
  if (!e.chunk_digest.empty()) j["chunkDigest"] = e.chunk_digest;
  return j;
}

template <class T>
bool Number(const Json& j, const char* key, T* out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return true;
  if (!it->is_number_integer() || it->get<int64_t>() < 0) return false;
  uint64_t v = it->get<uint64_t>();
  if (v > std::numeric_limits<T>::max()) return false;
  *out = static_cast<T>(v);
  return true;
}

bool Text(const Json& j, const char* key, std::string* out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return true;
  if (!it->is_string()) return false;
  *out = it->get<std::string>();
  return true;
}

bool SafeName(std::string_view clean) {
  for (size_t start = 0; start <= clean.size();) {
    size_t end = clean.find('/', start);
    if (end == std::string_view::npos) end = clean.size();
    std::string_view part = clean.substr(start, end - start);
    if (part == ".." || part == "." || (part.empty() && !clean.empty())) return false;
    start = end + 1;
  }
  return clean.find('\0') == std::string_view::npos;
}

Status Fields(const Json& j, EstargzTocEntry* e) {
  std::string modtime;
  bool ok = j.is_object() && Text(j, "name", &e->name) && Text(j, "type", &e->type) && Number(j, "size", &e->size) &&
            Text(j, "modtime", &modtime) && Text(j, "linkName", &e->link_name) && Number(j, "mode", &e->mode) &&
            Number(j, "uid", &e->uid) && Number(j, "gid", &e->gid) && Text(j, "userName", &e->user_name) &&
            Text(j, "groupName", &e->group_name) && Number(j, "devMajor", &e->dev_major) &&
            Number(j, "devMinor", &e->dev_minor) && Text(j, "digest", &e->digest) && Number(j, "offset", &e->offset) &&
            Number(j, "innerOffset", &e->inner_offset) && Number(j, "chunkOffset", &e->chunk_offset) &&
            Number(j, "chunkSize", &e->chunk_size) && Text(j, "chunkDigest", &e->chunk_digest);
  if (!ok) return Status::Error(EINVAL, "a field has the wrong type");
  if (!modtime.empty() && !ParseRfc3339(modtime, &e->mtime_sec, &e->mtime_nsec))
    return Status::Error(EINVAL, "bad modtime \"" + modtime + "\"");
  auto x = j.find("xattrs");
  if (x != j.end() && !x->is_null()) {
    if (!x->is_object()) return Status::Error(EINVAL, "xattrs is not an object");
    for (auto it = x->begin(); it != x->end(); ++it) {
      auto value = it->is_string() ? Base64Decode(it->get<std::string>()) : Result<std::string>(Status::Error(EINVAL, ""));
      if (!value.ok() || it.key().empty()) return Status::Error(EINVAL, "bad xattr \"" + it.key() + "\"");
      e->xattrs[it.key()] = *value;
    }
  }
  return Status::Ok();
}

// The rules an entry must keep given the one before it (prev: null for the first).
Status Check(const EstargzTocEntry& e, const EstargzTocEntry* prev, uint64_t toc_offset) {
  std::string clean = CleanName(e.name);
  if (e.name.empty() || !SafeName(clean)) return Status::Error(EINVAL, "unsafe name");
  if (!kTypes.contains(e.type)) return Status::Error(EINVAL, "unknown type \"" + e.type + "\"");
  if ((e.type == "symlink" || e.type == "hardlink") && e.link_name.empty()) return Status::Error(EINVAL, "link without linkName");
  if (e.type == "hardlink" && !SafeName(CleanName(e.link_name))) return Status::Error(EINVAL, "unsafe linkName");
  if (!e.digest.empty() && !Digest::Parse(e.digest).ok()) return Status::Error(EINVAL, "bad digest");
  if (!e.HasData()) return Status::Ok();
  if (e.offset == 0 || e.offset >= toc_offset) return Status::Error(EINVAL, "data offset outside the blob");
  if (!Digest::Parse(e.chunk_digest).ok()) return Status::Error(EINVAL, "missing or bad chunkDigest");
  if (e.type == "reg") {
    if (e.chunk_offset != 0 || e.chunk_size > e.size) return Status::Error(EINVAL, "bad first chunk");
    return Status::Ok();
  }
  // A chunk continues the file of the entry before it, right where that chunk ended.
  if (prev == nullptr || !prev->HasData() || prev->name != e.name || prev->chunk_size == 0 ||
      e.chunk_offset != prev->chunk_offset + prev->chunk_size || e.offset <= prev->offset)
    return Status::Error(EINVAL, "chunk does not continue its file");
  return Status::Ok();
}

}  // namespace

std::string CleanName(std::string_view name) {
  while (name.starts_with("./") || name.starts_with("/")) name.remove_prefix(name.starts_with("/") ? 1 : 2);
  while (name.ends_with("/")) name.remove_suffix(1);
  if (name == ".") return "";
  return std::string(name);
}

std::string EstargzTocJson(const EstargzToc& toc) {
  Json entries = Json::array();
  for (const EstargzTocEntry& e : toc.entries) entries.push_back(EntryJson(e));
  return Json{{"version", 1}, {"entries", entries}}.dump();
}

Result<EstargzToc> ParseEstargzToc(std::string_view json, uint64_t toc_offset) {
  Json doc = Json::parse(json, nullptr, false);
  if (doc.is_discarded() || !doc.is_object()) return Status::Error(EINVAL, "eStargz TOC is not a JSON object");
  auto version = doc.find("version");
  if (version == doc.end() || !version->is_number_integer() || version->get<int64_t>() != 1)
    return Status::Error(EINVAL, "eStargz TOC: version is not 1");
  auto entries = doc.find("entries");
  if (entries == doc.end() || !entries->is_array()) return Status::Error(EINVAL, "eStargz TOC: no entries array");
  EstargzToc toc;
  toc.entries.reserve(entries->size());
  // A chunk's file: the size of the reg entry it continues, to bound its chunkOffset.
  uint64_t file_size = 0;
  for (const Json& j : *entries) {
    EstargzTocEntry e;
    Status st = Fields(j, &e);
    if (st.ok()) st = Check(e, toc.entries.empty() ? nullptr : &toc.entries.back(), toc_offset);
    if (st.ok() && e.type == "reg") file_size = e.size;
    if (st.ok() && e.type == "chunk" && (e.chunk_offset >= file_size || e.chunk_offset + e.chunk_size > file_size))
      st = Status::Error(EINVAL, "chunk beyond the end of its file");
    if (!st.ok()) return st.WithContext("eStargz TOC entry " + std::to_string(toc.entries.size()) + " \"" + e.name + "\"");
    toc.entries.push_back(std::move(e));
  }
  return toc;
}

}  // namespace layerfs
