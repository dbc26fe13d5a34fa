#!/usr/bin/env bash
# Container entrypoint for images with libmeshtls: waits (bounded) for the node agent's socket,
# sets LD_PRELOAD to the installed preload, and execs the container's command under it. The
# command's ELF program interpreter picks the build: libmeshtls-preload-musl.so for a musl program
# (Alpine), libmeshtls-preload.so otherwise (glibc).
#
#   ENTRYPOINT ["/usr/local/bin/meshtls-entrypoint"]  CMD ["python3", "-m", "http.server"]
#
# Environment:
#   MESHTLS_AGENT_SOCKET  the agent's socket (default /run/meshtls/agent.sock); also read by the
#                         library itself, so one variable moves both
#   MESHTLS_AGENT_WAIT    seconds to wait for the socket to appear (default 30; 0: do not wait)
#   MESHTLS_PRELOAD       the preload library (default: found under /usr/lib/*/meshtls/ or
#                         /usr/local/lib/*/meshtls/); naming either build, the command gets the
#                         build beside it that its C library needs
#   MESHTLS_ALLOW_PLAINTEXT  1: a command nothing can protect is started anyway, with a warning
#                         (`meshtls run --allow-plaintext`); unset: it is refused (exit 126)
#
# A Go or statically linked command runs under `meshtls run`'s system-call supervisor (the
# meshtls command installed beside the preload), which meshes its sockets from outside.
set -euo pipefail

die() {
  echo "meshtls-entrypoint: $*" >&2
  exit 1
}

[ "$#" -gt 0 ] || die "no command to run: give the container a command (CMD or arguments)"

socket=${MESHTLS_AGENT_SOCKET:-/run/meshtls/agent.sock}
wait_seconds=${MESHTLS_AGENT_WAIT:-30}
case $wait_seconds in
  '' | *[!0-9]*) die "MESHTLS_AGENT_WAIT must be a whole number of seconds, not '$wait_seconds'" ;;
esac

# musl or glibc: the C library of the program that runs, following #! lines (and /usr/bin/env
# NAME) to the ELF file the kernel starts, whose program interpreter (in its first page) names
# musl's loader or not. A name that cannot be read is taken for glibc, as before.
program_libc() {
  local file line words
  file=$(command -v -- "$1" 2>/dev/null) || { echo glibc; return; }
  for _ in 1 2 3 4; do
    [ -f "$file" ] && [ -r "$file" ] || break
    if [ "$(head -c 2 -- "$file")" = "#!" ]; then
      IFS= read -r line <"$file" || true
      read -r -a words <<<"${line#\#!}"
      file=${words[0]:-}
      if [ "${file##*/}" = env ] && [ -n "${words[1]:-}" ]; then
        file=$(command -v -- "${words[1]}" 2>/dev/null) || break
      fi
      continue
    fi
    # (Not a pipe: grep -q stops reading early, and pipefail would then report head's SIGPIPE.)
    if LC_ALL=C grep -aq '/ld-musl-' < <(head -c 4096 -- "$file"); then
      echo musl
      return
    fi
    break
  done
  echo glibc
}

name=libmeshtls-preload.so
[ "$(program_libc "$1")" = musl ] && name=libmeshtls-preload-musl.so

preload=${MESHTLS_PRELOAD:-}
if [ -n "$preload" ]; then
  case ${preload##*/} in
    libmeshtls-preload.so | libmeshtls-preload-musl.so) preload=${preload%/*}/$name ;;
  esac
else
  for candidate in /usr/lib/*/meshtls/$name /usr/lib/meshtls/$name \
                   /usr/local/lib/*/meshtls/$name /usr/local/lib/meshtls/$name; do
    if [ -f "$candidate" ]; then
      preload=$candidate
      break
    fi
  done
  [ -n "$preload" ] || die "$name is not installed in this image (looked under" \
    "/usr/lib/*/meshtls and /usr/local/lib/*/meshtls; $1 needs it); set MESHTLS_PRELOAD" \
    "to its path"
fi
[ -f "$preload" ] || die "$preload does not exist ($1 needs $name; MESHTLS_PRELOAD=${MESHTLS_PRELOAD:-})"

# Wait for the agent: the socket is on a volume shared with the node (a hostPath in Kubernetes);
# ten checks a second, bounded by MESHTLS_AGENT_WAIT.
now_ms() { local t=${EPOCHREALTIME/[.,]/}; echo $((10#$t / 1000)); }
deadline=$(($(now_ms) + wait_seconds * 1000))
while [ ! -S "$socket" ]; do
  if [ "$(now_ms)" -ge "$deadline" ]; then
    die "the meshtls agent socket $socket did not appear within ${wait_seconds}s;" \
      "is meshtls-agent running on this node and its socket directory mounted into the" \
      "container? (MESHTLS_AGENT_SOCKET, MESHTLS_AGENT_WAIT)"
  fi
  sleep 0.1
done

MESHTLS_AGENT_SOCKET=$socket
export MESHTLS_AGENT_SOCKET

# A command the preload cannot enter (Go, statically linked) or that nothing can protect
# (io_uring sockets, set-user-ID, ...) is never started unprotected by surprise: `meshtls run`,
# installed beside the preload, meshes it through its system-call supervisor, gives a musl
# program the musl build, or refuses it (exit 126, saying why). MESHTLS_ALLOW_PLAINTEXT=1 passes
# --allow-plaintext. Programs the preload serves are exec'd in place below, as before.
meshtls_command() {
  local candidate
  for candidate in "${preload%/*}/meshtls" "${preload%/lib/*}/bin/meshtls" \
                   "$(command -v meshtls 2>/dev/null)"; do
    [ -n "$candidate" ] && [ -x "$candidate" ] && { echo "$candidate"; return; }
  done
}
meshtls=$(meshtls_command)
if [ -z "$meshtls" ]; then
  echo "meshtls-entrypoint: warning: no meshtls command beside $preload: $1 is started with the" \
    "preload without checking that the preload can enter it (a Go or static program would run" \
    "unprotected)" >&2
elif ! "$meshtls" check "$1" > /dev/null 2>&1; then
  exec "$meshtls" run ${MESHTLS_ALLOW_PLAINTEXT:+--allow-plaintext} -- "$@"
fi

# Keep a preload the image already sets (e.g. a sanitizer runtime) after ours.
LD_PRELOAD="$preload${LD_PRELOAD:+ $LD_PRELOAD}"
export LD_PRELOAD
exec "$@"
