# Install steps shared by the test command (tools/test.sh) and the benchmark
# (e2e/bench.sh), sourced by both. Everything lands in Debian's packages or under
# ${FJORD_CACHE:-~/.cache/fjord}, built once and reused, so a fresh machine needs only
# the repository and the registries.
#
#   deps_apt PKG...          install the Debian packages not installed yet
#   deps_cmd CMD PKG         print the path of CMD, installing PKG when CMD is not on PATH
#   deps_kafka_classpath     print the file holding Apache Kafka's classpath (Maven)
#   deps_rdkafka_performance print librdkafka's rdkafka_performance, built from the
#                            source the rdkafka-sys crate of Cargo.lock bundles
#   deps_librdkafka_tests    print the tests/ directory of that same librdkafka, its
#                            test-runner built (librdkafka's own test programs)

DEPS_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEPS_CACHE="${FJORD_CACHE:-$HOME/.cache/fjord}"

deps_apt() {
  local missing=() pkg
  for pkg in "$@"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  [[ ${#missing[@]} -eq 0 ]] && return 0
  echo "installing ${missing[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

# A command on PATH, or the one its package installed when PATH does not reach it.
deps_cmd() {
  local cmd="$1" pkg="$2" found
  if found=$(command -v "$cmd"); then echo "$found"; return 0; fi
  echo "installing $pkg for $cmd" >&2
  apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$pkg" >&2 \
    || return 1
  found=$(command -v "$cmd") || found=$(dpkg -L "$pkg" | grep -E "/s?bin/$cmd\$" | head -n 1)
  [[ -n "$found" && -x "$found" ]] || { echo "deps: $pkg installed no $cmd" >&2; return 1; }
  echo "$found"
}

deps_kafka_classpath() {
  local version="${KAFKA_VERSION:-4.4.0}"
  local pom="$DEPS_ROOT/e2e/apache-kafka/pom.xml"
  local cpfile="$DEPS_CACHE/apache-kafka-$version.classpath"
  if [[ ! -s "$cpfile" || "$pom" -nt "$cpfile" ]]; then
    mkdir -p "$DEPS_CACHE"
    echo "resolving Apache Kafka $version with Maven..." >&2
    mvn -q -B -Dstyle.color=never -f "$pom" dependency:build-classpath \
      -Dkafka.version="$version" -Dmdep.outputFile="$cpfile.tmp" >&2 || return 1
    mv "$cpfile.tmp" "$cpfile"
  fi
  echo "$cpfile"
}

# The librdkafka version the project pins is the one rdkafka-sys bundles (its version's
# build metadata, e.g. 4.10.0+2.12.1); its source is in cargo's registry once the crate
# has been fetched.
deps_rdkafka_sys_version() {
  local version
  version=$(sed -n '/^name = "rdkafka-sys"$/{n;s/^version = "\(.*\)"$/\1/p;}' "$DEPS_ROOT/Cargo.lock")
  [[ -n "$version" ]] || { echo "deps: no rdkafka-sys in Cargo.lock" >&2; return 1; }
  echo "$version"
}

# The librdkafka source tree rdkafka-sys VERSION bundles, fetched by cargo if need be.
deps_librdkafka_source() {
  local version="$1" src
  src=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/"rdkafka-sys-$version"/librdkafka \
    2>/dev/null | head -n 1)
  if [[ -z "$src" ]]; then
    (cd "$DEPS_ROOT" && cargo fetch -q >&2) || return 1
    src=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/"rdkafka-sys-$version"/librdkafka \
      2>/dev/null | head -n 1)
  fi
  [[ -n "$src" ]] || { echo "deps: no source of rdkafka-sys $version" >&2; return 1; }
  echo "$src"
}

deps_rdkafka_performance() {
  local version src out build
  version=$(deps_rdkafka_sys_version) || return 1
  out="$DEPS_CACHE/rdkafka-performance-$version/rdkafka_performance"
  if [[ ! -x "$out" ]]; then
    src=$(deps_librdkafka_source "$version") || return 1
    deps_apt build-essential libssl-dev zlib1g-dev libzstd-dev pkg-config python3 >&2 || return 1
    echo "building rdkafka_performance from rdkafka-sys $version (once)..." >&2
    build=$(mktemp -d)
    cp -r "$src" "$build/librdkafka"
    # The logs are not named configure.*: mklove would take them for its modules.
    if (cd "$build/librdkafka" && ./configure --disable-gssapi --disable-curl > build-configure.log 2>&1 &&
        make -j"$(nproc)" libs > build-make.log 2>&1 &&
        make -C examples rdkafka_performance > build-examples.log 2>&1); then
      mkdir -p "$(dirname "$out")"
      cp "$build/librdkafka/examples/rdkafka_performance" "$out.tmp" && mv "$out.tmp" "$out"
      rm -rf "$build"
    else
      echo "deps: building librdkafka failed; logs in $build/librdkafka/build-*.log" >&2
      return 1
    fi
  fi
  echo "$out"
}

# librdkafka's tests/ directory with its test-runner built, from the same source. The
# whole built tree is kept: the runner loads ../src and ../src-cpp's shared libraries and
# runs from tests/ (some tests build helpers there, e.g. 0098's Java producer).
deps_librdkafka_tests() {
  local version src root tree
  version=$(deps_rdkafka_sys_version) || return 1
  root="$DEPS_CACHE/librdkafka-tests-$version"
  if [[ ! -x "$root/librdkafka/tests/test-runner" ]]; then
    src=$(deps_librdkafka_source "$version") || return 1
    deps_apt build-essential libssl-dev zlib1g-dev libzstd-dev pkg-config python3 >&2 || return 1
    echo "building librdkafka's test-runner from rdkafka-sys $version (once)..." >&2
    rm -rf "$root.tmp"
    mkdir -p "$root.tmp"
    tree="$root.tmp/librdkafka"
    cp -r "$src" "$tree"
    # The logs are not named configure.*: mklove would take them for its modules.
    if (cd "$tree" && ./configure --disable-gssapi --disable-curl > build-configure.log 2>&1 &&
        make -j"$(nproc)" libs > build-make.log 2>&1 &&
        make -j"$(nproc)" -C tests test-runner > build-tests.log 2>&1); then
      rm -rf "$root"
      mv "$root.tmp" "$root"
    else
      echo "deps: building librdkafka's tests failed; logs in $tree/build-*.log" >&2
      return 1
    fi
  fi
  echo "$root/librdkafka/tests"
}
