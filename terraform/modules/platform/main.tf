# The cluster services Titans needs, in the order they depend on each other:
#   1. cert-manager          (KServe's webhook certificates)
#   2. Istio                 (only when ingress = "istio")
#   3. Knative Operator, then KnativeServing (with Kourier or Istio as its ingress)
#   4. KServe CRDs, then the KServe controller (Knative mode: canaries need Knative)
#   5. kube-prometheus-stack (the ServiceMonitor/PodMonitor/PrometheusRule CRDs the chart uses)
#   6. Kubeflow Pipelines    (standalone; no Helm chart exists, so kubectl apply -k of the release)
#   7. Spark Operator        (the data steps' SparkApplications, in KFP's namespace; its webhook on)
# The app (our chart) comes last, from modules/app.

locals {
  knative_ingress_class = var.ingress == "istio" ? "istio.ingress.networking.knative.dev" : "kourier.ingress.networking.knative.dev"
}

resource "helm_release" "cert_manager" {
  name             = "cert-manager"
  repository       = "https://charts.jetstack.io"
  chart            = "cert-manager"
  version          = var.versions.cert_manager
  namespace        = "cert-manager"
  create_namespace = true
  atomic           = true
  timeout          = var.timeout_seconds

  values = [yamlencode({
    crds = { enabled = true }
  })]
}

resource "helm_release" "istio_base" {
  count            = var.ingress == "istio" ? 1 : 0
  name             = "istio-base"
  repository       = "https://istio-release.storage.googleapis.com/charts"
  chart            = "base"
  version          = var.versions.istio
  namespace        = "istio-system"
  create_namespace = true
  atomic           = true
  timeout          = var.timeout_seconds
}

resource "helm_release" "istiod" {
  count      = var.ingress == "istio" ? 1 : 0
  name       = "istiod"
  repository = "https://istio-release.storage.googleapis.com/charts"
  chart      = "istiod"
  version    = var.versions.istio
  namespace  = "istio-system"
  atomic     = true
  timeout    = var.timeout_seconds

  depends_on = [helm_release.istio_base]
}

resource "helm_release" "istio_ingress" {
  count      = var.ingress == "istio" ? 1 : 0
  name       = "istio-ingressgateway"
  repository = "https://istio-release.storage.googleapis.com/charts"
  chart      = "gateway"
  version    = var.versions.istio
  namespace  = "istio-system"
  atomic     = true
  timeout    = var.timeout_seconds

  values = [yamlencode({
    service = var.ingress_node_port == 0 ? { type = "LoadBalancer" } : {
      type  = "NodePort"
      ports = [{ name = "http2", port = 80, targetPort = 80, nodePort = var.ingress_node_port }]
    }
  })]

  depends_on = [helm_release.istiod]
}

resource "helm_release" "knative_operator" {
  name             = "knative-operator"
  repository       = "https://knative.github.io/operator"
  chart            = "knative-operator"
  version          = var.versions.knative_operator
  namespace        = "knative-operator"
  create_namespace = true
  atomic           = true
  timeout          = var.timeout_seconds
}

# The KnativeServing custom resource, shipped as a tiny local chart: a helm_release can install a custom
# resource whose CRD the operator created in the same apply, which the kubernetes provider cannot plan.
resource "helm_release" "knative_serving" {
  name             = "knative-serving"
  chart            = "${path.module}/charts/knative-serving"
  namespace        = "knative-serving"
  create_namespace = true
  atomic           = true
  timeout          = var.timeout_seconds

  values = [yamlencode({
    version         = var.versions.knative_serving
    ingress         = var.ingress
    ingressClass    = local.knative_ingress_class
    ingressNodePort = var.ingress_node_port
    # Knative's default skips kind.local, ko.local and dev.local; a list given here replaces it.
    registriesSkippingTagResolving = length(var.local_image_registries) == 0 ? [] : distinct(concat(["kind.local", "ko.local", "dev.local"], var.local_image_registries))
  })]

  depends_on = [helm_release.knative_operator, helm_release.istiod]
}

resource "helm_release" "kserve_crd" {
  name             = "kserve-crd"
  repository       = "oci://ghcr.io/kserve/charts"
  chart            = "kserve-crd"
  version          = var.versions.kserve
  namespace        = "kserve"
  create_namespace = true
  atomic           = true
  timeout          = var.timeout_seconds

  depends_on = [helm_release.cert_manager]
}

resource "helm_release" "kserve" {
  name       = "kserve"
  repository = "oci://ghcr.io/kserve/charts"
  chart      = "kserve-resources"
  version    = var.versions.kserve
  namespace  = "kserve"
  atomic     = true
  timeout    = var.timeout_seconds

  values = [yamlencode({
    kserve = {
      controller = {
        # Knative mode (called Serverless before v0.17) is what makes canaryTrafficPercent work; the chart
        # also sets it per service.
        deploymentMode = "Knative"
        gateway = {
          ingressGateway = {
            className = var.ingress == "istio" ? "istio" : "kourier"
          }
        }
      }
    }
  })]

  depends_on = [helm_release.kserve_crd, helm_release.knative_serving]
}

resource "helm_release" "kube_prometheus_stack" {
  name             = "kube-prometheus-stack"
  repository       = "https://prometheus-community.github.io/helm-charts"
  chart            = "kube-prometheus-stack"
  version          = var.versions.kube_prometheus_stack
  namespace        = "monitoring"
  create_namespace = true
  atomic           = true
  timeout          = var.timeout_seconds

  values = [yamlencode({
    prometheus = {
      prometheusSpec = {
        # Select monitors and rules from every release, not only this chart's own label.
        serviceMonitorSelectorNilUsesHelmValues = false
        podMonitorSelectorNilUsesHelmValues     = false
        ruleSelectorNilUsesHelmValues           = false
        retention                               = "7d"
      }
    }
    grafana = merge(
      {
        sidecar = {
          dashboards = { enabled = true, label = "grafana_dashboard", labelValue = "1", searchNamespace = "ALL" }
        }
      },
      var.grafana_admin_existing_secret == "" ? {} : {
        admin = { existingSecret = var.grafana_admin_existing_secret, userKey = "admin-user", passwordKey = "admin-password" }
      },
    )
  })]
}

# KFP ships kustomize manifests only. terraform_data (built in, no extra provider) runs kubectl; the
# input carries what the destroy step needs, because destroy provisioners may only read self.
resource "terraform_data" "kubeflow_pipelines" {
  count = var.install_kubeflow_pipelines ? 1 : 0

  input = {
    version    = var.versions.kubeflow_pipelines
    kubeconfig = var.kubeconfig_path
    context    = var.kube_context
  }

  provisioner "local-exec" {
    interpreter = ["/bin/bash", "-euo", "pipefail", "-c"]
    environment = {
      KUBECONFIG = self.input.kubeconfig
      CONTEXT    = self.input.context
      VERSION    = self.input.version
    }
    command = <<-EOT
      kubectl --context "$CONTEXT" apply -k "github.com/kubeflow/pipelines/manifests/kustomize/cluster-scoped-resources?ref=$VERSION"
      kubectl --context "$CONTEXT" wait --for condition=established --timeout=120s crd/applications.app.k8s.io
      kubectl --context "$CONTEXT" apply -k "github.com/kubeflow/pipelines/manifests/kustomize/env/platform-agnostic?ref=$VERSION"
      kubectl --context "$CONTEXT" -n kubeflow wait --for condition=available --timeout=900s deployment --all
    EOT
  }

  provisioner "local-exec" {
    when        = destroy
    interpreter = ["/bin/bash", "-euo", "pipefail", "-c"]
    environment = {
      KUBECONFIG = self.input.kubeconfig
      CONTEXT    = self.input.context
      VERSION    = self.input.version
    }
    command    = "kubectl --context \"$CONTEXT\" delete --ignore-not-found -k \"github.com/kubeflow/pipelines/manifests/kustomize/env/platform-agnostic?ref=$VERSION\""
    on_failure = continue
  }

  depends_on = [helm_release.kube_prometheus_stack]
}

# The Kubeflow Spark Operator for the data steps with engine=spark (titans/spark_app.py). Its webhook must
# be on and act in the namespaces the applications are created in: the driver's and executors' env, volumes
# and security contexts reach the pods only through it (kubeflow/spark-operator#1619); in chart 2.x both
# the controller and the webhook act in spark.jobNamespaces, which must exist first (KFP creates kubeflow).
# The drivers' ServiceAccount and Role are our chart's (spark.serviceAccount), not this chart's.
resource "helm_release" "spark_operator" {
  count            = length(var.spark_job_namespaces) > 0 ? 1 : 0
  name             = "spark-operator"
  repository       = "https://kubeflow.github.io/spark-operator"
  chart            = "spark-operator"
  version          = var.versions.spark_operator
  namespace        = "spark-operator"
  create_namespace = true
  atomic           = true
  timeout          = var.timeout_seconds

  values = [yamlencode({
    webhook = { enable = true, failurePolicy = "Fail" }
    controller = {
      uiService = { enable = false }
    }
    spark = {
      jobNamespaces  = var.spark_job_namespaces
      serviceAccount = { create = false }
      rbac           = { create = false }
    }
  })]

  depends_on = [terraform_data.kubeflow_pipelines, helm_release.cert_manager]
}
