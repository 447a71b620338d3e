"""The CLI writes whole lines: processes that share one stdout file (the ranks of torchrun) never cut each other's.

Block-buffered stdout (a file or pipe) flushes 8 KiB at a time, mid-line; unbuffered stdout
(PYTHONUNBUFFERED=1, `python -u`) writes the text of a print and its newline in two writes. Either way a
rank's `--json` summary could land inside another rank's line, and a reader of the log lost it.
"""

import json
import os
import subprocess
import sys

LINES = 20000
CHILD = """
import json, os, sys, time
from coordination.cli import app as cli
def pretend_command():
    while not os.path.exists(sys.argv[2]):  # both ranks start printing at once
        time.sleep(0.001)
    for i in range(int(sys.argv[3])):
        print(json.dumps({"rank": sys.argv[1], "line": i, "pad": "x" * 40}))
cli.app = pretend_command
cli.main()
"""


def test_two_unbuffered_processes_printing_into_one_file_leave_every_line_whole(tmp_path):
    """Without line buffering the two ranks' lines come out as `{a}{b}\n\n` (seen in CI: a summary lost)."""
    out, go = tmp_path / "ranks.log", tmp_path / "go"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with open(out, "w") as sink:
        children = [subprocess.Popen([sys.executable, "-c", CHILD, rank, str(go), str(LINES)], stdout=sink, env=env)
                    for rank in "ab"]  # fmt: skip
        go.touch()
        assert [c.wait(timeout=120) for c in children] == [0, 0]
    lines = out.read_text().split("\n")
    assert lines[-1] == ""
    expected = [json.dumps({"rank": r, "line": i, "pad": "x" * 40}) for r in "ab" for i in range(LINES)]
    assert sorted(lines[:-1]) == sorted(expected)
