# kind + platform (+ optionally the app), in dependency order: cluster -> platform -> app.
# `make kind-up` applies this with deploy_app = false and `make deploy` installs the chart with helm.

module "cluster" {
  source       = "../../modules/kind-cluster"
  cluster_name = var.cluster_name
}

provider "helm" {
  kubernetes {
    host                   = module.cluster.endpoint
    client_certificate     = module.cluster.client_certificate
    client_key             = module.cluster.client_key
    cluster_ca_certificate = module.cluster.cluster_ca_certificate
  }
}

module "platform" {
  source          = "../../modules/platform"
  ingress         = var.ingress
  kubeconfig_path = module.cluster.kubeconfig_path
  kube_context    = module.cluster.kube_context
  # `make images kind-load` puts ghcr.io/titans-finance/* into the node; nothing is pushed there.
  local_image_registries = ["ghcr.io"]
}

module "chart_values" {
  source = "../../modules/chart-values"
  models = var.models
  object_store = {
    endpoint        = "http://minio-service.kubeflow.svc.cluster.local:9000"
    region          = "us-east-1"
    existing_secret = "titans-object-store"
  }
  inference_from_namespaces = ["knative-serving", module.platform.namespaces.ingress]
}

module "app" {
  count  = var.deploy_app ? 1 : 0
  source = "../../modules/app"
  values = module.chart_values.values

  depends_on = [module.platform]
}
