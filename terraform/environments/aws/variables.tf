variable "region" {
  description = "AWS region of the environment."
  type        = string
  default     = "eu-west-1"

  validation {
    condition     = can(regex("^[a-z]{2}(-gov)?-[a-z]+-[0-9]$", var.region))
    error_message = "region must be an AWS region such as eu-west-1."
  }
}

variable "environment" {
  description = "Environment name, part of every resource name (titans-<environment>)."
  type        = string
  default     = "prod"

  validation {
    condition     = contains(["dev", "staging", "prod"], var.environment)
    error_message = "environment must be dev, staging or prod."
  }
}

variable "vpc_id" {
  description = "Existing VPC id."
  type        = string
}

variable "private_subnet_ids" {
  description = "Private subnets (two or more availability zones)."
  type        = list(string)
}

variable "public_access_cidrs" {
  description = "CIDRs allowed to reach the EKS API publicly; empty keeps it private."
  type        = list(string)
  default     = []
}
