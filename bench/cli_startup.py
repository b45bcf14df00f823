"""How fast `shopgraph --help` (and every `shopgraph CMD --help`) answers, and what it imports.

Prints one JSON line: the median wall time of `shopgraph --help` in a fresh interpreter, the
cumulative import time of `shopgraph.cli.main` from `python -X importtime`, the slowest
imports, and which heavy libraries (pandas, torch, faiss, neo4j) any help text pulled in.

    .venv/bin/python bench/cli_startup.py [--runs 15]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

HEAVY = ("pandas", "torch", "faiss", "neo4j", "numpy", "scipy")
HELPS = """
import sys
from typer.main import get_command
from typer.testing import CliRunner
from shopgraph.cli.main import app
runner = CliRunner()
group = get_command(app)
paths = [[]]
for name, cmd in group.commands.items():
    paths.append([name])
    paths += [[name, sub] for sub in getattr(cmd, "commands", {})]
for path in paths:
    assert runner.invoke(app, [*path, "--help"]).exit_code == 0, path
print(" ".join(m for m in %r if m in sys.modules))
print(len(paths))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    help_cmd = [sys.executable, "-c", "import sys; sys.argv = ['shopgraph', '--help']; "
                "from shopgraph.cli.main import run; run()"]
    subprocess.run(help_cmd, capture_output=True, check=True)  # warm the file cache
    walls = []
    for _ in range(args.runs):
        started = time.perf_counter()
        subprocess.run(help_cmd, capture_output=True, check=True)
        walls.append(time.perf_counter() - started)
    trace = subprocess.run([sys.executable, "-X", "importtime", "-c",
                            "import shopgraph.cli.main"], capture_output=True, text=True,
                           check=True).stderr
    rows = []
    for line in trace.splitlines():
        if line.startswith("import time:") and "|" in line and "cumulative" not in line:
            _, cumulative, name = (part.strip() for part in line[12:].split("|"))
            rows.append((int(cumulative), name))
    total = next(us for us, name in rows if name == "shopgraph.cli.main")
    top = sorted((r for r in rows if "." not in r[1]), reverse=True)[:6]
    helps = subprocess.run([sys.executable, "-c", HELPS % (HEAVY,)], capture_output=True,
                           text=True, check=True).stdout.splitlines()
    print(json.dumps({
        "bench": "cli_startup", "runs": args.runs,
        "help_wall_s_median": round(statistics.median(walls), 3),
        "help_wall_s_min": round(min(walls), 3),
        "import_cli_main_s": round(total / 1e6, 3),
        "slowest_top_level_imports_s": {name: round(us / 1e6, 3) for us, name in top},
        "heavy_modules_after_every_help": helps[0].split(),
        "help_texts_checked": int(helps[1]),
    }))


if __name__ == "__main__":
    main()
