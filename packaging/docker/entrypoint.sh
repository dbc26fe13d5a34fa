#!/usr/bin/env bash
# Container entrypoint for images with libmeshtls: waits (bounded) for the node agent's socket,
# sets LD_PRELOAD to the installed preload, and execs the container's command under it.
#
#   ENTRYPOINT ["/usr/local/bin/meshtls-entrypoint"]  CMD ["python3", "-m", "http.server"]
#
# Environment:
#   MESHTLS_AGENT_SOCKET  the agent's socket (default /run/meshtls/agent.sock); also read by the
#                         library itself, so one variable moves both
#   MESHTLS_AGENT_WAIT    seconds to wait for the socket to appear (default 30; 0: do not wait)
#   MESHTLS_PRELOAD       the preload library (default: found under /usr/lib/*/meshtls/ or
#                         /usr/local/lib/*/meshtls/)
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

preload=${MESHTLS_PRELOAD:-}
if [ -z "$preload" ]; then
  for candidate in /usr/lib/*/meshtls/libmeshtls-preload.so /usr/lib/meshtls/libmeshtls-preload.so \
                   /usr/local/lib/*/meshtls/libmeshtls-preload.so \
                   /usr/local/lib/meshtls/libmeshtls-preload.so; do
    if [ -f "$candidate" ]; then
      preload=$candidate
      break
    fi
  done
  [ -n "$preload" ] || die "libmeshtls-preload.so is not installed in this image (looked under" \
    "/usr/lib/*/meshtls and /usr/local/lib/*/meshtls); set MESHTLS_PRELOAD to its path"
fi
[ -f "$preload" ] || die "MESHTLS_PRELOAD=$preload does not exist"

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

# Keep a preload the image already sets (e.g. a sanitizer runtime) after ours.
LD_PRELOAD="$preload${LD_PRELOAD:+ $LD_PRELOAD}"
MESHTLS_AGENT_SOCKET=$socket
export LD_PRELOAD MESHTLS_AGENT_SOCKET
exec "$@"
