"""`robot-stack` sub-commands run in parallel child processes, for the jobs that split by seed
(expert data, in-process evaluation). Children talk back through files and their stdout, never pickle."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

from tqdm import tqdm

from robot_stack.supervision import die_with_parent


def run_cli_workers(argvs: list[list[str]], desc: str, total: int,
                    progress: Callable[[list[bool]], int]) -> list[str]:
    """Run `robot-stack ARGV` once per entry, each in its own process, under one progress bar; their stdouts, in order.

    `progress(finished)` gives the units done so far (finished[k]: child k exited 0). A child that
    fails raises RuntimeError with the end of its stderr; the others are stopped."""
    with tempfile.TemporaryDirectory(prefix="workers_") as tmp:
        procs = []
        for k, argv in enumerate(argvs):
            with open(f"{tmp}/{k}.out", "w") as out, open(f"{tmp}/{k}.err", "w") as err:
                # SIGTERM when this process dies however it dies, not only with its process group; safe for
                # the signal's thread rule, as this thread waits for every worker before it returns.
                procs.append(subprocess.Popen([sys.executable, "-m", "robot_stack.cli", *argv], stdout=out,
                                              stderr=err, env={**os.environ, "OMP_NUM_THREADS": "1"},
                                              preexec_fn=die_with_parent(signal.SIGTERM)))
        try:
            with tqdm(total=total, desc=f"{desc} ({len(procs)} workers)", unit="ep") as bar:
                finished = [False] * len(procs)
                while not all(finished):
                    time.sleep(0.5)
                    for k, proc in enumerate(procs):
                        if not finished[k] and proc.poll() is not None:
                            if proc.returncode:
                                log = Path(f"{tmp}/{k}.err").read_text()[-2000:]
                                raise RuntimeError(f"worker {k} (robot-stack {' '.join(argvs[k])}) exited with "
                                                   f"{proc.returncode}:\n{log}")
                            finished[k] = True
                    bar.n = min(total, progress(finished))
                    bar.refresh()
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
        return [Path(f"{tmp}/{k}.out").read_text() for k in range(len(procs))]
