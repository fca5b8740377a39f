"""Derby's network server as the catalog's shared metastore database (`metastore.kind: server` in conf): one
database every Spark driver reaches over JDBC, so that several jobs use the catalog at once, where the embedded
Derby admits one process per lakehouse. Its jars come from Maven Central (`make derby-jars`), in pyspark's Derby
version."""

from __future__ import annotations

import shutil
from pathlib import Path

from marketlake.errors import ConfigError

SERVER_CLASS = "org.apache.derby.drda.NetworkServerControl"


def server_jars(jars_dir: Path) -> list[Path]:
    jars = sorted((jars_dir / "derby").glob("*.jar"))
    if not any(j.name.startswith("derbynet-") for j in jars):
        raise ConfigError(f"Derby's network server is not in {jars_dir / 'derby'}; run `make derby-jars`")
    return jars


def server_command(jars_dir: Path, home: Path, host: str, port: int) -> list[str]:
    """The command that runs the server in the foreground, its databases under `home` (derby.system.home)."""
    java = shutil.which("java") or "java"
    classpath = ":".join(str(j) for j in server_jars(jars_dir))
    return [java, f"-Dderby.system.home={home}", "-cp", classpath, SERVER_CLASS, "start", "-h", host, "-p", str(port)]
