"""Run Derby's network server as the lakehouse's shared metastore database until stopped (Ctrl-C or SIGTERM).
Point the jobs at it with `metastore: {kind: server, url: jdbc:derby://HOST:PORT/marketlake;create=true}` in
conf/<env>.yaml; its databases live in <lakehouse root>/_metastore_server."""

from __future__ import annotations

import argparse
import os
import sys

from marketlake.cli import base_parser, run
from marketlake.config import load_settings
from marketlake.errors import InputError
from marketlake.metastore import server_command
from marketlake.serve import Endpoint, check_port_free
from marketlake.session import JARS_DIR


def main(args: argparse.Namespace) -> int:
    if not 0 < args.port < 65536:
        raise InputError(f"--port must be between 1 and 65535, not {args.port}")
    check_port_free(Endpoint(args.host, args.port))
    home = load_settings(args.conf_env).lakehouse_root / "_metastore_server"
    home.mkdir(parents=True, exist_ok=True)
    command = server_command(JARS_DIR, home, args.host, args.port)
    print(
        f"metastore server at jdbc:derby://{args.host}:{args.port}/marketlake;create=true, data in {home}", flush=True
    )
    os.execv(command[0], command)  # the server in this process's place: Ctrl-C and SIGTERM stop it


def parser() -> argparse.ArgumentParser:
    p = base_parser(__doc__ or "")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this host only)")
    p.add_argument("--port", type=int, default=1527, help="port to listen on (default 1527)")
    return p


if __name__ == "__main__":
    sys.exit(run(main, parser(), catalogue=False))
