output "heroku_app_name" {
  description = "Pass to scripts/health-check.sh and the heroku CLI (-a)."
  value       = heroku_app.worker.name
}

output "heroku_app_id" {
  description = "UUID of the Heroku app."
  value       = heroku_app.worker.id
}

output "s3_bucket_name" {
  description = "Recordings bucket (S3_BUCKET)."
  value       = aws_s3_bucket.recordings.bucket
}

output "s3_bucket_arn" {
  description = "ARN of the recordings bucket."
  value       = aws_s3_bucket.recordings.arn
}

output "worker_iam_user" {
  description = "IAM user whose access key the worker uses."
  value       = aws_iam_user.worker.name
}

output "atlas_project_id" {
  description = "Atlas project of this environment."
  value       = mongodbatlas_project.voice.id
}

output "atlas_cluster_name" {
  description = "Atlas cluster name."
  value       = mongodbatlas_advanced_cluster.voice.name
}

output "mongodb_srv_host" {
  description = "Host part of the SRV connection string (no credentials)."
  value       = local.mongodb_srv_host
}

output "redis_subscription_id" {
  description = "Redis Cloud subscription ID."
  value       = rediscloud_subscription.voice.id
}

output "redis_public_endpoint" {
  description = "Redis Cloud endpoint, host:port (no credentials)."
  value       = rediscloud_subscription_database.queue.public_endpoint
}
