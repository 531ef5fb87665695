#!/bin/sh
# Builds unisched as one static binary and the root filesystem of its
# container image, the same way in the Dockerfile's build stage and on a
# machine with Go (where the result can be tested without a registry):
#
#   packaging/docker/build-static.sh OUTDIR
#
# OUTDIR/rootfs/ then holds usr/bin/unisched, etc/passwd and etc/group (the
# unisched user, uid and gid 10001), the CA certificates, the sample
# configurations under etc/unisched/ and an empty var/lib/unisched. The
# binary is checked to be static and to run (`unisched version`).
# VERSION (default: git describe, else "dev") is stamped into it.
set -eu

out=${1:?usage: build-static.sh OUTDIR}
top=$(cd "$(dirname "$0")/../.." && pwd)
version=${VERSION:-$(git -C "$top" describe --always --dirty 2>/dev/null || echo dev)}
rootfs=$out/rootfs
uid=10001

rm -rf "$rootfs"
mkdir -p "$rootfs/usr/bin" "$rootfs/etc/ssl/certs" "$rootfs/etc/unisched" "$rootfs/var/lib/unisched" "$rootfs/tmp"

# CGO off: no libc, so the binary runs on scratch; -trimpath: no build
# paths in it; -s -w: no symbol table or DWARF.
(cd "$top" && CGO_ENABLED=0 go build -trimpath \
  -ldflags "-s -w -X main.Version=$version" \
  -o "$rootfs/usr/bin/unisched" ./cmd/unisched)

bin=$rootfs/usr/bin/unisched
if command -v file >/dev/null 2>&1; then
  desc=$(file -b "$bin")
  case "$desc" in
    *"statically linked"*|*"static-pie linked"*) ;;
    *) echo "build-static.sh: $bin is not static: $desc" >&2; exit 1 ;;
  esac
fi
if command -v ldd >/dev/null 2>&1; then
  if lddout=$(ldd "$bin" 2>&1); then
    echo "build-static.sh: ldd found libraries in $bin:" >&2; echo "$lddout" >&2; exit 1
  fi
  case "$lddout" in
    *"not a dynamic executable"*|*"statically linked"*) ;;
    *) echo "build-static.sh: unexpected ldd answer: $lddout" >&2; exit 1 ;;
  esac
fi
got=$("$bin" version)
if [ "$got" != "unisched $version" ]; then
  echo "build-static.sh: $bin version says '$got', want 'unisched $version'" >&2; exit 1
fi

ca=/etc/ssl/certs/ca-certificates.crt
if [ ! -f "$ca" ]; then
  echo "build-static.sh: $ca missing (install ca-certificates)" >&2; exit 1
fi
cp "$ca" "$rootfs/etc/ssl/certs/ca-certificates.crt"
printf 'root:x:0:0:root:/root:/sbin/nologin\nunisched:x:%s:%s:unisched:/var/lib/unisched:/sbin/nologin\n' $uid $uid >"$rootfs/etc/passwd"
printf 'root:x:0:\nunisched:x:%s:\n' $uid >"$rootfs/etc/group"
cp "$top/etc/unisched.yaml" "$top/etc/unisched.conf.sample" "$rootfs/etc/unisched/"
chmod 1777 "$rootfs/tmp"
echo "$bin: $got, static"
