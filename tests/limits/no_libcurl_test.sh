#!/usr/bin/env bash
# libcurl is loaded only when a command talks HTTP (layerstore/registry/curl_library.h). Without a
# usable libcurl.so.4 (here: /dev/null bound over it in a private mount namespace) every other
# command works, and pull fails with one line naming the library and exit 1.
# Usage: no_libcurl_test.sh LAYERFS_BINARY (as root).
set -euo pipefail

layerfs=$(realpath "${1:?usage: no_libcurl_test.sh LAYERFS_BINARY}")
[ "$(id -u)" = 0 ] || { echo "skip: needs root (mount namespace)"; exit 77; }
# awk reads all of ldconfig's output: exiting early would SIGPIPE it, which pipefail reports.
lib=$(ldconfig -p | awk '/libcurl\.so\.4 \(libc6,x86-64\)/ {found = $NF} END {print found}')
[ -n "$lib" ] || { echo "skip: no libcurl.so.4 to hide"; exit 77; }
lib=$(readlink -f "$lib")

work=$(mktemp -d /tmp/layerfs-nocurl-XXXXXX)
trap 'rm -rf "$work"' EXIT
export layerfs lib work
unshare -m bash -euo pipefail -c '
  fail() { echo "FAIL: $*"; exit 1; }
  mount --bind /dev/null "$lib"
  L="$layerfs --root $work/store"
  $L images >/dev/null || fail "images needs libcurl"
  $L --help >/dev/null || fail "--help needs libcurl"
  if $L pull -q 127.0.0.1:9/none:1 >"$work/out" 2>"$work/err"; then fail "pull without libcurl succeeded"; fi
  [ "$(wc -l <"$work/err")" = 1 ] || fail "expected one error line, got: $(cat "$work/err")"
  grep -q "cannot load libcurl.so.4" "$work/err" || fail "unclear error: $(cat "$work/err")"
'
echo "no libcurl: all passed"
