"""The README's rollout walkthrough runs as written.

Extracts every fenced code block that follows a `<!-- walkthrough -->` line in README.md, joins
them in order and runs them with `bash -e -u -o pipefail` (so any failing command fails the
test), against this build (MESHTLS_BUILD) and a free port (PORT), both variables the walkthrough
itself reads with defaults. Then it checks that the walkthrough did what the README says:

  - plaintext, permissive and strict each served the file ("catalog v1", four times);
  - both configs passed `meshtls config check`;
  - under permissive the plaintext client and the meshed client were both served, and the
    service logged one as plaintext and the other as mTLS with the client's identity;
  - under strict the plaintext client and the disallowed meshed workload were refused;
  - under auto one curl got the catalog over mTLS (the membership names it) and the legacy
    service in plaintext, with the info line saying so;
  - every log line the README shows as a `# meshtls[…]: …` comment matches a line the run
    printed ("…" standing for what differs between runs, 18080 for the port).

The whole run is bounded (60 s) and in its own process group, killed at the end whatever
happens. Sanitized build: skipped, because the walkthrough runs curl and wget, which deadlock in
setlocale() under a preloaded AddressSanitizer runtime before doing any I/O (with or without
libmeshtls; see README, "Building and testing by hand").
"""

import os
import re
import signal
import subprocess

from harness import BUILD, check, free_port, main, port_listening, skip_if_sanitized

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
MARKER = "<!-- walkthrough -->"


def walkthrough_blocks(text):
    blocks = []
    lines = text.splitlines()
    for index, line in enumerate(lines):
        if line.strip() != MARKER:
            continue
        start = index + 1
        check(start < len(lines) and lines[start].startswith("```"),
              f"README.md:{start + 1}: {MARKER} is not followed by a fenced code block")
        end = start + 1
        while end < len(lines) and not lines[end].startswith("```"):
            end += 1
        check(end < len(lines), f"README.md:{start + 1}: unterminated code block")
        blocks.append("\n".join(lines[start + 1:end]))
    return blocks


def shown_lines(script, port):
    """The README's `# meshtls[…]: …` comment lines as regular expressions."""
    patterns = []
    for line in script.splitlines():
        line = line.strip()
        if not line.startswith("# meshtls[…]:"):
            continue
        shown = line[2:].replace("18080", str(port))
        patterns.append((shown, re.compile(
            ".*?".join(re.escape(part) for part in shown.split("…")) + "$")))
    return patterns


def test():
    skip_if_sanitized("the README walkthrough runs curl and wget, which deadlock in setlocale() "
                      "under a preloaded libasan before any I/O (with or without libmeshtls)")
    with open(os.path.join(ROOT, "README.md")) as f:
        blocks = walkthrough_blocks(f.read())
    check(len(blocks) >= 3, f"README.md has {len(blocks)} walkthrough blocks, expected 3 or more")
    script = "\n".join(blocks) + "\n"
    port = free_port()
    check(not port_listening(port), f"port {port} is taken")
    env = {k: v for k, v in os.environ.items()
           if k not in ("LD_PRELOAD", "MESHTLS_CONFIG", "MESHTLS_AGENT_SOCKET", "MESHTLS_LOG")}
    legacy_port = free_port()
    env.update(MESHTLS_BUILD=os.path.abspath(BUILD or "build"), PORT=str(port),
               PORT2=str(legacy_port))
    process = subprocess.Popen(["bash", "-e", "-u", "-o", "pipefail", "-c", script], cwd=ROOT,
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               start_new_session=True)
    try:
        output, _ = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        check(False, f"the walkthrough did not finish within 60 s:\n{output.decode()}")
    finally:
        try:
            os.killpg(process.pid, signal.SIGKILL)  # anything it left running
        except ProcessLookupError:
            pass
    text = output.decode(errors="replace")
    check(process.returncode == 0, f"the walkthrough failed (exit {process.returncode}):\n{text}")
    lines = text.splitlines()

    check(sum(line == "catalog v1" for line in lines) == 5,
          f"expected the file five times (plaintext, permissive twice, strict, auto):\n{text}")
    check(sum(line == "legacy v1" for line in lines) == 1,
          f"expected the legacy service's file once (auto, plaintext):\n{text}")
    check(sum(line == "catalog.conf is valid" for line in lines) == 2,
          f"meshtls config check did not pass twice:\n{text}")
    for needle in (
            f"plaintext inbound from 127.0.0.1:", f"on :{port} (mode permissive): not TLS",
            f"on :{port}: peer spiffe://meshtls.local/ns/shop/sa/orders, TLSv1.3",
            f"mtls outbound to 127.0.0.1:{port}: peer spiffe://meshtls.local/ns/web/sa/catalog",
            "plaintext client refused", "wget (identity uid/0) refused",
            f"on :{port} (mode strict): peer did not speak TLS",
            "client identity spiffe://meshtls.local/uid/0 is not in the allow list of "
            "inbound.rules[0] (we are spiffe://meshtls.local/ns/web/sa/catalog)",
            f"plaintext outbound to 127.0.0.1:{legacy_port} (mode auto): not in the mesh "
            "membership"):
        check(needle in text, f"the walkthrough output lacks {needle!r}:\n{text}")
    shown = shown_lines(script, port)
    check(len(shown) >= 4, f"the README shows {len(shown)} log lines, expected 4")
    for line, pattern in shown:
        check(any(pattern.search(l) for l in lines),
              f"the README shows\n  {line}\nbut the run printed no such line:\n{text}")
    check(not port_listening(port), "the walkthrough left its server running")
    print(f"README walkthrough: {len(blocks)} blocks ran as written; {len(shown)} log lines the "
          "README shows matched")


if __name__ == "__main__":
    main(test)
