"""Run Derby's network server as the lakehouse's shared metastore database until stopped (Ctrl-C or SIGTERM).
Point the jobs at it with `metastore: {kind: server, url: jdbc:derby://HOST:PORT/marketlake;create=true}` in
conf/<env>.yaml; its databases live in <lakehouse root>/_metastore_server, or in --data (a local folder: a lakehouse on
distributed storage needs one)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from marketlake.cli import base_parser, run
from marketlake.config import load_settings
from marketlake.errors import InputError
from marketlake.location import Location
from marketlake.metastore import server_command
from marketlake.serve import Endpoint, check_port_free
from marketlake.session import JARS_DIR


def main(args: argparse.Namespace) -> int:
    check_port_free(Endpoint(args.host, args.port))
    home = Path(args.data).resolve() if args.data else server_home(load_settings(args.conf_env).lakehouse_root)
    home.mkdir(parents=True, exist_ok=True)
    command = server_command(JARS_DIR, home, args.host, args.port)
    print(
        f"metastore server at jdbc:derby://{args.host}:{args.port}/marketlake;create=true, data in {home}", flush=True
    )
    os.execv(command[0], command)  # the server in this process's place: Ctrl-C and SIGTERM stop it


def server_home(root: Location) -> Path:
    """The server's data folder by default: <root>/_metastore_server, when the lakehouse is a local folder."""
    if not root.is_local:
        raise InputError(f"the lakehouse {root} is not a local folder; give the server's data folder with --data DIR")
    return root.local_path / "_metastore_server"


def parser() -> argparse.ArgumentParser:
    p = base_parser(__doc__ or "")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this host only)")
    p.add_argument("--port", type=int, default=1527, help="port to listen on (default 1527)")
    p.add_argument("--data", help="local folder of its databases (default <lakehouse root>/_metastore_server)")
    return p


if __name__ == "__main__":
    sys.exit(run(main, parser(), catalogue=False))
