variable "name" {
  description = "Prefix of every resource name (e.g. titans-prod)."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{2,22}[a-z0-9]$", var.name))
    error_message = "name must be 4-24 lower-case letters, digits or dashes, starting with a letter (it prefixes S3 bucket and RDS names)."
  }
}

variable "vpc_id" {
  description = "Existing VPC to run in (networking is owned by the platform team, not this module)."
  type        = string

  validation {
    condition     = can(regex("^vpc-[0-9a-f]{8,17}$", var.vpc_id))
    error_message = "vpc_id must look like vpc-0123456789abcdef0."
  }
}

variable "private_subnet_ids" {
  description = "Private subnets in at least two availability zones for EKS nodes and RDS."
  type        = list(string)

  validation {
    condition     = length(var.private_subnet_ids) >= 2 && alltrue([for s in var.private_subnet_ids : can(regex("^subnet-[0-9a-f]{8,17}$", s))])
    error_message = "Give at least two subnet ids (subnet-...) in different availability zones."
  }
}

variable "kubernetes_version" {
  description = "EKS Kubernetes minor version; keep it equal to the version the manifests are validated against (tests/infra)."
  type        = string
  default     = "1.32"

  validation {
    condition     = can(regex("^1\\.(29|3[0-9])$", var.kubernetes_version))
    error_message = "kubernetes_version must be a supported minor such as 1.32."
  }
}

variable "public_access_cidrs" {
  description = "CIDRs allowed to reach the EKS API over the internet; empty keeps the endpoint private."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for c in var.public_access_cidrs : can(cidrhost(c, 0)) && c != "0.0.0.0/0"])
    error_message = "public_access_cidrs must be valid CIDRs and never 0.0.0.0/0."
  }
}

variable "node_instance_types" {
  description = "Instance types of the managed node group."
  type        = list(string)
  default     = ["m6i.xlarge"]

  validation {
    condition     = length(var.node_instance_types) > 0
    error_message = "Give at least one instance type."
  }
}

variable "node_count" {
  description = "Desired, minimum and maximum node counts."
  type = object({
    desired = number
    min     = number
    max     = number
  })
  default = { desired = 3, min = 2, max = 6 }

  validation {
    condition     = var.node_count.min >= 1 && var.node_count.min <= var.node_count.desired && var.node_count.desired <= var.node_count.max
    error_message = "node_count needs 1 <= min <= desired <= max."
  }
}

variable "db_instance_class" {
  description = "RDS instance class of the PostgreSQL backing MLflow and the Feast registry."
  type        = string
  default     = "db.t4g.medium"

  validation {
    condition     = startswith(var.db_instance_class, "db.")
    error_message = "db_instance_class must be an RDS class such as db.t4g.medium."
  }
}

variable "db_engine_version" {
  description = "PostgreSQL major.minor version, pinned."
  type        = string
  default     = "16.6"

  validation {
    condition     = can(regex("^1[4-7]\\.[0-9]+$", var.db_engine_version))
    error_message = "db_engine_version must be an exact PostgreSQL 14-17 version such as 16.6."
  }
}

variable "db_allocated_storage_gb" {
  description = "Initial RDS storage in GiB (autoscaling up to 5x)."
  type        = number
  default     = 50

  validation {
    condition     = var.db_allocated_storage_gb >= 20 && var.db_allocated_storage_gb <= 1000
    error_message = "db_allocated_storage_gb must be between 20 and 1000."
  }
}

variable "db_multi_az" {
  description = "Run RDS in two availability zones (production: true)."
  type        = bool
  default     = true
}

variable "namespace" {
  description = "Kubernetes namespace of the Titans workloads (IRSA trust is scoped to its ServiceAccounts)."
  type        = string
  default     = "titans"
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
