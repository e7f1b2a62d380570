package main

import (
	"context"
	"time"

	"github.com/docshield/voice-worker/internal/bucket"
	"github.com/docshield/voice-worker/internal/config"
	"github.com/docshield/voice-worker/internal/store"
	"github.com/docshield/voice-worker/internal/telephony"
)

// Each opener takes only its own config section, so `verify redis` works
// while MongoDB's settings are wrong, and so on.

func openStore(ctx context.Context, m config.Mongo) (*store.Store, error) {
	return store.Open(ctx, store.Options{
		URI:                    m.URI,
		Database:               m.Database,
		MaxPoolSize:            m.MaxPoolSize,
		ConnectTimeout:         10 * time.Second,
		ServerSelectionTimeout: 10 * time.Second,
		AppName:                "docshield-worker",
	})
}

func openStorage(ctx context.Context, s config.S3) (*bucket.Client, error) {
	return bucket.New(ctx, bucket.Options{
		Region:          s.Region,
		AccessKeyID:     s.AccessKeyID,
		SecretAccessKey: s.SecretAccessKey,
		Bucket:          s.Bucket,
		Endpoint:        s.Endpoint,
		UsePathStyle:    s.Endpoint != "",
	})
}

func telephonyConfig(l config.LiveKit) telephony.Config {
	return telephony.Config{URL: l.URL, APIKey: l.APIKey, APISecret: l.APISecret, SIPTrunkID: l.SIPTrunkID, CallerID: l.CallerID}
}
