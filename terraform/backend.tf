# Remote state, one state object per environment. The backend block is a
# partial configuration: the bucket, key and region come from a per-environment
# file at init time, so the three environments can never share a state file
# by accident:
#
#   cp prod.backend.hcl.example prod.backend.hcl   # fill in the state bucket
#   terraform init -reconfigure -backend-config=prod.backend.hcl
#
# The state holds secrets (database and Redis passwords, the worker's AWS
# secret key), so the state bucket must be private, versioned and encrypted,
# and readable only by the people who run terraform.
terraform {
  backend "s3" {}
}
