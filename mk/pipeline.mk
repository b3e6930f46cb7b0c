# Pipeline targets: compile the IR for the Kubeflow UI (the images are in mk/images.mk).

.PHONY: compile
compile: install ## write pipelines/compiled/*.yaml (committed; a test checks it is fresh)
	$(VENV)/bin/titans pipeline compile

.PHONY: bench-pipeline
bench-pipeline: install ## wall time per step and peak memory of `make run` (bench/results/pipeline-*.{json,md})
	$(PY) bench/bench_pipeline.py --rows 20000

.PHONY: bench-learning-curve
bench-learning-curve: install ## holdout metric and fit time against training rows, category and amount (bench/results/learning-curve.*)
	$(PY) bench/bench_learning_curve.py --rows 1000000
