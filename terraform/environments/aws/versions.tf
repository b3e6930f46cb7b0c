# Exact pins for the AWS environment. 5.100.0 is the version mirrored on the CI image, so
# `terraform validate` runs offline in tests/infra.
terraform {
  required_version = ">= 1.6.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "5.100.0"
    }
  }
}
