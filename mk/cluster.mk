# Cluster delivery: kind cluster + platform (Terraform), the app (Helm), offline tooling.
# The order things come up in is documented in docs/deploying.md.
#
#   make tools       checkov in its own venv (.venv-tools): its pins must not constrain the product's lock
#   make manifests   regenerate manifests/ (kustomize base and components) from the Helm chart
#   make kind-secrets  object-store Secret for the kind values (from KFP's MinIO)
#   make kind-up     kind cluster + cert-manager, Knative, KServe, KFP, kube-prometheus-stack (needs Docker)
#   make deploy      helm upgrade --install the chart into the kind cluster (needs the helm CLI)
#   make kind-down   destroy the kind cluster
#   make canary MODEL=category PERCENT=10 VERSION=2   roll a new model version out as a canary

TOOLS_VENV ?= .venv-tools
CHECKOV_VERSION ?= 3.3.30
TF ?= terraform
HELM ?= helm
KUBECTL ?= kubectl
KIND_ENV := terraform/environments/kind
CLUSTER_NAME ?= titans
RELEASE ?= titans
NAMESPACE ?= titans
CHART := helm/titans-finance
KIND_VALUES ?= $(CHART)/ci/kind-values.yaml
MODEL ?= category
PERCENT ?= 10
VERSION ?= 2

.PHONY: tools manifests kind-up kind-secrets deploy kind-down canary promote

tools: $(TOOLS_VENV)/bin/checkov ## checkov (IaC linter) in .venv-tools, outside the product lock

$(TOOLS_VENV)/bin/checkov:
	@$(UV) --version >/dev/null 2>&1 || python3 -m pip install --quiet "uv>=0.5"
	$(UV) venv --quiet --python 3.11 $(TOOLS_VENV)
	@# Byte-compile at install: with PYTHONDONTWRITEBYTECODE set (as on CI) every run would recompile ~6k modules.
	$(UV) pip install --quiet --compile-bytecode --python $(TOOLS_VENV)/bin/python "checkov==$(CHECKOV_VERSION)"
	$(TOOLS_VENV)/bin/checkov --version

manifests: install ## regenerate the kustomize base/components from the chart (commit the result)
	$(PY) manifests/generate.py

kind-up: ## kind cluster and platform services, in dependency order (Terraform, needs Docker)
	@command -v docker >/dev/null || { echo "kind-up needs Docker"; exit 2; }
	@command -v $(TF) >/dev/null || { echo "kind-up needs terraform >= 1.6"; exit 2; }
	CHECKPOINT_DISABLE=1 $(TF) -chdir=$(KIND_ENV) init -upgrade
	CHECKPOINT_DISABLE=1 $(TF) -chdir=$(KIND_ENV) apply -auto-approve -var cluster_name=$(CLUSTER_NAME)
	$(KUBECTL) --context kind-$(CLUSTER_NAME) get nodes

kind-secrets: ## the object-store Secret the kind values name, from KFP's MinIO credentials (never committed)
	$(KUBECTL) create namespace $(NAMESPACE) --dry-run=client -o yaml | $(KUBECTL) apply -f -
	$(KUBECTL) -n $(NAMESPACE) create secret generic titans-object-store --dry-run=client -o yaml \
		--from-literal=AWS_ACCESS_KEY_ID="$$($(KUBECTL) -n kubeflow get secret mlpipeline-minio-artifact -o jsonpath='{.data.accesskey}' | base64 -d)" \
		--from-literal=AWS_SECRET_ACCESS_KEY="$$($(KUBECTL) -n kubeflow get secret mlpipeline-minio-artifact -o jsonpath='{.data.secretkey}' | base64 -d)" \
		| $(KUBECTL) apply -f -

deploy: ## install or upgrade the Titans chart on the current kube context
	@command -v $(HELM) >/dev/null || { echo "deploy needs the helm CLI (v3.14+ or v4)"; exit 2; }
	$(HELM) upgrade --install $(RELEASE) $(CHART) --namespace $(NAMESPACE) --create-namespace \
		--values $(KIND_VALUES) --wait --timeout 10m
	$(KUBECTL) --namespace $(NAMESPACE) get inferenceservices

canary: ## send PERCENT% of MODEL's traffic to model version VERSION (a new Knative revision)
	$(HELM) upgrade $(RELEASE) $(CHART) --namespace $(NAMESPACE) --reuse-values \
		--set models.$(MODEL).version=$(VERSION) --set models.$(MODEL).canaryTrafficPercent=$(PERCENT)
	$(KUBECTL) --namespace $(NAMESPACE) get inferenceservice titans-$(MODEL)

promote: ## make MODEL's latest revision take all traffic
	$(HELM) upgrade $(RELEASE) $(CHART) --namespace $(NAMESPACE) --reuse-values \
		--set models.$(MODEL).canaryTrafficPercent=100

kind-down: ## destroy the kind cluster (and everything in it)
	CHECKPOINT_DISABLE=1 $(TF) -chdir=$(KIND_ENV) destroy -auto-approve -var cluster_name=$(CLUSTER_NAME)
