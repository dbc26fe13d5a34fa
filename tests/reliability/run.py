"""Reliability figures of libmeshtls in one table: attacks, faults, fuzzing, sanitizers.

    python3 tests/reliability/run.py --build BUILD [--clang-build CLANG_BUILD]
    python3 tests/reliability/run.py --figures DIR [--log LABEL=TESTLOG.json ...]

The first form runs what produces the figures: the attack suite and the soak under injected
faults in BUILD, and, given a clang build configured like packaging/test.sh's build-test-clang,
every libFuzzer target for its bounded time (meson suite 'fuzz'). The second form runs nothing:
packaging/test.sh uses it after the whole test run, whose suites wrote their figures to DIR
(MESHTLS_FIGURES_DIR), and adds one row per meson test log (the sanitizer, ThreadSanitizer and
valgrind runs).

Each producer writes one JSON file (tests/integration/test_attacks.py: attacks.json; the fault
soak: faults.json; each fuzz run: fuzz-NAME.json). A figure that is missing is printed as
missing and makes the run fail, as does any attack not refused, any byte lost or corrupted, any
fuzzer finding and any failed test in a log: the table is the evidence that SECURITY.md
describes, so it must never look complete when it is not.
"""

import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def parse_arguments():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--build", help="meson build directory to run the attack and fault tests")
    source.add_argument("--figures", help="directory where a test run wrote its figures")
    parser.add_argument("--clang-build", help="clang build directory to run the fuzz suite")
    parser.add_argument("--log", action="append", default=[], metavar="LABEL=PATH",
                        help="a meson testlog.json to summarise as one row (repeatable)")
    return parser.parse_args()


def run_producers(arguments, figures):
    """Runs the tests that write figures; returns False if any of them failed."""
    env = dict(os.environ, MESHTLS_FIGURES_DIR=figures)
    ok = True
    runs = [(arguments.build, ["--suite", "integration", "attacks", "soak_faults"])]
    if arguments.clang_build:
        runs.append((arguments.clang_build, ["--suite", "fuzz"]))
    for build, selection in runs:
        command = ["meson", "test", "-C", build, "--print-errorlogs", "--num-processes", "2"]
        result = subprocess.run(command + selection, env=env)
        ok = ok and result.returncode == 0
    return ok


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        return None


class Table:
    def __init__(self):
        self.rows = []
        self.failed = False

    def add(self, area, figure, verdict_ok, detail=""):
        self.rows.append((area, figure, "ok" if verdict_ok else "FAIL", detail))
        self.failed = self.failed or not verdict_ok

    def missing(self, area, what):
        self.add(area, "missing", False, f"{what} was not produced")

    def print(self):
        widths = [max(len(str(row[i])) for row in self.rows + [self.header()]) for i in range(3)]
        for row in [self.header()] + self.rows:
            cells = [str(cell).ljust(width) for cell, width in zip(row, widths)]
            print("  ".join(cells + [row[3]]).rstrip())

    @staticmethod
    def header():
        return ("area", "figure", "verdict", "detail")


def attack_rows(table, figures):
    data = load(os.path.join(figures, "attacks.json"))
    if data is None:
        table.missing("attacks", "attacks.json (tests/integration/test_attacks.py)")
        return
    # Controls are inputs a permissive port passes on by design (plaintext that is not a
    # ClientHello): they show the attack suite tells the two apart, and must pass, not be refused.
    attacks = [a for a in data["attacks"] if a.get("expect_refused", True)]
    controls = [a for a in data["attacks"] if not a.get("expect_refused", True)]
    refused = [a for a in attacks if a["refused"]]
    logged = [a for a in attacks if a["logged"]]
    countable = [a for a in attacks if a.get("counted") is not None]
    counted = [a for a in countable if a["counted"]]
    table.add("attacks", f"{len(refused)}/{len(attacks)} refused",
              len(refused) == len(attacks) and len(attacks) > 0,
              f"logged {len(logged)}/{len(attacks)}, counted {len(counted)}/{len(countable)} "
              f"(the others have no counter by design)")
    for attack in attacks:
        if not (attack["refused"] and attack["logged"] and attack.get("counted") is not False):
            table.add("attack", attack["name"], False,
                      f"refused={attack['refused']} logged={attack['logged']} "
                      f"counted={attack.get('counted')}")
    for control in controls:
        table.add("control", control["name"],
                  control["refused"] is False and control["logged"] and control["counted"],
                  control.get("note", ""))


def fault_rows(table, figures):
    data = load(os.path.join(figures, "faults.json"))
    if data is None:
        table.missing("faults", "faults.json (the soak under injected faults)")
        return
    injected = data["injected"]
    total = sum(injected.values())
    kinds = ", ".join(f"{kind} {count}" for kind, count in sorted(injected.items()))
    table.add("faults", f"{total} injected", total > 0 and all(injected.values()), kinds)
    failed = sum(data.get("failed_with_errno", {}).values())
    errnos = ", ".join(f"{name} {count}" for name, count in
                       sorted(data.get("failed_with_errno", {}).items()))
    survived = data["completed"] + failed
    table.add("faults", f"{survived}/{data['connections']} connections survived",
              survived == data["connections"] and data["corrupted"] == 0 and data["hung"] == 0,
              f"{data['completed']} complete, {failed} ended with an errno"
              f"{' (' + errnos + ')' if errnos else ''}, {data['corrupted']} corrupted, "
              f"{data['hung']} hung")
    table.add("soak bytes", f"{data['bytes_lost']} lost", data["bytes_lost"] == 0,
              f"sent {data['bytes_sent']:,}, received {data['bytes_received']:,} "
              f"on connections that completed")


def fuzz_rows(table, figures):
    paths = sorted(glob.glob(os.path.join(figures, "fuzz-*.json")))
    if not paths:
        table.missing("fuzzing", "fuzz-*.json (meson suite 'fuzz' of a clang build)")
        return
    for path in paths:
        data = load(path)
        table.add("fuzzing", f"{data['target']}: {data['executions']:,} runs",
                  data["findings"] == 0,
                  f"{data['seconds']} s, cov {data['coverage']}, ft {data['features']}, "
                  f"corpus {data['corpus']}, {data['findings']} finding(s)")


def log_rows(table, logs):
    for entry in logs:
        label, _, path = entry.rpartition("=")
        if not os.path.exists(path):
            table.missing(label, path)
            continue
        results = []
        with open(path) as f:
            for line in f:
                results.append(json.loads(line))
        failures = [r["name"] for r in results if r["result"] not in ("OK", "SKIP",
                                                                      "EXPECTEDFAIL")]
        skipped = sum(1 for r in results if r["result"] == "SKIP")
        detail = f"{skipped} skipped" if skipped else ""
        if failures:
            detail = "failed: " + ", ".join(failures) + (f"; {detail}" if detail else "")
        table.add(label, f"{len(results) - len(failures) - skipped}/{len(results)} tests clean",
                  not failures and len(results) > 0, detail)


def main():
    arguments = parse_arguments()
    producers_ok = True
    if arguments.build:
        scratch = tempfile.TemporaryDirectory(prefix="meshtls-reliability-")
        figures = scratch.name
        producers_ok = run_producers(arguments, figures)
    else:
        figures = arguments.figures
    table = Table()
    attack_rows(table, figures)
    fault_rows(table, figures)
    fuzz_rows(table, figures)
    log_rows(table, arguments.log)
    print("reliability figures (SECURITY.md says what each one shows):")
    table.print()
    return 0 if producers_ok and not table.failed else 1


if __name__ == "__main__":
    sys.exit(main())
