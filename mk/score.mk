# Batch scoring: a whole export through the champion models (titans score, serving/score_export.py).
#
#   make score SCORE_INPUT=export.csv   score an export with $(TITANS_HOME)/models into $(TITANS_HOME)/scored
#   make bench-score                    1M generated rows scored end to end (after make run) -> bench/results/score.*
#                                       BENCH_SCORE_ROWS="1000000 10000000" adds the 10M-row figure

SCORE_INPUT ?= ../shared/data/titans_transactions.csv
BENCH_SCORE_ROWS ?= 1000000

.PHONY: score bench-score
score: install ## score an export (SCORE_INPUT) with the deployed models into $(TITANS_HOME)/scored
	$(VENV)/bin/titans score --input $(SCORE_INPUT) --out $(TITANS_HOME)/scored --models $(TITANS_HOME)/models

bench-score: install ## 1M generated rows through titans score: wall time, phases, peak memory (bench/results/score.*)
	$(PY) bench/bench_score.py --rows $(BENCH_SCORE_ROWS) --features point-in-time
