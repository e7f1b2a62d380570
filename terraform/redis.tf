# Redis Cloud (Pro): the asynq queue. Pro, not Essentials, because only Pro
# backs up more often than daily.

data "rediscloud_payment_method" "card" {
  card_type         = var.redis_payment_card_type
  last_four_numbers = var.redis_payment_card_last_four
}

resource "rediscloud_subscription" "voice" {
  name              = local.name
  payment_method    = "credit-card"
  payment_method_id = data.rediscloud_payment_method.card.id
  memory_storage    = "ram"

  cloud_provider {
    provider = "AWS"

    region {
      region                       = var.redis_region
      multiple_availability_zones  = var.redis_multi_az
      networking_deployment_cidr   = var.redis_deployment_cidr
      preferred_availability_zones = var.redis_preferred_availability_zones
    }
  }

  # Only read when the subscription is created; sizes the cluster for the
  # database below.
  creation_plan {
    dataset_size_in_gb           = var.redis_dataset_size_in_gb
    quantity                     = 1
    replication                  = true
    throughput_measurement_by    = "operations-per-second"
    throughput_measurement_value = var.redis_throughput_ops
  }
}

resource "random_password" "redis" {
  length = 32
  # Alphanumeric only: the password is embedded in REDIS_URL.
  special = false
}

resource "rediscloud_subscription_database" "queue" {
  subscription_id = rediscloud_subscription.voice.id
  name            = "voice-worker-queue"

  dataset_size_in_gb           = var.redis_dataset_size_in_gb
  throughput_measurement_by    = "operations-per-second"
  throughput_measurement_value = var.redis_throughput_ops

  # The queue is the only copy of a pending job: an evicting policy would drop
  # jobs silently when memory fills; noeviction makes the enqueue fail loudly.
  data_eviction = "noeviction"

  # AOF fsync every second: a Redis restart loses at most one second of
  # writes instead of everything since the last snapshot.
  data_persistence = "aof-every-1-second"

  # A replica with automatic failover.
  replication = true

  password   = random_password.redis.result
  enable_tls = var.redis_enable_tls
  source_ips = var.redis_source_ips

  remote_backup {
    interval     = "every-6-hours"
    storage_type = "aws-s3"
    storage_path = var.redis_backup_storage_path
  }

  # Redis Cloud emails the account when the dataset passes 80% of its limit,
  # well before noeviction starts refusing writes.
  alert {
    name  = "dataset-size"
    value = 80
  }
}

locals {
  # public_endpoint is "host:port".
  redis_url = format(
    "%s://default:%s@%s",
    var.redis_enable_tls ? "rediss" : "redis",
    random_password.redis.result,
    rediscloud_subscription_database.queue.public_endpoint,
  )
}
