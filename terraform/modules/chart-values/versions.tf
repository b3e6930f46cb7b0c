# No providers: this module is pure logic (inputs -> chart values), so `terraform test` runs it offline.
terraform {
  required_version = ">= 1.6.0"
}
