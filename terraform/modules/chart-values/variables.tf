variable "image_tag" {
  description = "Tag of the Titans images (serving and pipeline); the chart's appVersion by default."
  type        = string
  default     = "0.1.0"

  validation {
    condition     = can(regex("^[0-9]+\\.[0-9]+\\.[0-9]+([-+][0-9A-Za-z.-]+)?$", var.image_tag))
    error_message = "image_tag must be a semantic version such as 0.1.0 (no \"latest\": deployments must be reproducible)."
  }
}

variable "image_digests" {
  description = "Optional sha256 digests per image (serving, pipeline, redis); a digest wins over the tag."
  type        = map(string)
  default     = {}

  validation {
    condition = alltrue([
      for name, digest in var.image_digests :
      contains(["serving", "pipeline", "redis"], name) && can(regex("^sha256:[a-f0-9]{64}$", digest))
    ])
    error_message = "image_digests keys must be serving, pipeline or redis, and values sha256:<64 hex>."
  }
}

variable "models" {
  description = "Per-model rollout settings, keyed by task (the tasks titans.tasks declares: category, amount, anomaly, cashflow, recommend). canary_traffic_percent (0-100) is the newest revision's share; null sends it all traffic."
  type = map(object({
    version                = string
    canary_traffic_percent = optional(number)
    min_replicas           = optional(number, 1)
    max_replicas           = optional(number, 3)
    enabled                = optional(bool, true)
  }))
  default = {
    category  = { version = "1" }
    amount    = { version = "1" }
    anomaly   = { version = "1" }
    cashflow  = { version = "1" }
    recommend = { version = "1" }
  }

  validation {
    condition     = length(setsubtract(keys(var.models), ["category", "amount", "anomaly", "cashflow", "recommend"])) == 0
    error_message = "models keys must be among category, amount, anomaly, cashflow, recommend (the tasks of titans.tasks)."
  }

  validation {
    condition = alltrue([
      for m in values(var.models) :
      m.canary_traffic_percent == null ? true : (m.canary_traffic_percent >= 0 && m.canary_traffic_percent <= 100 && floor(m.canary_traffic_percent) == m.canary_traffic_percent)
    ])
    error_message = "canary_traffic_percent must be a whole number from 0 to 100 (or null)."
  }

  validation {
    condition     = alltrue([for m in values(var.models) : m.min_replicas >= 0 && m.max_replicas >= 1 && m.min_replicas <= m.max_replicas])
    error_message = "Each model needs 0 <= min_replicas <= max_replicas and max_replicas >= 1."
  }

  validation {
    condition     = alltrue([for m in values(var.models) : can(regex("^[A-Za-z0-9][A-Za-z0-9._-]*$", m.version))])
    error_message = "Model versions must be non-empty and made of letters, digits, dots, dashes and underscores."
  }
}

variable "object_store" {
  description = "S3-compatible store for models, MLflow artifacts and the Feast registry. existing_secret names a Secret with AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (empty with IRSA)."
  type = object({
    endpoint        = optional(string, "")
    region          = string
    existing_secret = optional(string, "")
    models_prefix   = optional(string, "s3://titans-models")
    mlflow_prefix   = optional(string, "s3://titans-mlflow/artifacts")
    feast_registry  = optional(string, "s3://titans-feast/registry.db")
  })
  default = { region = "us-east-1" }

  validation {
    condition     = var.object_store.endpoint == "" || can(regex("^https?://[^/\\s]+$", var.object_store.endpoint))
    error_message = "object_store.endpoint must be empty (AWS S3) or http(s)://host[:port]."
  }
}

variable "postgres_secrets" {
  description = "Existing Secrets with PostgreSQL URLs: mlflow (key \"uri\") and feast_registry (key \"registry-url\"). Null keeps SQLite / the file registry."
  type = object({
    mlflow         = optional(string)
    feast_registry = optional(string)
  })
  default = {}
}

variable "redis_password_secret" {
  description = "Existing Secret holding the in-chart Redis password (key redis-password); Redis never runs without one."
  type        = string
  default     = "titans-redis"
  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", var.redis_password_secret))
    error_message = "redis_password_secret must name a Secret (the in-chart Redis always has a password)."
  }
}

variable "service_account_role_arns" {
  description = "IRSA role ARNs per workload (inference, feast, mlflow, pipeline), the AWS module's service_account_role_arns as it is. pipeline is KFP's pipeline-runner's, which the chart does not own: it comes back as pipeline_runner_annotations."
  type        = map(string)
  default     = {}

  validation {
    condition = alltrue([
      for name, arn in var.service_account_role_arns :
      contains(["inference", "feast", "mlflow", "pipeline"], name) && can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:role/.+$", arn))
    ])
    error_message = "service_account_role_arns keys must be inference, feast, mlflow or pipeline, and values IAM role ARNs."
  }
}

variable "jwt" {
  description = "Istio JWT settings in front of inference (needs the istio ingress); null leaves inference unauthenticated."
  type = object({
    issuer    = string
    jwks_uri  = string
    audiences = optional(list(string), [])
  })
  default = null

  validation {
    condition     = var.jwt == null ? true : (length(var.jwt.issuer) > 0 && startswith(var.jwt.jwks_uri, "https://"))
    error_message = "jwt.issuer must be set and jwt.jwks_uri must be an https:// URL."
  }
}

variable "pipeline_namespace" {
  description = "Namespace where Kubeflow Pipelines runs pipeline pods (its runner gets get/patch on the InferenceServices)."
  type        = string
  default     = "kubeflow"
}

variable "inference_from_namespaces" {
  description = "Namespaces allowed to reach the model servers (Knative activator and the ingress gateway)."
  type        = list(string)
  default     = ["knative-serving"]

  validation {
    condition     = length(var.inference_from_namespaces) > 0
    error_message = "At least one namespace must be allowed to reach the model servers, or nothing can call them."
  }
}
