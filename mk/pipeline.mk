# Pipeline targets: compile the IR for the Kubeflow UI, build the project image.
IMAGE ?= ghcr.io/titans-finance/titans:0.1.0

.PHONY: compile image
compile: install ## write pipelines/compiled/*.yaml (committed; a test checks it is fresh)
	$(VENV)/bin/titans pipeline compile

image: ## the project image (needs Docker)
	@command -v docker >/dev/null || { echo "make image needs Docker"; exit 2; }
	docker build -t $(IMAGE) .

.PHONY: bench-pipeline
bench-pipeline: install ## wall time per step and peak memory of `make run` (bench/results/pipeline-*.{json,md})
	$(PY) bench/bench_pipeline.py --rows 20000
