#include "layerstore/registry/curl_library.h"

#include <dlfcn.h>

#include <mutex>

namespace layerfs {
namespace {

constexpr const char* kSoname = "libcurl.so.4";

// fn = the symbol `name`; the first one missing is remembered for the error.
template <class Fn>
void Bind(void* handle, const char* name, Fn*& fn, std::string& missing) {
  fn = reinterpret_cast<Fn*>(::dlsym(handle, name));
  if (fn == nullptr && missing.empty()) missing = name;
}

Result<const CurlLibrary*> Open() {
  // Never dlclosed: handles and callbacks may outlive any one caller.
  void* handle = ::dlopen(kSoname, RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr)
    return Status::Error(ENOENT, std::string("cannot load ") + kSoname + " (install libcurl4): " + ::dlerror());
  static CurlLibrary lib;
  std::string missing;
  CURLcode (*global_init)(long) = nullptr;
  Bind(handle, "curl_global_init", global_init, missing);
  Bind(handle, "curl_easy_init", lib.easy_init, missing);
  Bind(handle, "curl_easy_cleanup", lib.easy_cleanup, missing);
  Bind(handle, "curl_easy_setopt", lib.easy_setopt, missing);
  Bind(handle, "curl_easy_getinfo", lib.easy_getinfo, missing);
  Bind(handle, "curl_easy_perform", lib.easy_perform, missing);
  Bind(handle, "curl_easy_strerror", lib.easy_strerror, missing);
  Bind(handle, "curl_slist_append", lib.slist_append, missing);
  Bind(handle, "curl_slist_free_all", lib.slist_free_all, missing);
  if (!missing.empty()) return Status::Error(ENOSYS, std::string(kSoname) + " lacks " + missing);
  if (CURLcode rc = global_init(CURL_GLOBAL_DEFAULT); rc != CURLE_OK)
    return Status::Error(EIO, std::string("curl_global_init: ") + lib.easy_strerror(rc));
  return &lib;
}

}  // namespace

Result<const CurlLibrary*> LoadCurl() {
  static std::once_flag once;
  static Result<const CurlLibrary*> loaded = Status::Error(EINVAL, "libcurl not loaded");
  std::call_once(once, [] { loaded = Open(); });
  return loaded;
}

}  // namespace layerfs
