# Feature store (Feast): build the store from the clean table, and its benchmark.
#
#   make features          titans features build on $(TITANS_HOME)/data (after `titans data ingest`)
#   make bench-features    1M generated transactions: build steps, materialization rows/s, online
#                          p50/p99 per service, on-demand view cost -> bench/results/features.{json,md}
#
# BENCH_FEATURES_ARGS passes extra flags, e.g. BENCH_FEATURES_ARGS="--data var/data" to reuse an
# ingested data set instead of generating 1M rows.

BENCH_FEATURES_ROWS ?= 1000000
BENCH_FEATURES_ARGS ?=

.PHONY: features bench-features

features: install ## build offline tables, apply feature_repo/, materialize the online store
	$(VENV)/bin/titans features build --data $(TITANS_HOME)/data

bench-features: install ## feature-store benchmark (results in bench/results/features.json)
	$(PY) bench/bench_features.py --rows $(BENCH_FEATURES_ROWS) --out bench/results/features.json $(BENCH_FEATURES_ARGS)
