# The Heroku app that runs the worker container, its config vars (wired from
# the other resources), its worker formation and its log drain.

resource "heroku_app" "worker" {
  name   = var.heroku_app_name
  region = var.heroku_region
  # Built from the Dockerfile: heroku.yml or `heroku container:push`.
  stack = "container"

  dynamic "organization" {
    for_each = var.heroku_team == null ? [] : [var.heroku_team]
    content {
      name = organization.value
    }
  }

  config_vars = merge(
    {
      APP_ENV              = var.environment
      AWS_REGION           = var.aws_region
      S3_BUCKET            = aws_s3_bucket.recordings.bucket
      SHUTDOWN_TIMEOUT     = var.shutdown_timeout
      LOG_LEVEL            = var.log_level
      LIVEKIT_URL          = var.livekit_url
      LIVEKIT_SIP_TRUNK_ID = var.livekit_sip_trunk_id
      LOGTAIL_INGEST_URL   = var.logtail_ingest_url
    },
    # Settings left null stay unset, so the worker's own default applies.
    {
      for name, value in {
        WORKER_CONCURRENCY    = var.worker_concurrency == null ? null : tostring(var.worker_concurrency)
        GOMAXPROCS            = var.gomaxprocs == null ? null : tostring(var.gomaxprocs)
        OPENAI_REALTIME_MODEL = var.openai_realtime_model
        OPENAI_ANALYSIS_MODEL = var.openai_analysis_model
      } : name => value if value != null
    },
  )

  # Redacted in plan output. Heroku itself has no notion of a secret config
  # var: anyone with access to the app can read these with `heroku config`.
  sensitive_config_vars = {
    REDIS_URL             = local.redis_url
    MONGODB_URI           = local.mongodb_uri
    AWS_ACCESS_KEY_ID     = aws_iam_access_key.worker.id
    AWS_SECRET_ACCESS_KEY = aws_iam_access_key.worker.secret
    LIVEKIT_API_KEY       = var.livekit_api_key
    LIVEKIT_API_SECRET    = var.livekit_api_secret
    OPENAI_API_KEY        = var.openai_api_key
    LOGTAIL_SOURCE_TOKEN  = var.logtail_source_token
  }
}

resource "heroku_formation" "worker" {
  count = var.manage_formation ? 1 : 0

  app_id   = heroku_app.worker.id
  type     = "worker"
  quantity = var.worker_quantity
  size     = var.worker_size
}

# Heroku's own events reach Better Stack only through a log drain: R14/R15
# (memory), crashes and restarts (heroku[worker.N]), releases and config
# changes (app[api]). A drain carries all of the app's log stream, the
# worker's stdout too, so it goes to a source of its own (platform Heroku),
# whose transformation (betterstack-heroku.vrl) drops the lines the worker
# also shipped over HTTP: no line arrives twice, and queries over both
# sources see each once. A plain heroku_drain rather than the Better Stack
# add-on: the add-on would create its own source and plan, outside this
# configuration.
resource "heroku_drain" "platform" {
  app_id        = heroku_app.worker.id
  sensitive_url = var.logtail_heroku_drain_url
}
