# ---------------------------------------------------------------------------
# Environment
# ---------------------------------------------------------------------------

variable "environment" {
  description = "Deployment environment; becomes the worker's APP_ENV."
  type        = string

  validation {
    condition     = contains(["development", "staging", "production"], var.environment)
    error_message = "environment must be one of development, staging, production."
  }
}

# ---------------------------------------------------------------------------
# Heroku
# ---------------------------------------------------------------------------

variable "heroku_app_name" {
  description = "Name of the Heroku app that runs the worker (globally unique on Heroku)."
  type        = string
}

variable "heroku_region" {
  description = "Heroku Common Runtime region (us or eu). Keep it near aws_region, atlas_region and redis_region."
  type        = string
  default     = "us"
}

variable "heroku_team" {
  description = "Heroku team that owns the app; null creates it in the personal account of HEROKU_API_KEY."
  type        = string
  default     = null
}

variable "manage_formation" {
  description = "Manage the worker formation. Heroku rejects a formation for an app with no release yet, so the very first apply sets this to false; see docs/DEPLOY.md."
  type        = bool
  default     = true
}

variable "worker_quantity" {
  description = "Number of worker dynos."
  type        = number
  default     = 1

  validation {
    condition     = var.worker_quantity >= 0 && var.worker_quantity == floor(var.worker_quantity)
    error_message = "worker_quantity must be a whole number >= 0."
  }
}

variable "worker_size" {
  description = "Dyno size of the worker. The memory budget in the design (512 MB; warn at 450, critical at 490) is for standard-1x."
  type        = string
  default     = "standard-1x"
}

# ---------------------------------------------------------------------------
# Worker settings (non-secret config vars)
# ---------------------------------------------------------------------------

variable "worker_concurrency" {
  description = "WORKER_CONCURRENCY: concurrent calls per dyno. null leaves the variable unset so the worker's built-in default applies; set it from `make bench`, not from a guess."
  type        = number
  default     = null
}

variable "gomaxprocs" {
  description = "GOMAXPROCS: the Go scheduler's processors. A standard dyno gets one CPU share while Go sees every CPU of the host, and each extra processor adds scheduler wake-ups to the calls' per-frame work: at 1, a call-minute cost 963 ms of CPU at 20 calls against 1,104 ms at 2 (make bench, docs/DEPLOY.md). Raise it with a bigger dyno (performance dynos have dedicated CPUs); null leaves Go's default."
  type        = number
  default     = 1
}

variable "shutdown_timeout" {
  description = "SHUTDOWN_TIMEOUT (Go duration). Heroku sends SIGKILL 30 s after SIGTERM, so keep this below 30s."
  type        = string
  default     = "25s"
}

variable "log_level" {
  description = "LOG_LEVEL: debug, info, warn or error."
  type        = string
  default     = "info"

  validation {
    condition     = contains(["debug", "info", "warn", "error"], var.log_level)
    error_message = "log_level must be one of debug, info, warn, error."
  }
}

variable "livekit_url" {
  description = "LIVEKIT_URL: the LiveKit server (wss://...)."
  type        = string
}

variable "livekit_sip_trunk_id" {
  description = "LIVEKIT_SIP_TRUNK_ID: outbound SIP trunk used to place calls."
  type        = string
}

variable "openai_realtime_model" {
  description = "OPENAI_REALTIME_MODEL: model for the live voice agent; null keeps the worker's default."
  type        = string
  default     = null
}

variable "openai_analysis_model" {
  description = "OPENAI_ANALYSIS_MODEL: model for post-call analysis; null keeps the worker's default."
  type        = string
  default     = null
}

variable "logtail_ingest_url" {
  description = "LOGTAIL_INGEST_URL: LogTail (Better Stack) HTTP ingest endpoint of the source."
  type        = string
}

# ---------------------------------------------------------------------------
# Secrets. Marked sensitive so plans and outputs redact them. They have no
# default and are never written to a *.tfvars file: pass them as
# TF_VAR_<name> environment variables (from a password manager or CI secret).
# ---------------------------------------------------------------------------

variable "livekit_api_key" {
  description = "LIVEKIT_API_KEY."
  type        = string
  sensitive   = true
}

variable "livekit_api_secret" {
  description = "LIVEKIT_API_SECRET."
  type        = string
  sensitive   = true
}

variable "openai_api_key" {
  description = "OPENAI_API_KEY."
  type        = string
  sensitive   = true
}

variable "logtail_source_token" {
  description = "LOGTAIL_SOURCE_TOKEN."
  type        = string
  sensitive   = true
}

variable "logtail_heroku_drain_url" {
  description = "The drain URL (with its token) of the environment's Better Stack source of platform Heroku, as the source's page shows it: Heroku's own events (R14, crashes, releases) reach Better Stack only through it. See docs/DEPLOY.md."
  type        = string
  sensitive   = true

  validation {
    condition     = startswith(var.logtail_heroku_drain_url, "https://")
    error_message = "logtail_heroku_drain_url must be an https:// URL (the drain carries the app's log stream)."
  }
}

# ---------------------------------------------------------------------------
# AWS S3 (recordings)
# ---------------------------------------------------------------------------

variable "aws_region" {
  description = "AWS region of the recordings bucket; becomes the worker's AWS_REGION."
  type        = string
}

variable "s3_bucket_name" {
  description = "Name of the recordings bucket (globally unique)."
  type        = string
}

variable "s3_force_destroy" {
  description = "Allow terraform destroy to delete a bucket that still holds recordings. Keep false outside throwaway environments."
  type        = bool
  default     = false
}

# ---------------------------------------------------------------------------
# MongoDB Atlas
# ---------------------------------------------------------------------------

variable "atlas_org_id" {
  description = "Atlas organization that owns the project."
  type        = string
}

variable "atlas_region" {
  description = "Atlas region name for the cluster, in Atlas spelling (e.g. US_EAST_1)."
  type        = string
}

variable "atlas_max_instance_size" {
  description = "Upper bound for compute auto-scaling. The cluster starts at, and never scales below, M10."
  type        = string
  default     = "M30"
}

variable "atlas_ip_access_list" {
  description = "CIDR blocks allowed to reach the cluster, mapped to a comment. Common Runtime dynos have no fixed egress IP: see docs/DEPLOY.md before using 0.0.0.0/0."
  type        = map(string)
}

variable "atlas_backup_retention_days" {
  description = "How many daily snapshots Atlas keeps."
  type        = number
  default     = 7
}

variable "atlas_pit_enabled" {
  description = "Continuous cloud backup (point-in-time restore). Costs extra; recommended in production."
  type        = bool
  default     = false
}

variable "mongodb_database" {
  description = "The one database the worker uses, named in MONGODB_URI's path (where every driver, the backend's too, reads it); its user gets readWrite on it and nothing else."
  type        = string
  default     = "docshield"
}

# ---------------------------------------------------------------------------
# Redis Cloud
# ---------------------------------------------------------------------------

variable "redis_payment_card_type" {
  description = "Card type of the Redis Cloud payment method (e.g. Visa), used to look it up."
  type        = string
}

variable "redis_payment_card_last_four" {
  description = "Last four digits of the Redis Cloud payment card, used to look it up."
  type        = string
}

variable "redis_region" {
  description = "AWS region (AWS spelling, e.g. us-east-1) of the Redis Cloud subscription."
  type        = string
}

variable "redis_deployment_cidr" {
  description = "A /24 CIDR for the Redis Cloud deployment network; must not overlap any network peered with it later."
  type        = string
}

variable "redis_multi_az" {
  description = "Spread the primary and replica over availability zones, so failover survives the loss of a zone."
  type        = bool
  default     = true
}

variable "redis_preferred_availability_zones" {
  description = "AWS zone IDs (e.g. use1-az1) for the subscription; three when redis_multi_az is true, [] to let Redis Cloud choose."
  type        = list(string)
  default     = []
}

variable "redis_dataset_size_in_gb" {
  description = "Dataset size of the queue database. 0.1 GB = the 100 MB of the operations doc."
  type        = number
  default     = 0.1
}

variable "redis_throughput_ops" {
  description = "Provisioned Redis throughput in operations per second."
  type        = number
  default     = 1000
}

variable "redis_enable_tls" {
  description = "Require TLS on the Redis Cloud endpoint (REDIS_URL becomes rediss://). See docs/DEPLOY.md about the Redis Cloud CA."
  type        = bool
  default     = true
}

variable "redis_source_ips" {
  description = "CIDRs allowed to connect to Redis. Common Runtime dynos have no fixed egress IP."
  type        = list(string)
  default     = ["0.0.0.0/0"]
}

variable "redis_backup_storage_path" {
  description = "Where Redis Cloud writes its 6-hourly backups, e.g. s3://docshield-redis-backups-prod/voice-worker. The bucket must grant Redis Cloud write access (see docs/DEPLOY.md)."
  type        = string
}
