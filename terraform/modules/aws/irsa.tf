# One IAM role per workload ServiceAccount, each limited to its own prefix of the artifact bucket:
#   titans-inference  reads models/
#   titans-mlflow     reads and writes mlflow/ (the server proxies artifacts for every client)
#   titans-feast      reads feast/ (the registry; the pipeline writes it)
#   pipeline-runner   (kubeflow) writes models/, mlflow/ and feast/
locals {
  oidc_host = replace(aws_iam_openid_connect_provider.eks.url, "https://", "")

  workloads = {
    inference = { namespace = var.namespace, service_account = "titans-inference", read = ["models/"], write = [] }
    mlflow    = { namespace = var.namespace, service_account = "titans-mlflow", read = ["mlflow/"], write = ["mlflow/"] }
    feast     = { namespace = var.namespace, service_account = "titans-feast", read = ["feast/"], write = [] }
    pipeline  = { namespace = "kubeflow", service_account = "pipeline-runner", read = ["models/", "mlflow/", "feast/"], write = ["models/", "mlflow/", "feast/"] }
  }
}

data "aws_iam_policy_document" "irsa_assume" {
  for_each = local.workloads

  statement {
    actions = ["sts:AssumeRoleWithWebIdentity"]
    principals {
      type        = "Federated"
      identifiers = [aws_iam_openid_connect_provider.eks.arn]
    }
    condition {
      test     = "StringEquals"
      variable = "${local.oidc_host}:sub"
      values   = ["system:serviceaccount:${each.value.namespace}:${each.value.service_account}"]
    }
    condition {
      test     = "StringEquals"
      variable = "${local.oidc_host}:aud"
      values   = ["sts.amazonaws.com"]
    }
  }
}

data "aws_iam_policy_document" "irsa_access" {
  for_each = local.workloads

  statement {
    sid       = "ListOwnPrefixes"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.artifacts.arn]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = [for p in each.value.read : "${p}*"]
    }
  }

  statement {
    sid       = "ReadOwnPrefixes"
    actions   = ["s3:GetObject", "s3:GetObjectVersion"]
    resources = [for p in each.value.read : "${aws_s3_bucket.artifacts.arn}/${p}*"]
  }

  dynamic "statement" {
    for_each = length(each.value.write) > 0 ? [1] : []
    content {
      sid       = "WriteOwnPrefixes"
      actions   = ["s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"]
      resources = [for p in each.value.write : "${aws_s3_bucket.artifacts.arn}/${p}*"]
    }
  }

  statement {
    sid       = "UseArtifactKey"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [aws_kms_key.this.arn]
  }
}

resource "aws_iam_role" "irsa" {
  for_each           = local.workloads
  name               = "${var.name}-${each.key}"
  assume_role_policy = data.aws_iam_policy_document.irsa_assume[each.key].json
  tags               = local.tags
}

resource "aws_iam_role_policy" "irsa" {
  for_each = local.workloads
  name     = "artifacts"
  role     = aws_iam_role.irsa[each.key].id
  policy   = data.aws_iam_policy_document.irsa_access[each.key].json
}
