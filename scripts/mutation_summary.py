"""Kill rate per module (and per function) of the last `mutmut run`, and the surviving mutants.

Reads `mutmut results --all true` in the repository root. A timed-out mutant counts as killed (the tests did
not let it pass); mutants not checked in the last run are left out. Usage: python scripts/mutation_summary.py
[GLOB ...] to count only mutants whose names match (default: all checked ones).
"""

import fnmatch
import re
import subprocess
import sys
from collections import Counter, defaultdict

DETECTED = {"killed", "timeout", "caught by type check"}


def results() -> list[tuple[str, str]]:
    """(mutant name, status) of every mutant mutmut knows."""
    out = subprocess.run([sys.executable, "-m", "mutmut", "results", "--all", "true"], capture_output=True,
                         text=True, check=True).stdout
    return [(name.strip(), status.strip()) for name, status in
            (line.rsplit(":", 1) for line in out.splitlines() if ":" in line)]


def main(patterns: list[str]) -> None:
    per_module: dict[str, Counter] = defaultdict(Counter)
    survivors = []
    for name, status in results():
        if status == "not checked" or (patterns and not any(fnmatch.fnmatch(name, p) for p in patterns)):
            continue
        module = name.split(".x")[0]
        per_module[module]["detected" if status in DETECTED else status] += 1
        if status not in DETECTED:
            survivors.append(f"{name}: {status}")
    for module, counts in sorted(per_module.items()):
        total = sum(counts.values())
        others = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()) if s != "detected")
        print(f"{module}: {counts['detected']}/{total} killed ({counts['detected'] / total:.0%})"
              + (f"; {others}" if others else ""))
    by_function = Counter(re.sub(r"__mutmut_\d+$", "", s.split(":")[0]) for s in survivors)
    if by_function:
        print("surviving mutants per function (see one with `mutmut show NAME`):")
        for function, n in by_function.most_common():
            print(f"  {function}: {n}")


if __name__ == "__main__":
    main(sys.argv[1:])
