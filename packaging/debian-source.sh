# Sourced by the build scripts of the libraries libmeshtls links in (packaging/wolfssl/build.sh,
# packaging/libconfig/build.sh): fetches a Debian source package with apt itself and unpacks it
# with Debian's patches applied. deb-src lines are derived from the machine's own Debian sources
# (/etc/apt/sources.list.d/*.sources, /etc/apt/sources.list) into a private list read with a
# private state directory under the cache, so no host name is written here and the system's apt
# state is not touched. Several scripts may share one cache: apt's private state is used under a
# lock of its own.
#
# The sourcing script sets `script` (its name in messages) and `log` (the file run() appends to)
# and calls:
#   debian_source_init CACHE            the private apt configuration in CACHE/apt
#   debian_source_newest PACKAGE        prints the newest version of PACKAGE's source (apt update)
#   debian_source_unpack PACKAGE VERSION WORK
#                                       downloads it into WORK and unpacks it as WORK/tree
#   build_cache_open NAME REFRESH       the cache entry of this build, keyed by everything that
#                                       changes its result (configure_flags, extra_cflags, the
#                                       compiler, the sourcing script and this file): holds its
#                                       lock (fd 9), sets key, selected and log, and unless REFRESH
#                                       is 1 prints the prefix of a completed build and exits
#
# Needs: apt, dpkg-dev (dpkg-source) (packaging/install-deps.sh).

die() {
  echo "$script: error: $*" >&2
  exit 1
}
say() { echo "$script: $*" >&2; }

run() {
  if ! "$@" >>"$log" 2>&1; then
    tail -n 40 "$log" >&2
    die "failed: $* (full log: $log)"
  fi
}

debian_source_init() {
  local state="$1/apt" file
  for tool in apt-get apt-cache dpkg-source flock; do
    command -v "$tool" >/dev/null || die "$tool not found (run packaging/install-deps.sh)"
  done
  mkdir -p "$state/lists/partial" "$state/cache/archives/partial" "$state/etc"
  # apt's private state is not safe to share: each use below holds this lock (fd 8).
  exec 8>"$state/.lock"
  local list="$state/etc/sources.list"
  : >"$list"
  # deb822 files: one stanza per paragraph; keep Types: deb stanzas as deb-src lines.
  for file in /etc/apt/sources.list.d/*.sources; do
    [ -f "$file" ] || continue
    awk '
      function flush() {
        if (uris != "" && suites != "" && (types ~ /(^| )deb( |$)/ || types ~ /deb-src/)) {
          n = split(uris, u, " "); m = split(suites, s, " ")
          opt = (signed != "") ? " [signed-by=" signed "]" : ""
          for (i = 1; i <= n; i++) for (j = 1; j <= m; j++)
            print "deb-src" opt " " u[i] " " s[j] " " components
        }
        types = uris = suites = components = signed = ""
      }
      /^[ \t]*#/ { next }
      /^[ \t]*$/ { flush(); next }
      {
        field = $0; sub(/:.*/, "", field); value = $0; sub(/^[^:]*:[ \t]*/, "", value)
        if (field == "Types") types = value
        else if (field == "URIs") uris = value
        else if (field == "Suites") suites = value
        else if (field == "Components") components = value
        else if (field == "Signed-By") signed = value
        else if (field == "Enabled" && value == "no") types = ""
      }
      END { flush() }
    ' "$file" >>"$list"
  done
  # One-line format: every deb line becomes a deb-src line with the same options and URI.
  for file in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$file" ] || continue
    sed -n -E 's/^[[:space:]]*deb(-src)?[[:space:]]+/deb-src /p' "$file" >>"$list"
  done
  sort -u -o "$list" "$list"
  [ -s "$list" ] || die "no Debian sources found in /etc/apt (sources.list or sources.list.d/*.sources)"
  apt_options=(
    -o "Dir::Etc::SourceList=$list" -o "Dir::Etc::SourceParts=/dev/null"
    -o "Dir::State::Lists=$state/lists" -o "Dir::Cache=$state/cache"
    -o "Dir::State::status=/var/lib/dpkg/status"
    -o "APT::Sandbox::User=$(id -un)" -o "Debug::NoLocking=1"
  )
}

debian_source_newest() {
  local package="$1" version
  say "fetching the Debian source index (private list: ${apt_options[1]#*=})"
  flock 8
  run apt-get "${apt_options[@]}" update
  version=$(apt-cache "${apt_options[@]}" showsrc "$package" 2>/dev/null |
    awk -v package="$package" '
      /^Package: / { p = ($2 == package); next }
      p && /^Version:/ { print $2 }' |
    sort -V | tail -n1)
  flock -u 8
  [ -n "$version" ] || die "apt knows no source package $package"
  echo "$version"
}

debian_source_unpack() {
  local package="$1" version="$2" work="$3" dsc
  rm -rf "$work"
  mkdir -p "$work"
  say "downloading $package $version source"
  flock 8
  (cd "$work" && run apt-get "${apt_options[@]}" source --download-only "$package=$version")
  flock -u 8
  dsc=$(ls "$work/${package}_"*.dsc 2>/dev/null | head -n1)
  [ -n "$dsc" ] || die "apt-get source produced no .dsc in $work"
  (cd "$work" && run dpkg-source --no-check -x "$(basename "$dsc")" tree)
}

build_cache_open() {
  local name="$1" refresh="$2"
  key=$( { printf '%s\n' "${configure_flags[@]}" "$extra_cflags" "$(uname -m)";
           "${compiler%% *}" --version 2>/dev/null | head -n1;
           cat "$script_dir/build.sh" "$script_dir/../debian-source.sh"; } |
         sha256sum | cut -c1-12)
  # Concurrent builds into the same cache wait for each other.
  exec 9>"$cache/.lock-$name-$key"
  flock 9
  selected="$cache/selected-$name-$key"
  if [ "$refresh" != 1 ] && [ -s "$selected" ]; then
    local prefix
    prefix=$(cat "$selected")
    if [ -f "$prefix/.complete" ]; then
      say "using cached $prefix"
      echo "$prefix"
      exit 0
    fi
  fi
  log="$cache/build-$name-$key.log"
  : >"$log"
}
