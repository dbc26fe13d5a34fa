"""What every attack of the attack suite (test_attacks.py and the attacks_*.py modules it runs)
is judged by: a Verdict of three aspects (refused, logged, counted), the victim's log lines, and
the agent's /metrics for the victim's process."""

import os
import re

from harness import TestFailure, for_other_users, wait_for
from lifecycle_common import parse_metrics, scrape

HERE = os.path.dirname(os.path.abspath(__file__))
# Run by uid 65534 too: a copy every uid can read, beside the module it imports to speak to the
# agent (a script's own directory is where Python looks for it).
PEERS, _ = for_other_users(os.path.join(HERE, "attack_peers.py"),
                           os.path.join(HERE, "agent_protocol.py"))
TD = "meshtls.local"
NOBODY = 65534
PEER = r"127\.0\.0\.1"


def spiffe(path, trust_domain=TD):
    return f"spiffe://{trust_domain}/{path}"


class Verdict:
    """One attack's result: each aspect True/False once judged; counted stays None only where
    no counter exists by design (no_counter)."""

    def __init__(self, name, expect_refused=True, no_counter=False, note=None):
        self.name = name
        self.expect_refused = expect_refused
        self.no_counter = no_counter
        self.note = note
        self.refused = self.logged = self.counted = None
        self.problems = []
        self.evidence = []  # the log line and counter movement, printed with the result

    def judge(self, aspect, ok, message):
        previous = getattr(self, aspect)
        setattr(self, aspect, bool(ok) and previous is not False)
        if not ok:
            self.problems.append(f"{aspect}: {message}")

    def require(self, ok, message):
        """A condition outside the three aspects (a by-design plaintext pass must be exact)."""
        if not ok:
            self.problems.append(message)

    def finish(self):
        aspects = ("logged",) + (() if self.no_counter else ("counted",))
        if self.expect_refused:
            aspects = ("refused",) + aspects
        for aspect in aspects:
            if getattr(self, aspect) is None:
                self.judge(aspect, False, "never checked (the attack stopped early)")

    def as_expected(self):
        return (not self.problems and self.refused is self.expect_refused and
                self.logged is True and
                (self.counted is None if self.no_counter else self.counted is True))

    def figure(self):
        entry = {"name": self.name, "expect_refused": self.expect_refused,
                 "refused": self.refused, "logged": self.logged, "counted": self.counted}
        if self.note:
            entry["note"] = self.note
        return entry


def log_line(process, pattern, timeout=5.0):
    """The first line of process's stderr matching pattern, waiting up to timeout; or None."""
    found = []

    def present():
        found[:] = [line for line in process.stderr().splitlines() if re.search(pattern, line)]
        return bool(found)
    try:
        wait_for(present, timeout, pattern)
    except TestFailure:
        return None
    return found[0]


class Metrics:
    """The agent's /metrics for one process: handshake failures by (direction, reason), authz
    denials and connections opened, by label."""

    def __init__(self, port):
        self.port = port

    def read(self):
        return parse_metrics(scrape(self.port))

    @staticmethod
    def total(samples, name, **labels):
        return sum(value for (n, sample_labels), value in samples.items()
                   if n == name and all(dict(sample_labels).get(k) == str(v)
                                        for k, v in labels.items()))

    def failures(self, samples, pid, direction):
        counts = {}
        for (n, sample_labels), value in samples.items():
            labels = dict(sample_labels)
            if (n == "handshake_failures_total" and labels.get("pid") == str(pid) and
                    labels.get("direction") == direction):
                counts[labels["reason"]] = counts.get(labels["reason"], 0) + value
        return counts

    def judge_failure(self, verdict, before, pid, direction, reason_class, extra=()):
        """Waits until exactly one more failure is counted for pid/direction, in reason_class
        (None: any class); extra: (name, labels, delta) counters that must move too."""
        start = self.failures(before, pid, direction)
        state = {}

        def moved():
            state["samples"] = self.read()
            now = self.failures(state["samples"], pid, direction)
            state["delta"] = {r: now.get(r, 0) - start.get(r, 0) for r in now
                              if now.get(r, 0) != start.get(r, 0)}
            return sum(state["delta"].values()) >= 1 and all(
                self.total(state["samples"], name, **labels) -
                self.total(before, name, **labels) >= delta for name, labels, delta in extra)
        try:
            wait_for(moved, 5, "the failure to be counted")
        except TestFailure:
            pass
        delta = state.get("delta", {})
        verdict.evidence.append(f"handshake_failures_total{{direction={direction}}} +{delta}")
        if reason_class is None:
            ok = sum(delta.values()) == 1
        else:
            ok = delta == {reason_class: 1}
        verdict.judge("counted", ok,
                      f"handshake_failures_total{{pid={pid},direction={direction}}} moved by "
                      f"{delta}, expected {{{reason_class or 'any'}: 1}}")
        for name, labels, want in extra:
            got = self.total(state.get("samples", before), name, **labels) - \
                self.total(before, name, **labels)
            verdict.judge("counted", got == want, f"{name}{labels} moved by {got}, expected {want}")
        return delta


def peer_lines(process, port):
    """process's log lines about 127.0.0.1:port (an attacker's port, or a rogue server's)."""
    return [line for line in process.stderr().splitlines() if f"127.0.0.1:{port} " in line]
