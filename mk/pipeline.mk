# Pipeline targets: compile the IR for the Kubeflow UI, build the project image.
IMAGE ?= ghcr.io/titans-finance/titans:0.1.0

.PHONY: compile image
compile: install ## write pipelines/compiled/*.yaml (committed; a test checks it is fresh)
	$(VENV)/bin/titans pipeline compile

image: ## the project image (needs Docker)
	@command -v docker >/dev/null || { echo "make image needs Docker"; exit 2; }
	docker build -t $(IMAGE) .
