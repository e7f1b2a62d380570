# Call recordings. Private, encrypted at rest, versioned, and expired on a
# schedule; the worker shares them only through short-lived presigned URLs.

resource "aws_s3_bucket" "recordings" {
  bucket        = var.s3_bucket_name
  force_destroy = var.s3_force_destroy
}

# ACLs off: the bucket owner owns every object, so access is decided by IAM
# and the bucket policy alone.
resource "aws_s3_bucket_ownership_controls" "recordings" {
  bucket = aws_s3_bucket.recordings.id

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_public_access_block" "recordings" {
  bucket = aws_s3_bucket.recordings.id

  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_server_side_encryption_configuration" "recordings" {
  bucket = aws_s3_bucket.recordings.id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

resource "aws_s3_bucket_versioning" "recordings" {
  bucket = aws_s3_bucket.recordings.id

  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "recordings" {
  bucket = aws_s3_bucket.recordings.id

  # Lifecycle rules on a versioned bucket need versioning to exist first.
  depends_on = [aws_s3_bucket_versioning.recordings]

  rule {
    id     = "expire-recordings"
    status = "Enabled"

    filter {
      prefix = "recordings/"
    }

    expiration {
      days = 90
    }
  }

  # Objects a crashed upload left behind; a finished call's recording lives
  # under recordings/.
  rule {
    id     = "expire-partial-recordings"
    status = "Enabled"

    filter {
      prefix = "recordings-partial/"
    }

    expiration {
      days = 7
    }
  }

  # `worker health` deletes its probe objects right away; this catches the
  # rare probe whose delete failed.
  rule {
    id     = "expire-health-probes"
    status = "Enabled"

    filter {
      prefix = "health/probe/"
    }

    expiration {
      days = 1
    }
  }

  # Versioning keeps a deleted or overwritten recording as a noncurrent
  # version; without this rule "expired after 90 days" would not free it.
  rule {
    id     = "expire-noncurrent-versions"
    status = "Enabled"

    filter {}

    noncurrent_version_expiration {
      noncurrent_days = 30
    }

    expiration {
      expired_object_delete_marker = true
    }
  }

  # A worker killed mid-call leaves an unfinished multipart upload whose parts
  # are billed but invisible to listings.
  rule {
    id     = "abort-incomplete-multipart-uploads"
    status = "Enabled"

    filter {}

    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }
}

resource "aws_s3_bucket_policy" "recordings" {
  bucket = aws_s3_bucket.recordings.id
  policy = data.aws_iam_policy_document.recordings_bucket.json

  # S3 rejects a policy write while the public access block is being created.
  depends_on = [aws_s3_bucket_public_access_block.recordings]
}

data "aws_iam_policy_document" "recordings_bucket" {
  # Deny any upload that asks for an encryption other than SSE-S3 (AES256).
  #
  # "IfExists" matters: multipart UploadPart requests are authorized as
  # s3:PutObject but never carry the x-amz-server-side-encryption header (it is
  # sent once, on CreateMultipartUpload). A plain StringNotEquals would deny
  # every part and break the worker's streaming uploads. A request without the
  # header is still encrypted with AES256 by the bucket's default encryption.
  statement {
    sid     = "DenyUploadsNotEncryptedWithAES256"
    effect  = "Deny"
    actions = ["s3:PutObject"]

    resources = ["${aws_s3_bucket.recordings.arn}/*"]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "StringNotEqualsIfExists"
      variable = "s3:x-amz-server-side-encryption"
      values   = ["AES256"]
    }
  }

  statement {
    sid     = "DenyInsecureTransport"
    effect  = "Deny"
    actions = ["s3:*"]

    resources = [
      aws_s3_bucket.recordings.arn,
      "${aws_s3_bucket.recordings.arn}/*",
    ]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}
