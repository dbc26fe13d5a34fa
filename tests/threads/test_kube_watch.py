"""The agent's watch of the Kubernetes API server on its own thread, under churn, for the
ThreadSanitizer build (packaging/test.sh runs the threads suite there; every build runs it too).

A stand-in API server (tests/integration/kube_api.py) streams a few hundred pod events as fast as
it can while the agent's event loop takes and publishes what the watch's thread hands over; then
a compaction forces relists, the stand-in goes away (the thread retries with backoff), and
SIGTERM must end the agent cleanly with its thread joined. A data race, a lock-order inversion or
a leak reported by the sanitizer makes the agent exit non-zero (TSan: 66) and fails the test;
so does a last published set that is not the stand-in's last state.
"""

import os
import re
import signal
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))

from harness import AGENT, Mesh, base_env, check, main, wait_for  # noqa: E402
from kube_api import ApiServer, pod  # noqa: E402

EVENTS = 300
LAST = re.compile(r"membership generation (\d+): (\d+) entries from the Kubernetes API server,")


def test():
    with Mesh("kube-watch-threads") as mesh:
        api = ApiServer(mesh.dir)
        env = base_env()
        env.pop("LD_PRELOAD", None)
        agent = mesh.spawn("agent", [AGENT, "--socket", os.path.join(mesh.dir, "agent.sock"),
                                     "--state-dir", os.path.join(mesh.dir, "state"),
                                     "--metrics-address", "off", "--log-level", "debug",
                                     *api.flags()], env=env)
        wait_for(lambda: "listed pods: 0" in agent.stderr() or agent.popen.poll() is not None,
                 60, "the first list")
        for n in range(EVENTS):
            api.put("pods", pod("churn", f"p-{n % 40}", f"10.9.{n % 40}.1", "sa",
                                injected=n % 3 != 0))
        # The last write of each of the 40 pods: injected unless its n % 3 == 0.
        expected = sum(1 for name in range(40)
                       if max(n for n in range(EVENTS) if n % 40 == name) % 3 != 0)

        def published(count):
            found = LAST.findall(agent.stderr())
            return found and int(found[-1][1]) == count
        wait_for(lambda: published(expected), 60, f"{expected} members published:\n"
                 f"{agent.stderr()[-2000:]}")
        api.compact()
        wait_for(lambda: "relisted pods:" in agent.stderr(), 60, "a relist")
        api.stop()
        wait_for(lambda: "keeping the last membership" in agent.stderr(), 60,
                 "the agent to see the API server gone")
        time.sleep(0.5)
        agent.signal_group(signal.SIGTERM)
        status = agent.wait(30)
        check(status == 0 and "ThreadSanitizer" not in agent.stderr(),
              f"the agent exited {status}:\n{agent.stderr()[-6000:]}")


if __name__ == "__main__":
    main(test)
