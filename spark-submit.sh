#!/usr/bin/env bash
# Submit a marketlake job to local Spark (default) or a cluster, shipping lib/ and Delta's jars.
#
#   ./spark-submit.sh [--master URL] [other spark-submit options] JOB.py [job arguments]
#   MASTER=spark://host:7077 ./spark-submit.sh jobs/bronze_ingest.py --domain trends
#
# The master comes from --master, else $MASTER, else the config (conf/<MARKETLAKE_ENV>.yaml, default local).
# The lakehouse root (MARKETLAKE_LAKEHOUSE or config) must be reachable from every executor.
#
# Executors' Python: --python-env shipped (the default for a cluster master) sends the packed environment of
# `make executor-env` with the job (--archives), so executors need nothing of this machine but the same Python
# interpreter path; --python-env shared (the default for local[...]) points executors at this checkout's .venv,
# which only works where they run on this host or see it at the same path. MARKETLAKE_PYTHON_ENV sets it too.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
VENV=${MARKETLAKE_VENV:-$HERE/.venv}
PY=$VENV/bin/python
if [[ ! -x $PY || ! -d $HERE/.jars ]]; then
  echo "error: the environment is not set up; run 'make setup' first" >&2
  exit 2
fi

master=${MASTER:-}
python_env=${MARKETLAKE_PYTHON_ENV:-}
submit_opts=()
while [[ $# -gt 0 && $1 != *.py ]]; do
  case $1 in
    --master) master=${2:?--master needs a URL}; shift 2 ;;
    --master=*) master=${1#--master=}; shift ;;
    --python-env) python_env=${2:?--python-env needs shipped or shared}; shift 2 ;;
    --python-env=*) python_env=${1#--python-env=}; shift ;;
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
if [[ -z $python_env ]]; then
  if [[ $master == local* ]]; then python_env=shared; else python_env=shipped; fi
fi
case $python_env in
  shared) python_opts=(--conf "spark.executorEnv.PYSPARK_PYTHON=$PY") ;;
  shipped)
    # Built (or found up to date) once at a time: two submissions at once share one archive.
    flock "$HERE/dist/.executor-env.lock" make -s -C "$HERE" executor-env >&2 || exit 2
    python_opts=(--archives "$HERE/dist/executor-env.tar.gz#env" --conf spark.pyspark.python=./env/bin/python
      --conf "spark.pyspark.driver.python=$PY") ;;
  *) echo "error: --python-env must be shipped or shared, not '$python_env'" >&2; exit 2 ;;
esac

# Derby's home, when the metastore may be the embedded one (a local lakehouse); a lakehouse on distributed storage
# has its catalog in a metastore server.
derby_opt=
if [[ $derby_home != - ]]; then
  mkdir -p "$derby_home"
  derby_opt="-Dderby.system.home=$derby_home "
fi
lib_zip=$HERE/dist/marketlake-lib.zip
lib_part=$(mktemp --suffix=.zip "$HERE/dist/.marketlake-lib.XXXXXX")
(cd "$HERE/lib" && "$PY" -m zipfile -c "$lib_part" marketlake >/dev/null)
mv -f "$lib_part" "$lib_zip"  # whole, for a submission running beside this one

export PYSPARK_PYTHON=$PY PYSPARK_DRIVER_PYTHON=$PY SPARK_HOME=${SPARK_HOME:-$spark_home}
# The driver imports marketlake from the zip, so the checkout's folders are named, not found next to the code.
export MARKETLAKE_CONF_DIR=${MARKETLAKE_CONF_DIR:-$HERE/conf} MARKETLAKE_JARS_DIR=${MARKETLAKE_JARS_DIR:-$HERE/.jars}
export TZ=UTC  # the driver JVM and Python live in UTC whatever the submitting shell's zone (see session.pin_utc)
exec "$VENV/bin/spark-submit" \
  --master "$master" \
  --name "marketlake:$(basename "$job" .py)" \
  --jars "$jars" \
  --py-files "$lib_zip" \
  --driver-java-options "${derby_opt}-Dlog4j.configurationFile=file:$HERE/conf/log4j2.properties -Duser.timezone=UTC" \
  "${python_opts[@]}" \
  --conf "spark.executorEnv.TZ=UTC" \
  "${submit_opts[@]}" \
  "$job" "$@"
