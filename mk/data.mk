# Data-plane benchmark: generate and ingest 1M rows (results in bench/results/data.{json,md}).
BENCH_ROWS ?= 1000000

.PHONY: bench-data
bench-data: install
	$(PY) bench/bench_data.py --rows $(BENCH_ROWS)
