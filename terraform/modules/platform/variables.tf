variable "ingress" {
  description = "Knative's networking layer: \"kourier\" (light, the kind default) or \"istio\" (needed for the chart's JWT auth)."
  type        = string
  default     = "kourier"

  validation {
    condition     = contains(["kourier", "istio"], var.ingress)
    error_message = "ingress must be \"kourier\" or \"istio\"."
  }
}

variable "ingress_node_port" {
  description = "NodePort of the ingress gateway's HTTP port (the kind module maps it to the host); 0 keeps a LoadBalancer Service."
  type        = number
  default     = 31080

  validation {
    condition     = var.ingress_node_port == 0 || (var.ingress_node_port >= 30000 && var.ingress_node_port <= 32767)
    error_message = "ingress_node_port must be 0 or within the NodePort range 30000-32767."
  }
}

variable "versions" {
  description = "Pinned versions of every platform component, stated here only (tests/infra/test_infra_platform_versions.py holds the SDKs in uv.lock to them). Change them together: KServe lists the cert-manager, Istio and Knative it is tested with, Knative sets the oldest Kubernetes it runs on (docs/adr/0003-terraform-layout-and-offline-validation.md)."
  type = object({
    cert_manager = optional(string, "v1.17.0")
    istio        = optional(string, "1.27.1")
    # Knative 1.20 is the newest whose minimum Kubernetes (1.32) the kind node image runs; 1.21 needs 1.33.
    knative_operator = optional(string, "v1.20.0")
    knative_serving  = optional(string, "1.20")
    # The server the kserve package in uv.lock (0.21) is written for; its charts are kserve-crd and kserve-resources.
    kserve = optional(string, "v0.21.0")
    # The backend the kfp SDK in uv.lock (2.17) compiles for: the compiled IR's platform spec uses `optional`
    # Secrets, which drivers before 2.15 reject.
    kubeflow_pipelines    = optional(string, "2.17.0")
    kube_prometheus_stack = optional(string, "66.3.1")
    # The Kubeflow Spark Operator's chart; the CRD schemas the chart's SparkApplications are validated against
    # offline (tests/infra/test_infra_spark.py) are this release's.
    spark_operator = optional(string, "2.5.2")
  })
  default = {}

  validation {
    condition = alltrue([
      for v in values(var.versions) : can(regex("^v?[0-9]+\\.[0-9]+(\\.[0-9]+)?$", v))
    ])
    error_message = "Every version must be an exact release (e.g. v1.16.2 or 1.16), never a range or \"latest\"."
  }
}

variable "install_kubeflow_pipelines" {
  description = "Install standalone Kubeflow Pipelines (kubectl apply -k of its release manifests: KFP publishes no Helm chart)."
  type        = bool
  default     = true
}

variable "kubeconfig_path" {
  description = "Kubeconfig used by the kubectl steps (KFP); the helm provider is configured by the caller."
  type        = string
}

variable "kube_context" {
  description = "Context in kubeconfig_path the kubectl steps use."
  type        = string
}

variable "grafana_admin_existing_secret" {
  description = "Existing Secret (in the monitoring namespace, keys admin-user and admin-password) for Grafana's admin login; empty lets the chart generate one."
  type        = string
  default     = ""

  validation {
    condition     = var.grafana_admin_existing_secret == "" || can(regex("^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", var.grafana_admin_existing_secret))
    error_message = "grafana_admin_existing_secret must be empty or a Secret name."
  }
}

variable "timeout_seconds" {
  description = "How long each Helm release may take to become ready."
  type        = number
  default     = 900

  validation {
    condition     = var.timeout_seconds >= 60 && var.timeout_seconds <= 3600
    error_message = "timeout_seconds must be between 60 and 3600."
  }
}

variable "local_image_registries" {
  description = "Registries of images loaded straight into the nodes (kind load docker-image): Knative must not resolve their tags at a registry that does not have them."
  type        = list(string)
  default     = []
}

variable "spark_job_namespaces" {
  description = "Namespaces the Spark Operator (and its mutating webhook) act in: where the data steps create SparkApplications (KFP's namespace, the chart's pipelineRunner.namespace). Empty installs no Spark Operator."
  type        = list(string)
  default     = ["kubeflow"]

  validation {
    condition     = alltrue([for ns in var.spark_job_namespaces : can(regex("^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", ns))])
    error_message = "Every Spark job namespace must be a namespace name (the operator's \"all namespaces\" is not offered)."
  }
}
