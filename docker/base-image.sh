#!/usr/bin/env bash
# Assemble Fjord's minimal runtime base image from Debian packages, with no registry pull:
# the C runtime the binaries link (libc6: glibc and the dynamic loader; libgcc-s1:
# libgcc_s for unwinding) and the CA bundle, unpacked with `dpkg-deb -x` into a rootfs and
# loaded with `docker import`. There is no shell, no package manager and no dpkg database.
#
#   docker/base-image.sh [TAG]        (default fjord-base:bookworm)
#
# The image is rebuilt only when TAG is missing from the local docker; the .debs and the
# rootfs tarball are cached under ${FJORD_CACHE:-~/.cache/fjord}/images. REBUILD=1 forces.
# It is the same content as the public distroless "cc" base the Dockerfiles default to.
set -euo pipefail
TAG="${1:-fjord-base:bookworm}"
CACHE="${FJORD_CACHE:-$HOME/.cache/fjord}/images"
PACKAGES=(libc6 libgcc-s1 ca-certificates)

if [[ "${REBUILD:-0}" != 1 ]] && docker image inspect "$TAG" >/dev/null 2>&1; then
  echo "base image $TAG: cached"
  exit 0
fi

mkdir -p "$CACHE/debs"
# apt-get download fetches the host's candidate versions from Debian's archive.
(cd "$CACHE/debs" && rm -f ./*.deb && apt-get -qq -o APT::Sandbox::User=root download "${PACKAGES[@]}")

rootfs="$(mktemp -d "$CACHE/rootfs.XXXXXX")"
trap 'rm -rf "$rootfs"' EXIT
for deb in "$CACHE"/debs/*.deb; do
  dpkg-deb -x "$deb" "$rootfs"
done

# ca-certificates ships the certificates; the bundle is made by its postinst
# (update-ca-certificates), which cannot run here: concatenate the same files.
mkdir -p "$rootfs/etc/ssl/certs"
find "$rootfs/usr/share/ca-certificates" -name '*.crt' -print0 | sort -z \
  | xargs -0 cat > "$rootfs/etc/ssl/certs/ca-certificates.crt"
[[ -s "$rootfs/etc/ssl/certs/ca-certificates.crt" ]] || { echo "empty CA bundle" >&2; exit 1; }

# What a Rust binary never loads: docs, locales, iconv modules, ldconfig and friends, and
# the tools ca-certificates ships for its postinst.
rm -rf "$rootfs"/usr/share/{doc,man,info,locale,lintian} \
       "$rootfs"/usr/lib/x86_64-linux-gnu/gconv \
       "$rootfs"/usr/bin "$rootfs"/usr/sbin "$rootfs"/sbin \
       "$rootfs"/usr/libexec "$rootfs"/usr/share/ca-certificates \
       "$rootfs"/etc/ca-certificates.conf "$rootfs"/etc/ld.so.conf.d "$rootfs"/etc/ld.so.conf

# Users for the images' numeric USER 10001 (the names only show in tools).
cat > "$rootfs/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/sbin/nologin
fjord:x:10001:10001:fjord:/data:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
EOF
cat > "$rootfs/etc/group" <<'EOF'
root:x:0:
fjord:x:10001:
nogroup:x:65534:
EOF
# Name resolution for container names on a docker network: /etc/hosts, then DNS.
echo 'hosts: files dns' > "$rootfs/etc/nsswitch.conf"
mkdir -p "$rootfs/tmp" "$rootfs/root"
chmod 1777 "$rootfs/tmp"
chmod 0700 "$rootfs/root"

tar --numeric-owner --owner=0 --group=0 -C "$rootfs" -cf "$CACHE/base-bookworm.tar" .
docker import \
  --change 'ENV PATH=/usr/local/bin:/usr/bin:/bin' \
  --message "fjord runtime base: ${PACKAGES[*]} from Debian bookworm" \
  "$CACHE/base-bookworm.tar" "$TAG" >/dev/null
echo "base image $TAG: assembled from $(cd "$CACHE/debs" && echo *.deb)"
