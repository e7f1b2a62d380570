# Provider and Terraform versions are pinned to a minor series ("~>") so a
# `terraform init` months from now resolves the same schemas this config was
# written against. Commit the generated .terraform.lock.hcl after the first
# init: it pins the exact builds.
terraform {
  required_version = "~> 1.10"

  required_providers {
    heroku = {
      source  = "heroku/heroku"
      version = "~> 5.2"
    }
    aws = {
      source  = "hashicorp/aws"
      version = "~> 6.0"
    }
    # 2.x: mongodbatlas_advanced_cluster takes replication_specs as a list of
    # objects (attributes), not nested blocks as in 1.x.
    mongodbatlas = {
      source  = "mongodb/mongodbatlas"
      version = "~> 2.0"
    }
    rediscloud = {
      source  = "RedisLabs/rediscloud"
      version = "~> 2.4"
    }
    random = {
      source  = "hashicorp/random"
      version = "~> 3.6"
    }
  }
}
