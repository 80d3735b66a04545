"""Command line: build the stand-in's repos, or serve them until stopped.

    python -m tests.hub_standin build --root DIR
    python -m tests.hub_standin serve --root DIR [--build] [--port N] [--port-file FILE]

``serve`` writes the endpoint (``http://127.0.0.1:PORT``) to ``--port-file`` once it answers, prints
it, and runs until it gets SIGINT or SIGTERM. See the package docstring for the environment to use.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path

from . import build_all
from .server import HubStandin


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.hub_standin", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build", help="write the repos under --root")
    build.add_argument("--root", required=True, type=Path)
    serve = commands.add_parser("serve", help="serve the repos under --root on 127.0.0.1")
    serve.add_argument("--root", required=True, type=Path)
    serve.add_argument("--build", action="store_true", help="build the repos first")
    serve.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    serve.add_argument("--port-file", type=Path, help="write the endpoint URL here when ready")
    args = parser.parse_args(argv)

    if args.command == "build" or args.build:
        build_all(args.root)
        if args.command == "build":
            print(f"built the stand-in repos under {args.root}")
            return 0
    hub = HubStandin(args.root, port=args.port)
    if args.port_file is not None:
        args.port_file.parent.mkdir(parents=True, exist_ok=True)
        partial = args.port_file.with_name(args.port_file.name + ".partial")
        partial.write_text(hub.endpoint + "\n")
        os.replace(partial, args.port_file)  # appears whole: a reader never sees half a URL
    print(f"HF_ENDPOINT={hub.endpoint}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        hub.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
