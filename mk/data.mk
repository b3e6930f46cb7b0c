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

# Feast's point-in-time join (the training-set read) on duckdb and on the Spark profile (local[2]), N sampled expense
# rows per size from one generated export, both training sets compared cell by cell (must be 0) -> the pit section
# of bench/results/spark.{json,md}. Needs the `spark` extra and a JRE; 1M rows take ~25-35 min on 2 cores.
BENCH_PIT_ROWS ?= 10000 100000 1000000
.PHONY: bench-spark-pit
bench-spark-pit: install ## point-in-time join, duckdb vs Spark local[2]: entity rows/s, peak memory, mismatching cells (0)
	$(PY) bench/bench_pit.py --rows $(BENCH_PIT_ROWS)
