variable "cluster_name" {
  description = "Name of the kind cluster; kubectl's context becomes kind-<name>."
  type        = string
  default     = "titans"

  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9]{0,30}[a-z0-9])?$", var.cluster_name))
    error_message = "cluster_name must be a DNS label of at most 32 characters (kind names Docker containers after it)."
  }
}

variable "node_image" {
  description = "kindest/node image, pinned by tag (and digest when you have it): it fixes the Kubernetes version the manifests are validated against (1.32)."
  type        = string
  default     = "kindest/node:v1.32.2"

  validation {
    condition     = can(regex("^kindest/node:v1\\.(29|3[0-9])\\.[0-9]+(@sha256:[a-f0-9]{64})?$", var.node_image))
    error_message = "node_image must be kindest/node:v1.29.x or newer, optionally with @sha256:<digest>."
  }
}

variable "worker_count" {
  description = "Worker nodes besides the control plane. Knative, KServe, KFP and Prometheus need about 8 GiB in all."
  type        = number
  default     = 1

  validation {
    condition     = var.worker_count >= 0 && var.worker_count <= 4 && floor(var.worker_count) == var.worker_count
    error_message = "worker_count must be a whole number from 0 to 4."
  }
}

variable "ingress_host_port" {
  description = "Host port mapped to the ingress gateway's NodePort 31080 on the control plane (0 disables the mapping)."
  type        = number
  default     = 8080

  validation {
    condition     = var.ingress_host_port == 0 || (var.ingress_host_port >= 1024 && var.ingress_host_port <= 65535)
    error_message = "ingress_host_port must be 0 or an unprivileged port (1024-65535)."
  }
}
