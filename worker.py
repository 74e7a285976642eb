"""`python worker.py` runs the Temporal worker, exactly like `ratio-zoom worker`."""

from ratio_zoom.cli.main import main

if __name__ == "__main__":
    raise SystemExit(main(["worker"]))
