# lambda-meter with Terraform: the layer for both architectures, an example function that uses
# it, and the fleet dashboard of layer/dashboard.json. Build the zips first with `make layer`.
#
#   terraform init && terraform apply
#
# (This example is not validated in CI: Terraform is not in the package registries the
# project's machines reach. The SAM template next to it is validated with cfn-lint.)

terraform {
  required_providers {
    aws     = { source = "hashicorp/aws", version = ">= 6.0" }
    archive = { source = "hashicorp/archive", version = ">= 2.4" }
  }
}

variable "lambda_meter_version" {
  type    = string
  default = "0.1.0"
}

variable "function_role_arn" {
  type        = string
  description = "Execution role of the example function (needs AWSLambdaBasicExecutionRole)."
}

data "aws_region" "current" {}

locals {
  # The one runtime list, shared with layer/publish and layer/template.yaml.
  # Each line: a runtime's identifier, then the date of its deprecation.
  runtimes = [for l in split("\n", file("${path.module}/../runtimes")) : split(" ", trimspace(l))[0]
  if trimspace(l) != "" && !startswith(trimspace(l), "#")]
  layer_zip = {
    x86_64 = "${path.module}/../../target/layer/lambda-meter-${var.lambda_meter_version}-x86_64.zip"
    arm64  = "${path.module}/../../target/layer/lambda-meter-${var.lambda_meter_version}-arm64.zip"
  }
}

resource "aws_lambda_layer_version" "lambda_meter" {
  for_each                 = local.layer_zip
  layer_name               = "lambda-meter-${each.key}"
  filename                 = each.value
  source_code_hash         = filebase64sha256(each.value)
  compatible_architectures = [each.key]
  compatible_runtimes      = local.runtimes
  license_info             = "Apache-2.0"
  description              = "lambda-meter ${var.lambda_meter_version} (${each.key}): AWS_LAMBDA_EXEC_WRAPPER=/opt/lambda-meter (provided.*: LD_PRELOAD=/opt/lib/liblambda_meter.so)"
  # A new version does not delete the old one, which functions may still use (SAM's Retain).
  skip_destroy = true
}

data "archive_file" "example" {
  type        = "zip"
  source_file = "${path.module}/../../tests/functions/python/handler.py"
  output_path = "${path.module}/example.zip"
}

resource "aws_lambda_function" "example" {
  function_name    = "lambda-meter-example"
  role             = var.function_role_arn
  runtime          = "python3.12"
  handler          = "handler.dispatch"
  architectures    = ["arm64"]
  filename         = data.archive_file.example.output_path
  source_code_hash = data.archive_file.example.output_base64sha256
  layers           = [aws_lambda_layer_version.lambda_meter["arm64"].arn]
  environment {
    variables = {
      AWS_LAMBDA_EXEC_WRAPPER = "/opt/lambda-meter"
    }
  }
}

resource "aws_cloudwatch_dashboard" "lambda_meter" {
  dashboard_name = "lambda-meter"
  # Every metered function of the region (SEARCH expressions), default settings: for others,
  # write the body with `make dashboard` and use it here.
  dashboard_body = templatefile("${path.module}/../dashboard.json", {
    Region = data.aws_region.current.region
  })
}

output "layer_arns" {
  value = { for arch, layer in aws_lambda_layer_version.lambda_meter : arch => layer.arn }
}
