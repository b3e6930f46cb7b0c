variable "cluster_name" {
  description = "Name of the kind cluster (kubectl context kind-<name>)."
  type        = string
  default     = "titans"
}

variable "ingress" {
  description = "Knative ingress: kourier (default, lighter) or istio (needed for the chart's JWT auth)."
  type        = string
  default     = "kourier"

  validation {
    condition     = contains(["kourier", "istio"], var.ingress)
    error_message = "ingress must be \"kourier\" or \"istio\"."
  }
}

variable "deploy_app" {
  description = "Also install the Titans chart from Terraform; `make deploy` (helm upgrade --install) does it otherwise."
  type        = bool
  default     = false
}

variable "models" {
  description = "Per-model versions and canary shares passed to the chart when deploy_app is true (see modules/chart-values)."
  type = map(object({
    version                = string
    canary_traffic_percent = optional(number)
  }))
  default = {
    category = { version = "1" }
    amount   = { version = "1" }
    anomaly  = { version = "1" }
    cashflow = { version = "1" }
  }
}
