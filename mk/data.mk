# Data-plane benchmark: generate and ingest 1M rows (results in bench/results/data.{json,md}).
BENCH_ROWS ?= 1000000

.PHONY: bench-data
bench-data: install
	$(PY) bench/bench_data.py --rows $(BENCH_ROWS)

# The data plane on each engine: ingest and the feature build, pandas against Spark local[1]/local[2], at 1M and
# 10M generated rows (features up to 1M) -> bench/results/spark.{json,md}. Needs the `spark` extra and a JRE.
BENCH_SPARK_ROWS ?= 1000000 10000000
.PHONY: bench-spark
bench-spark: install ## ingest + features per engine, rows/s/core and peak memory (bench/results/spark.*)
	$(PY) bench/bench_spark.py --rows $(BENCH_SPARK_ROWS)
