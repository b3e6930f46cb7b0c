variable "namespace" {
  description = "Namespace of the release; docs/contracts.md names it \"titans\"."
  type        = string
  default     = "titans"

  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", var.namespace))
    error_message = "namespace must be a DNS label."
  }
}

variable "release_name" {
  description = "Helm release name."
  type        = string
  default     = "titans"

  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9]{0,51}[a-z0-9])?$", var.release_name))
    error_message = "release_name must be a DNS label of at most 53 characters (Helm's limit)."
  }
}

variable "chart_path" {
  description = "Path of the Titans chart; defaults to the one in this repository."
  type        = string
  default     = null
}

variable "values" {
  description = "Chart values (e.g. module.chart_values.values); applied before extra_values_files."
  type        = any
  default     = {}
}

variable "extra_values_files" {
  description = "Further values files, applied last (e.g. the chart's ci/kind-values.yaml)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for f in var.extra_values_files : can(regex("\\.ya?ml$", f))])
    error_message = "extra_values_files must be YAML files."
  }
}

variable "timeout_seconds" {
  description = "How long the release may take to become ready (model servers pull their model first)."
  type        = number
  default     = 900

  validation {
    condition     = var.timeout_seconds >= 60 && var.timeout_seconds <= 3600
    error_message = "timeout_seconds must be between 60 and 3600."
  }
}
