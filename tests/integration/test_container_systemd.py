"""The hardened meshtls-agent.service under a real systemd: a container booted with systemd as its
PID 1 (podman --systemd=always) from the offline Debian 12 base with systemd and the packages of
packaging/debian/build-debs.sh installed. Checks the unit, with every sandboxing option it has,
comes up active by itself (deb-systemd-helper enabled it), a process of another uid (`meshtls id`
run as an unprivileged user) gets its identity from it, the running agent has the unit's
capabilities, seccomp filter and mount namespace, its metrics endpoint answers, and the journal
holds each of the agent's lines once, as "meshtls-agent[PID]: info: serving ..." (no second tag
and pid) and none of them is an error."""

import os
import re
import subprocess
import tempfile
import time

from container_common import Made, base_image, can_run_containers, podman, podman_env
from harness import BUILD, TestFailure, check, main, wait_for

SOURCE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD_DEBS = os.path.join(SOURCE, "packaging", "debian", "build-debs.sh")

CONTAINERFILE = """FROM {base}
RUN apt-get update \\
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends systemd \\
 && rm -rf /var/lib/apt/lists/*
COPY debs/ /tmp/meshtls-debs/
RUN apt-get update \\
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \\
      /tmp/meshtls-debs/libmeshtls0_*.deb /tmp/meshtls-debs/meshtls_*.deb \\
      /tmp/meshtls-debs/meshtls-agent_*.deb \\
 && rm -rf /var/lib/apt/lists/* /tmp/meshtls-debs \\
 && useradd --create-home --uid 1234 workload
CMD ["/lib/systemd/systemd"]
"""


def build_debs(out):
    result = subprocess.run(["bash", BUILD_DEBS, BUILD, out], capture_output=True, text=True,
                            timeout=300)
    check(result.returncode == 0, f"build-debs.sh failed:\n{result.stderr[-3000:]}")


def unit_state(name):
    result = podman("exec", name, "systemctl", "is-active", "meshtls-agent.service",
                    timeout=30, check_status=False)
    return result.stdout.strip()


# CAP_DAC_READ_SEARCH (2), CAP_KILL (5), CAP_IPC_LOCK (14), CAP_SYS_PTRACE (19).
AGENT_CAPABILITIES = (1 << 2) | (1 << 5) | (1 << 14) | (1 << 19)


def check_sandbox(name):
    """The running agent has the unit's sandbox: its capability bounding set, no new privileges,
    a seccomp filter, and a mount namespace of its own (ProtectSystem, PrivateTmp)."""
    pid = podman("exec", name, "systemctl", "show", "--property", "MainPID", "--value",
                 "meshtls-agent.service", timeout=30).stdout.strip()
    status = podman("exec", name, "cat", f"/proc/{pid}/status", timeout=30).stdout
    fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
    check(int(fields.get("CapBnd", "0"), 16) == AGENT_CAPABILITIES,
          f"the agent's capability bounding set is {fields.get('CapBnd')}, not "
          f"{AGENT_CAPABILITIES:016x}")
    check(fields.get("NoNewPrivs", "").strip() == "1" and fields.get("Seccomp", "").strip() == "2",
          f"the agent runs without NoNewPrivileges or its seccomp filter:\n{status}")
    namespaces = podman("exec", name, "readlink", f"/proc/{pid}/ns/mnt", "/proc/1/ns/mnt",
                        timeout=30).stdout.split()
    check(len(namespaces) == 2 and namespaces[0] != namespaces[1],
          f"the agent shares systemd's mount namespace: {namespaces}")
    print(f"agent pid {pid}: CapBnd {fields['CapBnd'].strip()}, NoNewPrivs, seccomp filter, "
          "a mount namespace of its own")


def test():
    base = base_image()
    can_run_containers(base)
    suffix = f"{os.getpid()}"
    started = time.monotonic()
    with Made() as made, tempfile.TemporaryDirectory(prefix="meshtls-systemd-") as work:
        build_debs(os.path.join(work, "debs"))
        with open(os.path.join(work, "Containerfile"), "w") as f:
            f.write(CONTAINERFILE.format(base=base))
        image = made.image(f"localhost/meshtls-test-systemd:{suffix}")
        podman("build", "--pull=never", "--network", "host", "-t", image, work, timeout=600)
        print(f"systemd image build: {time.monotonic() - started:.0f} s")

        name = made.container(f"meshtls-test-systemd-{suffix}")
        # Privileged: systemd builds the unit's sandbox (mount namespaces for ProtectSystem and
        # PrivateTmp, seccomp, capability sets), which a container's default capabilities and
        # seccomp profile do not allow, and the agent keeps CAP_SYS_PTRACE etc. from its
        # bounding set only if the container has them.
        podman("run", "-d", "--name", name, "--systemd=always", "--privileged", "--network",
               "none", image)
        try:
            wait_for(lambda: unit_state(name) in ("active", "failed"), 60,
                     "meshtls-agent.service to start under systemd")
        except TestFailure:
            pass
        state = unit_state(name)
        journal = podman("exec", name, "journalctl", "--no-pager", "-o", "short",
                         "-u", "meshtls-agent.service", timeout=30, check_status=False).stdout
        status = podman("exec", name, "systemctl", "status", "--no-pager",
                        "meshtls-agent.service", timeout=30, check_status=False).stdout
        check(state == "active", f"meshtls-agent.service is {state!r}:\n{status}\n{journal}")

        check_sandbox(name)
        result = podman("exec", "--user", "workload", name, "meshtls", "id", timeout=60,
                        check_status=False)
        check(result.returncode == 0 and "spiffe://" in result.stdout,
              f"`meshtls id` as uid 1234 failed ({result.returncode}):\n{result.stdout}"
              f"{result.stderr}\n{journal}")
        print(f"meshtls id as uid 1234: {result.stdout.strip().splitlines()[0]}")

        journal = podman("exec", name, "journalctl", "--no-pager", "-o", "short",
                         "-u", "meshtls-agent.service", timeout=30).stdout
        serving = [line for line in journal.splitlines() if "serving /run/meshtls" in line]
        check(serving and re.search(r" meshtls-agent\[\d+\]: info: serving /run/meshtls/agent"
                                    r"\.sock", serving[0]),
              f"no journal line \"meshtls-agent[PID]: info: serving ...\":\n{journal}")
        doubled = [line for line in journal.splitlines()
                   if len(re.findall(r"meshtls-agent\[\d+\]", line)) > 1]
        check(not doubled, "journal lines carry the tag twice:\n" + "\n".join(doubled))
        # Nothing the sandbox forbids that the agent needs: e.g. its metrics endpoint (TCP, the
        # default address) would log an error and go on without it.
        errors = [line for line in journal.splitlines() if ": error: " in line]
        check(not errors, "the agent logged errors under the unit's sandbox:\n" +
              "\n".join(errors))
        check("metrics on http://" in journal, f"the agent serves no metrics endpoint:\n{journal}")
        probe = ("import re, urllib.request\n"
                 "line = open('/dev/stdin').read()\n"
                 "address = re.search(r'metrics on http://(\\S+)/metrics', line).group(1)\n"
                 "print(urllib.request.urlopen(f'http://{address}/metrics', timeout=10)"
                 ".status)\n")
        metrics = subprocess.run(["podman", "exec", "-i", name, "python3", "-c", probe],
                                 input=journal, capture_output=True, text=True, timeout=60,
                                 env=podman_env())
        check(metrics.returncode == 0 and metrics.stdout.strip() == "200",
              f"the metrics endpoint did not answer under the sandbox ({metrics.returncode}):\n"
              f"{metrics.stdout}{metrics.stderr}")
        print(f"journal: {serving[0]}; metrics endpoint answers 200")
    print(f"systemd container test wall time: {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main(test)
