# MongoDB Atlas: one project and one replica-set cluster per environment.

resource "mongodbatlas_project" "voice" {
  name   = local.name
  org_id = var.atlas_org_id
}

resource "mongodbatlas_advanced_cluster" "voice" {
  project_id   = mongodbatlas_project.voice.id
  name         = "voice-worker"
  cluster_type = "REPLICASET"

  backup_enabled = true
  pit_enabled    = var.atlas_pit_enabled

  replication_specs = [
    {
      region_configs = [
        {
          provider_name = "AWS"
          region_name   = var.atlas_region
          priority      = 7

          # Three electable members: a majority survives the loss of one, so
          # writes with w=majority keep working through a failover.
          electable_specs = {
            instance_size = "M10"
            node_count    = 3
          }

          auto_scaling = {
            compute_enabled            = true
            compute_scale_down_enabled = true
            compute_min_instance_size  = "M10"
            compute_max_instance_size  = var.atlas_max_instance_size
            disk_gb_enabled            = true
          }
        },
      ]
    },
  ]

  # Compute auto-scaling changes the instance size behind Terraform's back;
  # without this every plan would try to scale the cluster back to M10.
  lifecycle {
    ignore_changes = [
      replication_specs[0].region_configs[0].electable_specs.instance_size,
    ]
  }
}

resource "mongodbatlas_cloud_backup_schedule" "voice" {
  project_id   = mongodbatlas_project.voice.id
  cluster_name = mongodbatlas_advanced_cluster.voice.name

  # 03:00 UTC, outside US calling hours.
  reference_hour_of_day    = 3
  reference_minute_of_hour = 0

  policy_item_daily {
    frequency_interval = 1
    retention_unit     = "days"
    retention_value    = var.atlas_backup_retention_days
  }

  policy_item_weekly {
    frequency_interval = 7
    retention_unit     = "weeks"
    retention_value    = 4
  }
}

resource "random_password" "mongodb" {
  length = 32
  # Alphanumeric only: the password is embedded in MONGODB_URI.
  special = false
}

# What `worker migrate` (the release phase) needs beyond readWrite: to put
# the campaigns/contacts validators on (collMod), and to create collections
# and indexes. dbAdmin would also allow dropping the database.
resource "mongodbatlas_custom_db_role" "worker_migrate" {
  project_id = mongodbatlas_project.voice.id
  role_name  = "voice-worker-migrate"

  actions {
    action = "COLL_MOD"
    resources {
      database_name   = var.mongodb_database
      collection_name = ""
    }
  }
  actions {
    action = "CREATE_COLLECTION"
    resources {
      database_name   = var.mongodb_database
      collection_name = ""
    }
  }
  actions {
    action = "CREATE_INDEX"
    resources {
      database_name   = var.mongodb_database
      collection_name = ""
    }
  }
}

resource "mongodbatlas_database_user" "worker" {
  project_id         = mongodbatlas_project.voice.id
  username           = "voice-worker"
  password           = random_password.mongodb.result
  auth_database_name = "admin"

  # Least privilege: read and write documents and create indexes in the one
  # database, put its validators on (the custom role above), nothing in any
  # other database, no user or cluster admin.
  roles {
    role_name     = "readWrite"
    database_name = var.mongodb_database
  }
  roles {
    role_name     = mongodbatlas_custom_db_role.worker_migrate.role_name
    database_name = "admin"
  }

  scopes {
    name = mongodbatlas_advanced_cluster.voice.name
    type = "CLUSTER"
  }
}

resource "mongodbatlas_project_ip_access_list" "worker" {
  for_each = var.atlas_ip_access_list

  project_id = mongodbatlas_project.voice.id
  cidr_block = each.key
  comment    = each.value
}

locals {
  # connection_strings.standard_srv is "mongodb+srv://<host>" (provider 2.x:
  # an object, no [0]).
  mongodb_srv_host = trimprefix(mongodbatlas_advanced_cluster.voice.connection_strings.standard_srv, "mongodb+srv://")

  # The database is in the path, where every driver reads it (the
  # backend's Node driver would use "test" without it). authSource=admin:
  # Atlas keeps users in admin, and a path database would otherwise be
  # taken as the auth database.
  mongodb_uri = format(
    "mongodb+srv://%s:%s@%s/%s?authSource=admin&retryWrites=true&w=majority&appName=%s",
    urlencode(mongodbatlas_database_user.worker.username),
    urlencode(random_password.mongodb.result),
    local.mongodb_srv_host,
    var.mongodb_database,
    local.name,
  )
}
