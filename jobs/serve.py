"""Serve the lakehouse's catalog over JDBC/ODBC (Spark's Thrift server) until stopped with Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from types import FrameType

from marketlake.cli import base_parser, log, run
from marketlake.config import load_settings
from marketlake.serve import Endpoint, Server, check_port_free, sync_catalog_schemas
from marketlake.session import get_spark, serving_marker


def main(args: argparse.Namespace) -> int:
    endpoint = Endpoint(args.host, args.port)
    check_port_free(endpoint)
    settings = load_settings(args.conf_env)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    spark = get_spark(settings, "marketlake-serve", args.master, endpoint.conf())
    updated = sync_catalog_schemas(spark, settings.databases)
    if updated:
        log.info("wrote the schemas of %d tables into the metastore: %s", len(updated), ", ".join(updated))
    server = Server(spark, endpoint, serving_marker(settings))
    print(f"serving {settings.lakehouse_root} at {endpoint.url} (Ctrl-C stops)", flush=True)
    try:
        while not stop.wait(1):
            pass
    finally:
        log.info("stopping the SQL endpoint")
        server.stop()
    return 0


def parser() -> argparse.ArgumentParser:
    p = base_parser(__doc__ or "")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this host only)")
    p.add_argument("--port", type=int, default=10000, help="port to listen on (default 10000)")
    return p


if __name__ == "__main__":
    sys.exit(run(main, parser()))
