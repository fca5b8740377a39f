# marketlake: `make demo` and `make test` work from a fresh clone (Python 3.11, Java 17, Maven).
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
JARS_STAMP := .jars/.stamp
HDFS_JARS_STAMP := .jars/hadoop/.stamp
DERBY_JARS_STAMP := .jars/derby/.stamp
S3A_JARS_STAMP := .jars/s3a/.stamp
EXECUTOR_ENV := dist/executor-env
VENV_STAMP := $(VENV)/.stamp
LAKEHOUSE ?= $(CURDIR)/lakehouse
LANDING ?= $(LAKEHOUSE)/landing
DEMO_SCALE ?= 1
DEMO_DAYS ?= 56
DEMO_START ?= 2026-01-01
DEMO_SEED ?= 42
DEMO_END = $(shell date -u -d "$(DEMO_START) + $(DEMO_DAYS) days - 1 day" +%F)
# The demo scores its last six weeks: the models' test windows (whose labels are complete) and the days after them,
# which notebooks/4_models.ipynb plots day by day.
SCORE_DAYS ?= 42
SCORE_START = $(shell date -u -d "$(DEMO_END) - $(SCORE_DAYS) days + 1 day" +%F)
# Fraud scores the last two weeks: its models train on the days whose labels were final before them (14 days for a
# shop's fraud claim), and keep a week of those as their test window.
FRAUD_DAYS ?= 14
FRAUD_START = $(shell date -u -d "$(DEMO_END) - $(FRAUD_DAYS) days + 1 day" +%F)
# Forecasts start the day after the generated data.
FORECAST_DATE = $(shell date -u -d "$(DEMO_END) + 1 day" +%F)

.PHONY: setup env jars hdfs-jars derby-jars s3a-jars executor-env demo test test-cluster lint bench maintain serve metastore-server notebooks clean

setup: env jars

env: $(VENV_STAMP)
$(VENV_STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip uv
	$(VENV)/bin/uv pip sync --quiet --python $(PY) requirements.lock
	$(VENV)/bin/uv pip install --quiet --python $(PY) --no-deps -e .
	touch $@

jars: $(JARS_STAMP)
$(JARS_STAMP): build/jars/pom.xml
	rm -rf .jars && mkdir -p .jars
	mvn -q -B -f build/jars/pom.xml dependency:copy-dependencies \
	    -DincludeScope=runtime -DincludeGroupIds=io.delta,io.unitycatalog -DoutputDirectory=$(CURDIR)/.jars
	ls .jars/*.jar > /dev/null
	touch $@

# Apache Hadoop's MiniDFSCluster (a test-only HDFS on 127.0.0.1, ~104 MB) in .jars/hadoop, off Spark's classpath
# (session.delta_jars globs .jars/*.jar only). After `jars`, whose rm -rf .jars would remove it.
hdfs-jars: $(HDFS_JARS_STAMP)
$(HDFS_JARS_STAMP): build/jars/pom.xml $(JARS_STAMP)
	rm -rf .jars/hadoop && mkdir -p .jars/hadoop
	mvn -q -B -f build/jars/pom.xml -P hdfs-minicluster dependency:copy-dependencies \
	    -DincludeScope=runtime -DoutputDirectory=$(CURDIR)/.jars/hadoop
	ls .jars/hadoop/hadoop-client-minicluster-*.jar > /dev/null
	touch $@

# Derby's network server and client driver (pyspark's Derby version, ~5 MB) in .jars/derby, for a metastore
# database shared by several Spark drivers (jdbc:derby://127.0.0.1:PORT/...); only derbyclient goes on Spark's classpath.
derby-jars: $(DERBY_JARS_STAMP)
$(DERBY_JARS_STAMP): build/jars/pom.xml $(JARS_STAMP)
	rm -rf .jars/derby && mkdir -p .jars/derby
	mvn -q -B -f build/jars/pom.xml -P derby-server dependency:copy-dependencies \
	    -DincludeScope=runtime -DoutputDirectory=$(CURDIR)/.jars/derby
	ls .jars/derby/derbynet-*.jar .jars/derby/derbyclient-*.jar > /dev/null
	touch $@

# Hadoop's S3A connector (hadoop-aws at pyspark's Hadoop version, and the AWS SDK bundle, ~600 MB) in .jars/s3a, for
# a lakehouse on s3a:// (conf/cluster.yaml); every job ships them with Delta's jars once they are there.
s3a-jars: $(S3A_JARS_STAMP)
$(S3A_JARS_STAMP): build/jars/pom.xml $(JARS_STAMP)
	rm -rf .jars/s3a && mkdir -p .jars/s3a
	mvn -q -B -f build/jars/pom.xml -P s3a dependency:copy-dependencies \
	    -DincludeScope=runtime -DoutputDirectory=$(CURDIR)/.jars/s3a
	ls .jars/s3a/hadoop-aws-*.jar > /dev/null
	touch $@

# The Python environment executors run in, packed to ship with a job to a cluster (spark-submit.sh --archives):
# build/executor-env.txt's packages and their dependencies at requirements.lock's versions, in a venv of $(PYTHON),
# which every worker host needs at the same path (venv-pack packs the packages, not the interpreter).
executor-env: $(EXECUTOR_ENV).tar.gz
$(EXECUTOR_ENV).tar.gz: build/executor-env.txt requirements.lock Makefile $(VENV_STAMP)
	rm -rf $(EXECUTOR_ENV) && mkdir -p dist && $(PYTHON) -m venv --without-pip $(EXECUTOR_ENV)
	$(VENV)/bin/uv pip install --quiet --python $(EXECUTOR_ENV)/bin/python --constraint requirements.lock \
	    $$(grep -v '^#' build/executor-env.txt)
	# delta-spark's Python API (marketlake.tables imports it), without the pyspark it requires: Spark supplies that
	$(VENV)/bin/uv pip install --quiet --python $(EXECUTOR_ENV)/bin/python --no-deps \
	    $$(grep -E '^(delta-spark|importlib-metadata|zipp)==' requirements.lock)
	$(VENV)/bin/venv-pack --quiet --prefix $(EXECUTOR_ENV) --output $(EXECUTOR_ENV).part.tar.gz --force
	mv $(EXECUTOR_ENV).part.tar.gz $@

demo: setup
	$(PY) jobs/generate.py --scale $(DEMO_SCALE) --start $(DEMO_START) --days $(DEMO_DAYS) \
	    --seed $(DEMO_SEED) --out $(LANDING)
	$(PY) jobs/bronze_ingest.py --domain all --landing $(LANDING)
	$(PY) jobs/silver_build.py --domain all
	$(PY) jobs/gold_build.py --start $(DEMO_START) --end $(DEMO_END)
	$(PY) jobs/train.py --model all
	$(PY) jobs/score.py --model all --start $(SCORE_START) --end $(DEMO_END)
	$(PY) jobs/experiments.py --start $(SCORE_START) --end $(DEMO_END)
	$(PY) jobs/clv.py --date $(DEMO_END)
	$(PY) jobs/forecast.py --date $(FORECAST_DATE)
	$(PY) jobs/fraud.py --start $(FRAUD_START) --end $(DEMO_END)
	$(PY) jobs/model_performance.py --start $(SCORE_START) --end $(DEMO_END)
	$(PY) jobs/anomalies.py --start $(DEMO_START) --end $(DEMO_END)
	$(PY) jobs/summary.py
	$(PY) jobs/query.py "SELECT segment, count(*) AS users, round(avg(monetary_usd), 2) AS avg_90d_volume_usd \
	    FROM gold.exchange_rfm WHERE as_of_date = DATE'$(DEMO_END)' GROUP BY segment ORDER BY users DESC"

# The suite CI runs: everything but the cluster chain (tests marked `cluster`), which `make test-cluster` runs.
test: setup hdfs-jars derby-jars
	$(PY) -m ruff check lib jobs tests
	$(PY) -m pytest -q -m "not cluster"

# The whole chain submitted to a standalone cluster over HDFS against local mode, with a worker lost midway (about
# 40 min on 2 cores: too long for every change, so not part of make test).
test-cluster: setup hdfs-jars derby-jars executor-env
	$(PY) -m pytest -q -m cluster

lint: env
	$(PY) -m ruff check lib jobs tests
	$(PY) -m ruff format --check lib jobs tests

bench: setup
	$(PY) -m pytest -q tests/benchmarks -s

# Compact and vacuum every Delta table of the lakehouse (MAINTAIN_ARGS e.g. "--dry-run" or "--layer bronze").
maintain: setup
	MARKETLAKE_LAKEHOUSE=$(LAKEHOUSE) $(PY) jobs/maintain.py $(MAINTAIN_ARGS)

# The SQL endpoint for BI tools over ./lakehouse (SERVE_ARGS e.g. "--port 10001"); Ctrl-C stops it.
serve: setup
	MARKETLAKE_LAKEHOUSE=$(LAKEHOUSE) $(PY) jobs/serve.py $(SERVE_ARGS)

# Derby's network server as the catalog's shared metastore (metastore.kind: server in conf/<env>.yaml), on
# 127.0.0.1:1527 (METASTORE_ARGS e.g. "--port 1528"), its data in <lakehouse>/_metastore_server (or "--data DIR",
# which a lakehouse on distributed storage needs); Ctrl-C stops it.
metastore-server: setup derby-jars
	MARKETLAKE_LAKEHOUSE=$(LAKEHOUSE) $(PY) jobs/metastore_server.py $(METASTORE_ARGS)

# Execute every notebook against ./lakehouse (after make demo) and render it as HTML under notebooks/html (git-ignored).
notebooks: setup
	MARKETLAKE_LAKEHOUSE=$(LAKEHOUSE) $(VENV)/bin/jupyter nbconvert --to html --execute \
	    --ExecutePreprocessor.timeout=600 --output-dir notebooks/html notebooks/*.ipynb

clean:
	rm -rf lakehouse .pytest_cache spark-warehouse metastore_db derby.log
