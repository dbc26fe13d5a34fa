#!/usr/bin/env python3
"""Runs one libFuzzer binary for a bounded time, as a test (meson suite 'fuzz').

usage: run_fuzz.py FUZZER NAME CORPUS SCRATCH SECONDS

The checked-in corpus is copied into SCRATCH (emptied first), which the fuzzer grows: the
checked-in one is never written. Crashes, leaks, timeouts and out-of-memory inputs land in
SCRATCH/artifacts/ and fail the test, with the libFuzzer report on stderr. libFuzzer's final
figures (executions, coverage, features, corpus size) are printed and, when MESHTLS_FIGURES_DIR
is set, written to $MESHTLS_FIGURES_DIR/fuzz-NAME.json:
  {"target", "seconds", "executions", "coverage", "features", "corpus", "findings"}
"""
import json
import os
import re
import shutil
import subprocess
import sys
import time


def last_int(pattern, text):
    found = re.findall(pattern, text)
    return int(found[-1]) if found else None


def main():
    if len(sys.argv) != 6:
        sys.exit(__doc__)
    fuzzer, name, corpus, scratch, seconds = sys.argv[1:]
    seconds = int(seconds)
    shutil.rmtree(scratch, ignore_errors=True)
    shutil.copytree(corpus, os.path.join(scratch, "corpus"))
    artifacts = os.path.join(scratch, "artifacts")
    os.makedirs(artifacts)
    command = [
        fuzzer,
        f"-max_total_time={seconds}",
        "-rss_limit_mb=2048",
        "-timeout=10",          # seconds per input: a hang is a finding
        "-max_len=8192",
        "-print_final_stats=1",
        "-detect_leaks=1",
        f"-artifact_prefix={artifacts}/",
        os.path.join(scratch, "corpus"),
    ]
    started = time.monotonic()
    # Bounded by libFuzzer itself; the margin covers loading the corpus and a last slow input.
    run = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         errors="replace", timeout=seconds + 120, check=False)
    elapsed = time.monotonic() - started
    log = run.stdout
    findings = sorted(os.listdir(artifacts))
    figures = {
        "target": name,
        "seconds": round(elapsed, 1),
        "executions": last_int(r"stat::number_of_executed_units:\s*(\d+)", log)
        or last_int(r"Done (\d+) runs", log) or 0,
        "coverage": last_int(r"\bcov: (\d+)", log) or 0,
        "features": last_int(r"\bft: (\d+)", log) or 0,
        "corpus": len(os.listdir(os.path.join(scratch, "corpus"))),
        "findings": len(findings),
    }
    print(json.dumps(figures))
    figures_dir = os.environ.get("MESHTLS_FIGURES_DIR")
    if figures_dir:
        os.makedirs(figures_dir, exist_ok=True)
        with open(os.path.join(figures_dir, f"fuzz-{name}.json"), "w") as out:
            json.dump(figures, out)
            out.write("\n")
    if run.returncode != 0 or findings:
        # The report is at the end of the log; the start only lists the seeds loaded.
        sys.stderr.write("\n".join(log.splitlines()[-80:]) + "\n")
        sys.stderr.write(f"fuzz_{name}: exit status {run.returncode}, findings {findings} "
                         f"(inputs in {artifacts}; add the one that matters to {corpus})\n")
        return 1
    if figures["executions"] == 0:
        sys.stderr.write(f"fuzz_{name}: libFuzzer reported no executions\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
