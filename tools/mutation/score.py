"""Prints stryker's mutation score for one report, or the total over per-target score files.

score = (killed + timeout) / (killed + timeout + survived + no coverage); compile errors and ignored
mutants do not count (stryker's own definition of the mutation score).
"""
import json
import sys


def per_target(name, path, seconds):
    with open(path, encoding="utf-8") as f:
        report = json.load(f)
    counts = {}
    for file in report["files"].values():
        for m in file["mutants"]:
            counts[m["status"]] = counts.get(m["status"], 0) + 1
    killed = counts.get("Killed", 0) + counts.get("Timeout", 0)
    survived = counts.get("Survived", 0)
    nocov = counts.get("NoCoverage", 0)
    valid = killed + survived + nocov
    score = 100.0 * killed / valid if valid else 100.0
    print(f"{name}: score {score:.2f}% killed {killed} survived {survived} no-coverage {nocov} "
          f"(compile errors {counts.get('CompileError', 0)}, ignored {counts.get('Ignored', 0)}) "
          f"time {seconds // 60}m{seconds % 60:02d}s")


def total(paths):
    killed = survived = nocov = seconds = 0
    lines = []
    for path in paths:
        with open(path, encoding="utf-8") as f:
            lines.extend(f)
    for line in lines:
        w = line.split()
        if len(w) < 12 or w[1] != "score":
            continue
        killed += int(w[4])
        survived += int(w[6])
        nocov += int(w[8])
        m, s = line.rsplit("time ", 1)[1].strip().rstrip("s").split("m")
        seconds += int(m) * 60 + int(s)
    valid = killed + survived + nocov
    score = 100.0 * killed / valid if valid else 100.0
    print(f"total: score {score:.2f}% killed {killed} survived {survived} no-coverage {nocov} "
          f"time {seconds // 60}m{seconds % 60:02d}s")


if __name__ == "__main__":
    if sys.argv[1] == "--total":
        total(sys.argv[2:])
    else:
        per_target(sys.argv[1], sys.argv[2], int(sys.argv[3]))
