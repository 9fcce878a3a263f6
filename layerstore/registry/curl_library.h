// CurlLibrary: libcurl, loaded with dlopen the first time a command talks HTTP.
// Only pull, push and login need it; linking it made every command and every mount daemon
// map and relocate libcurl's ~15 dependencies (TLS stacks, LDAP, Kerberos, RTMP, SSH) at start,
// about a quarter of `layerfs mount`'s time. Thread-safe; curl_global_init runs once.
#pragma once

#include <curl/curl.h>

#include "layerstore/base/status.h"

namespace layerfs {

struct CurlLibrary {
  CURL* (*easy_init)();
  void (*easy_cleanup)(CURL*);
  CURLcode (*easy_setopt)(CURL*, CURLoption, ...);
  CURLcode (*easy_getinfo)(CURL*, CURLINFO, ...);
  CURLcode (*easy_perform)(CURL*);
  const char* (*easy_strerror)(CURLcode);
  curl_slist* (*slist_append)(curl_slist*, const char*);
  void (*slist_free_all)(curl_slist*);
};

// The loaded library, or why it could not be loaded (one line naming libcurl.so.4).
Result<const CurlLibrary*> LoadCurl();

}  // namespace layerfs
