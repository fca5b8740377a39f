#!/usr/bin/env bash
# Submit a marketlake job to local Spark (default) or a cluster, shipping lib/ and Delta's jars.
#
#   ./spark-submit.sh [--master URL] [other spark-submit options] JOB.py [job arguments]
#   MASTER=spark://host:7077 ./spark-submit.sh jobs/bronze_ingest.py --domain trends
#
# The master comes from --master, else $MASTER, else the config (conf/<MARKETLAKE_ENV>.yaml, default local).
# The lakehouse root (MARKETLAKE_LAKEHOUSE or config) must be reachable from every executor.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
VENV=${MARKETLAKE_VENV:-$HERE/.venv}
PY=$VENV/bin/python
if [[ ! -x $PY || ! -d $HERE/.jars ]]; then
  echo "error: the environment is not set up; run 'make setup' first" >&2
  exit 2
fi

master=${MASTER:-}
submit_opts=()
while [[ $# -gt 0 && $1 != *.py ]]; do
  case $1 in
    --master) master=${2:?--master needs a URL}; shift 2 ;;
    --master=*) master=${1#--master=}; shift ;;
    *) submit_opts+=("$1"); shift ;;
  esac
done
if [[ $# -eq 0 ]]; then
  echo "usage: $0 [--master URL] [spark-submit options] JOB.py [job arguments]" >&2
  exit 2
fi
job=$1; shift
if [[ ! -f $job ]]; then
  echo "error: job file '$job' not found" >&2
  exit 2
fi

# Master, the embedded metastore's folder ("-" for none), Delta jars, as the config and environment give them.
# A config mistake (a lakehouse on distributed storage with an embedded metastore, a broken YAML file) is one error
# line and exit 2.
settings=$("$PY" - <<'PYEOF'
import os
import sys

import pyspark

from marketlake.config import load_settings
from marketlake.errors import MarketlakeError
from marketlake.session import delta_jars, metastore_client_conf

try:
    s = load_settings()
    driver_classpath = metastore_client_conf(s).get("spark.driver.extraClassPath", "")
    derby_home = s.metastore_dir if s.lakehouse_root.is_local else "-"
except MarketlakeError as exc:
    sys.exit(f"error: {exc}")
jars = ",".join(str(j) for j in delta_jars())
print(s.spark.master, derby_home, jars, os.path.dirname(pyspark.__file__), driver_classpath)
PYEOF
) || exit 2
read -r conf_master derby_home jars spark_home driver_classpath <<< "$settings"
# A metastore server's JDBC driver must be on the driver JVM's classpath when it starts.
if [[ -n $driver_classpath ]]; then submit_opts+=(--driver-class-path "$driver_classpath"); fi
master=${master:-$conf_master}

mkdir -p "$HERE/dist"
# Derby's home, when the metastore may be the embedded one (a local lakehouse); a lakehouse on distributed storage
# has its catalog in a metastore server.
derby_opt=
if [[ $derby_home != - ]]; then
  mkdir -p "$derby_home"
  derby_opt="-Dderby.system.home=$derby_home "
fi
lib_zip=$HERE/dist/marketlake-lib.zip
(cd "$HERE/lib" && "$PY" -m zipfile -c "$lib_zip" marketlake >/dev/null)

export PYSPARK_PYTHON=$PY PYSPARK_DRIVER_PYTHON=$PY SPARK_HOME=${SPARK_HOME:-$spark_home}
export MARKETLAKE_CONF_DIR=${MARKETLAKE_CONF_DIR:-$HERE/conf}
export TZ=UTC  # the driver JVM and Python live in UTC whatever the submitting shell's zone (see session.pin_utc)
exec "$VENV/bin/spark-submit" \
  --master "$master" \
  --name "marketlake:$(basename "$job" .py)" \
  --jars "$jars" \
  --py-files "$lib_zip" \
  --driver-java-options "${derby_opt}-Dlog4j.configurationFile=file:$HERE/conf/log4j2.properties -Duser.timezone=UTC" \
  --conf "spark.executorEnv.PYSPARK_PYTHON=$PY" \
  --conf "spark.executorEnv.TZ=UTC" \
  "${submit_opts[@]}" \
  "$job" "$@"
