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
#   debian_source_init CACHE [SUITE…]   the private apt configuration in CACHE/apt; each SUITE
#                                       (e.g. sid) is added for every Debian archive the machine
#                                       uses for its own release
#   debian_source_newest PACKAGE        prints the newest version of PACKAGE's source (apt update)
#   debian_source_unpack PACKAGE VERSION WORK
#                                       downloads it into WORK and unpacks it as WORK/tree
#   debian_source_orig PACKAGE UPSTREAM SHA256 WORK
#                                       downloads the upstream tarball PACKAGE_UPSTREAM.orig.tar.gz
#                                       and its .asc from the archive's pool into WORK, refusing any
#                                       other content than SHA256
#   signature_check FILE KEY FINGERPRINT
#                                       FILE.asc is a valid signature of FILE by FINGERPRINT, whose
#                                       public key is the armored KEY
#   build_cache_open NAME REFRESH       the cache entry of this build, keyed by everything that
#                                       changes its result (configure_flags, extra_cflags, the
#                                       compiler and its version, the sourcing script's folder but its *.md notes,
#                                       and this file): holds its
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
  local state="$1/apt" file codename
  shift
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
  # Newer suites of the same archives: a line for the machine's own release (not its -updates or
  # -security) is repeated for each SUITE asked for, with the same options and URI.
  if [ $# -gt 0 ]; then
    codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
    [ -n "$codename" ] || die "/etc/os-release names no VERSION_CODENAME: cannot derive the $* suites"
    awk -v codename="$codename" -v suites="$*" '
      { print }
      {
        # deb-src [options…] URI SUITE COMPONENTS…: the options may hold spaces.
        i = 2
        if ($2 ~ /^\[/) while (i <= NF && $i !~ /\]$/) i++
        if ($2 ~ /^\[/) i++
        if ($(i + 1) != codename) next
        n = split(suites, extra, " ")
        for (k = 1; k <= n; k++) { line = $0; $(i + 1) = extra[k]; print; $0 = line }
      }' "$list" >"$list.new"
    mv "$list.new" "$list"
  fi
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

debian_source_orig() {
  local package="$1" upstream="$2" sha256="$3" work="$4" file index directory listed uri uris
  file="${package}_${upstream}.orig.tar.gz"
  say "fetching the Debian source index (private list: ${apt_options[1]#*=})"
  flock 8
  run apt-get "${apt_options[@]}" update
  index=$(apt-cache "${apt_options[@]}" showsrc "$package" 2>/dev/null || true)
  flock -u 8
  # The index (signed by the archive) names the pool directory and, while a suite still lists the
  # tarball, its SHA-256: it must agree with the pin.
  directory=$(awk -v package="$package" '
    /^Package: / { p = ($2 == package); next }
    p && /^Directory:/ { print $2; exit }' <<<"$index")
  [ -n "$directory" ] || directory="pool/main/${package:0:1}/$package"
  listed=$(awk -v file="$file" '
    /^Checksums-Sha256:/ { s = 1; next }
    /^[^ ]/ { s = 0 }
    s && $3 == file { print $1 }' <<<"$index" | sort -u)
  if [ -z "$listed" ]; then
    say "no suite lists $file any more; asking the pool for it"
  elif [ "$listed" != "$sha256" ]; then
    die "the Debian archive's index gives $file the SHA-256 $listed, the pin says $sha256: refusing it"
  fi
  uris=$(awk '{ i = 2; if ($2 ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ } print $i }' \
    "${apt_options[1]#*=}" | sort -u)
  rm -rf "$work"
  mkdir -p "$work"
  for uri in $uris; do
    # apt's own downloader (its proxies and methods), which refuses other content than SHA256.
    if /usr/lib/apt/apt-helper "${apt_options[@]}" download-file "${uri%/}/$directory/$file" \
      "$work/$file" "SHA256:$sha256" >>"$log" 2>&1; then
      /usr/lib/apt/apt-helper "${apt_options[@]}" download-file "${uri%/}/$directory/$file.asc" \
        "$work/$file.asc" >>"$log" 2>&1 || die "$file.asc (its signature) is missing at $uri"
      say "downloaded $file from $uri (SHA-256 $sha256)"
      return 0
    fi
  done
  die "cannot download $file with SHA-256 $sha256 from any Debian archive in ${apt_options[1]#*=} (log: $log). Source versions the archive has: $(awk '/^Version:/ { printf "%s ", $2 }' <<<"$index")"
}

signature_check() {
  local file="$1" key="$2" fingerprint="$3" keyring status
  command -v gpgv >/dev/null || die "gpgv not found (run packaging/install-deps.sh)"
  # gpgv reads a binary keyring: the armored key's base64 body, without its checksum line.
  keyring="$file.keyring.gpg"
  awk '/^-----BEGIN/ { b = 1; h = 1; next } /^-----END/ { b = 0; next }
       b && h && /^$/ { h = 0; next } b && !h && !/^=/ { print }' "$key" |
    base64 -d >"$keyring" || die "cannot read the public key $key"
  status=$(gpgv --status-fd 1 --keyring "$keyring" "$file.asc" "$file" 2>>"$log") || true
  rm -f "$keyring"
  grep -q "^\[GNUPG:\] VALIDSIG $fingerprint " <<<"$status" ||
    die "$(basename "$file"): no valid signature by $fingerprint (gpgv said: $(tr '\n' ' ' <<<"$status"))"
  say "$(basename "$file"): valid signature by $fingerprint"
}

build_cache_open() {
  local name="$1" refresh="$2" file
  # The compiler's command as well as its version: musl-gcc runs the same gcc as cc, with musl's
  # headers and C library instead of glibc's.
  key=$( { printf '%s\n' "${configure_flags[@]}" "$extra_cflags" "$(uname -m)" "$compiler";
           "${compiler%% *}" --version 2>/dev/null | head -n1;
           for file in "$script_dir"/* "$script_dir/../debian-source.sh"; do
             case "$file" in *.md) ;; *) cat "$file" ;; esac  # notes change no build
           done; } |
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
