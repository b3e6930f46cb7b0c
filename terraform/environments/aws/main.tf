# The AWS environment: EKS, S3, RDS and IRSA roles. Install the platform and the app afterwards with the
# same modules as kind (modules/platform, modules/app) against this cluster's kubeconfig; they are kept out
# of this root so the AWS layer can be planned and reviewed without cluster credentials.

provider "aws" {
  region = var.region

  default_tags {
    tags = {
      environment = var.environment
      project     = "titans-finance"
    }
  }
}

module "aws" {
  source              = "../../modules/aws"
  name                = "titans-${var.environment}"
  vpc_id              = var.vpc_id
  private_subnet_ids  = var.private_subnet_ids
  public_access_cidrs = var.public_access_cidrs
  db_multi_az         = var.environment == "prod"
}
