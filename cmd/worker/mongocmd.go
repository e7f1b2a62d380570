package main

import (
	"context"
	"time"

	"github.com/docshield/voice-worker/internal/config"
	"github.com/docshield/voice-worker/internal/store"
)

// withStore runs a MongoDB-only command: it reads only MongoDB's settings,
// bounds the command by timeout and closes the store afterwards.
func withStore(ctx context.Context, e env, timeout time.Duration, run func(ctx context.Context, st *store.Store) int) int {
	mc, err := config.LoadMongo(e.lookup)
	if err != nil {
		return configError(e, err)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	st, err := openStore(ctx, mc)
	if err != nil {
		return configError(e, err)
	}
	defer st.Close(context.WithoutCancel(ctx))
	return run(ctx, st)
}
