# The worker's AWS identity. Heroku dynos cannot assume an IAM role, so the
# worker gets an IAM user whose access key lands in the app's config vars.
# Rotate it by tainting aws_iam_access_key.worker and re-applying.

resource "aws_iam_user" "worker" {
  name = "${local.name}-worker"
  path = "/docshield/"
}

resource "aws_iam_access_key" "worker" {
  user = aws_iam_user.worker.name
}

resource "aws_iam_user_policy" "worker_recordings" {
  name   = "recordings-bucket"
  user   = aws_iam_user.worker.name
  policy = data.aws_iam_policy_document.worker_recordings.json
}

# Only what the worker calls (internal/bucket, internal/recording): streaming
# multipart uploads, HeadObject and presigned GETs, deleting a recording's
# joined segments, the `worker health` probe, and the bucket reads behind
# `worker verify s3`.
data "aws_iam_policy_document" "worker_recordings" {
  statement {
    sid    = "RecordingObjects"
    effect = "Allow"
    actions = [
      "s3:PutObject",
      "s3:GetObject",
      "s3:AbortMultipartUpload",
      "s3:ListMultipartUploadParts",
    ]
    resources = ["${aws_s3_bucket.recordings.arn}/*"]
  }

  # The worker deletes only its own scratch objects: a recording's segments
  # once joined into the final object (recordings-partial/, see
  # internal/recording), and the health probe's object (health/probe/). A
  # leaked key cannot delete a final recording (recordings/).
  statement {
    sid       = "ScratchDeletes"
    effect    = "Allow"
    actions   = ["s3:DeleteObject"]
    resources = ["${aws_s3_bucket.recordings.arn}/recordings-partial/*", "${aws_s3_bucket.recordings.arn}/health/probe/*"]
  }

  # The probe reads back and deletes the exact version it wrote, so repeated
  # probes leave no noncurrent versions behind; version-level access is
  # limited to the probe's own prefix.
  statement {
    sid    = "HealthProbeVersions"
    effect = "Allow"
    actions = [
      "s3:GetObjectVersion",
      "s3:DeleteObjectVersion",
    ]
    resources = ["${aws_s3_bucket.recordings.arn}/health/probe/*"]
  }

  statement {
    sid    = "RecordingBucket"
    effect = "Allow"
    actions = [
      "s3:ListBucket",
      "s3:GetBucketLocation",
      "s3:GetBucketVersioning",
      "s3:GetEncryptionConfiguration",
      "s3:GetLifecycleConfiguration",
      "s3:GetBucketPublicAccessBlock",
    ]
    resources = [aws_s3_bucket.recordings.arn]
  }
}
