"""A stand-in ROS node for tests/test_launcher.py: prints its argv, then does what its options say.

Its own options come before `--ros-args` (the launcher appends the ROS arguments):
  --append FILE          append "<pid>" to FILE once the signal handlers are installed
  --wait-for FILE:N      before exiting, wait until FILE has at least N lines
  --exit-code N          exit with N (after --wait-for); without it, run until signalled
  --stubborn             ignore SIGINT and SIGTERM: only SIGKILL stops it
  --print-env NAME       print NAME=<value of the environment variable>
"""
import json
import os
import signal
import sys
import time


def lines(path):
    try:
        with open(path) as f:
            return len(f.read().splitlines())
    except FileNotFoundError:
        return 0


def main():
    argv = sys.argv[1:]
    own = argv[:argv.index("--ros-args")] if "--ros-args" in argv else argv
    opts = {}
    i = 0
    while i < len(own):
        if own[i] == "--stubborn":
            opts["stubborn"] = True
            i += 1
        else:
            opts[own[i].lstrip("-")] = own[i + 1]
            i += 2
    print("argv " + json.dumps(argv), flush=True)
    print("stderr works", file=sys.stderr, flush=True)

    def on_signal(signum, frame):
        print(f"got {signal.Signals(signum).name}", flush=True)
        if not opts.get("stubborn"):
            sys.exit(0)

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    if "print-env" in opts:
        print(f"{opts['print-env']}={os.environ.get(opts['print-env'])}", flush=True)
    if "append" in opts:
        with open(opts["append"], "a") as f:
            f.write(f"{os.getpid()}\n")
    if "exit-code" in opts:
        if "wait-for" in opts:
            path, count = opts["wait-for"].rsplit(":", 1)
            deadline = time.monotonic() + 30
            while lines(path) < int(count) and time.monotonic() < deadline:
                time.sleep(0.02)
        sys.exit(int(opts["exit-code"]))
    while True:
        signal.pause()


if __name__ == "__main__":
    main()
