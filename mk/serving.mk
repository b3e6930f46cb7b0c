# Serving: the KServe V2 runtime (serving/) and its benchmarks.
#
#   make serve            serve what `make run` trained, $(TITANS_HOME)/models (default ./var/models), with
#                         stored features from the Feast store under $(TITANS_HOME)/features:
#                         REST http://127.0.0.1:8080 (also /metrics), gRPC 127.0.0.1:8081
#   make bench-serving    the four real models of $(TITANS_HOME)/models (after make run; fast path, reference path,
#                         MLServer's xgboost runtime on the anomaly booster, issue-12 targets) -> serving.md, serving_real.json;
#                         our runtime vs MLServer on the same stand-in model -> bench/results/serving.{json,md};
#                         in-process Feast enrichment vs the transformer -> bench/results/enrichment.json
#                         the merchant recommender (single accounts, batches; REST) -> bench/results/serving_recommend.{json,md}
#   make bench-soak       5 minutes open-loop at 80% of one core's capacity on the five models, 1% malformed and
#                         0.1% oversized requests: status classes, first/last minute tails, RSS growth -> soak.{json,md}
#
# SERVE_ARGS passes extra flags, e.g. make serve SERVE_ARGS="--http-port 9000 --enrichment none";
# BENCH_SERVING_ARGS too, e.g. BENCH_SERVING_ARGS="--scenario serving --seconds 4".

SERVE_ARGS ?=
BENCH_SERVING_ARGS ?=

.PHONY: serve bench-serving

serve: install ## serve the trained model directories over V2 REST + gRPC (Ctrl-C stops)
	$(VENV)/bin/titans serve --models $(TITANS_HOME)/models $(SERVE_ARGS)

bench-serving: install ## the real models, titans runtime vs MLServer, enrichment in process vs transformer (loopback only)
	$(PY) bench/bench_serving.py --out-dir bench/results $(BENCH_SERVING_ARGS)
	$(PY) bench/bench_recommend.py --out-dir bench/results

.PHONY: bench-soak
bench-soak: install ## 5-minute soak of titans serve on $(TITANS_HOME)/models with bad requests mixed in (bench/results/soak.*)
	$(PY) bench/bench_soak.py

.PHONY: bench-drift
bench-drift: install ## cost of drift counters and the score log per request, on $(TITANS_HOME)/models (bench/results/drift.*)
	$(PY) bench/bench_drift.py

.PHONY: bench-explain
bench-explain: install ## explanation cost on the real models: single-row p50 plain vs explained, 1000-row batches (bench/results/explain.*)
	$(PY) bench/bench_explain.py --home $(TITANS_HOME) --out-dir bench/results
