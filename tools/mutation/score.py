"""Mutation scores from stryker's JSON reports.

  score.py TARGET REPORT SECONDS    one line for the target, then one per mutated file
  score.py --total SCORE_FILE...    the total over the targets' lines
  score.py --survivors REPORT...    every survived / no-coverage mutant as a markdown table row

score = (killed + timeout) / (killed + timeout + survived + no coverage); compile errors and ignored
mutants do not count (stryker's own definition of the mutation score).
"""
import json
import os
import sys


def counts_of(mutants):
    counts = {}
    for m in mutants:
        counts[m["status"]] = counts.get(m["status"], 0) + 1
    return counts


def line(name, counts, seconds=None):
    killed = counts.get("Killed", 0) + counts.get("Timeout", 0)
    survived = counts.get("Survived", 0)
    nocov = counts.get("NoCoverage", 0)
    valid = killed + survived + nocov
    score = 100.0 * killed / valid if valid else 100.0
    text = (f"{name}: score {score:.2f}% killed {killed} survived {survived} no-coverage {nocov} "
            f"(compile errors {counts.get('CompileError', 0)}, ignored {counts.get('Ignored', 0)})")
    if seconds is not None:
        text += f" time {seconds // 60}m{seconds % 60:02d}s"
    return text


def per_target(name, path, seconds):
    with open(path, encoding="utf-8") as f:
        report = json.load(f)
    # The report lists every file of the project; only the mutated ones have tested mutants.
    files = {os.path.basename(k): v["mutants"] for k, v in report["files"].items()
             if any(m["status"] in ("Killed", "Timeout", "Survived", "NoCoverage") for m in v["mutants"])}
    print(line(name, counts_of([m for ms in files.values() for m in ms]), seconds))
    if len(files) > 1:
        for file, mutants in sorted(files.items()):
            print("  " + line(file, counts_of(mutants)))


def total(paths):
    killed = survived = nocov = seconds = 0
    for path in paths:
        with open(path, encoding="utf-8") as f:
            for text in f:
                w = text.split()
                if len(w) < 12 or w[1] != "score" or text.startswith(" "):
                    continue
                killed += int(w[4])
                survived += int(w[6])
                nocov += int(w[8])
                m, s = text.rsplit("time ", 1)[1].strip().rstrip("s").split("m")
                seconds += int(m) * 60 + int(s)
    valid = killed + survived + nocov
    score = 100.0 * killed / valid if valid else 100.0
    print(f"total: score {score:.2f}% killed {killed} survived {survived} no-coverage {nocov} "
          f"time {seconds // 60}m{seconds % 60:02d}s")


def survivors(paths):
    for path in paths:
        with open(path, encoding="utf-8") as f:
            report = json.load(f)
        for file, data in sorted(report["files"].items()):
            for m in sorted(data["mutants"], key=lambda m: (m["location"]["start"]["line"], m["location"]["start"]["column"])):
                if m["status"] not in ("Survived", "NoCoverage"):
                    continue
                loc = m["location"]["start"]
                replacement = m.get("replacement", "").replace("\n", " ").replace("|", "\\|")
                if len(replacement) > 80:
                    replacement = replacement[:77] + "..."
                print(f"| {os.path.basename(file)}:{loc['line']} | {m['status']} | {m['mutatorName']}: `{replacement}` | |")


if __name__ == "__main__":
    if sys.argv[1] == "--total":
        total(sys.argv[2:])
    elif sys.argv[1] == "--survivors":
        survivors(sys.argv[2:])
    else:
        per_target(sys.argv[1], sys.argv[2], int(sys.argv[3]))
