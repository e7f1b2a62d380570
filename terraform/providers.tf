# Credentials never live in this directory. Every provider reads them from the
# environment of whoever runs terraform (see docs/DEPLOY.md):
#   heroku       HEROKU_API_KEY
#   aws          AWS_PROFILE, or AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY
#   mongodbatlas MONGODB_ATLAS_PUBLIC_API_KEY + MONGODB_ATLAS_PRIVATE_API_KEY
#   rediscloud   REDISCLOUD_ACCESS_KEY + REDISCLOUD_SECRET_KEY

provider "heroku" {}

provider "aws" {
  region = var.aws_region

  default_tags {
    tags = local.tags
  }
}

provider "mongodbatlas" {}

provider "rediscloud" {}

provider "random" {}

locals {
  # One name stem per environment keeps the three environments' resources
  # apart in every console (Heroku, AWS, Atlas, Redis Cloud).
  name = "docshield-voice-${var.environment}"

  tags = {
    app         = "docshield-voice-worker"
    environment = var.environment
    managed_by  = "terraform"
  }
}
