package main

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/unisched/unisched/bridge/ledger"
	"github.com/unisched/unisched/internal/config"
	"github.com/unisched/unisched/internal/openstack"
	"github.com/unisched/unisched/novaext"
)

// newNovaProxy builds the Nova API proxy of nova_proxy.* (the listener is
// serve's to open). tokens is serve's Keystone validator (nil under
// noauth2): the proxy validates each token with it before forwarding.
func newNovaProxy(cfg config.NovaProxy, pool *pgxpool.Pool, tokens openstack.Authenticator, log *slog.Logger) (*novaext.Proxy, error) {
	if cfg.Upstream == "" {
		return nil, errors.New("nova_proxy.listen is set but nova_proxy.upstream (nova-api's URL) is not")
	}
	return novaext.New(novaext.Config{
		Upstream:      cfg.Upstream,
		DB:            pool,
		LookupTimeout: cfg.LookupTimeout,
		Auth:          tokens,
		Logger:        log.With("component", "nova-proxy"),
	})
}

// intentTrimmer deletes intents older than the retention, at start and
// then every tenth of it (at most every 10 minutes). Replicas trimming
// the same rows at once is harmless: a DELETE by age.
type intentTrimmer struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func startIntentTrimmer(ctx context.Context, pool *pgxpool.Pool, retention time.Duration, log *slog.Logger) *intentTrimmer {
	if retention <= 0 {
		retention = time.Hour
	}
	every := min(retention/10, 10*time.Minute)
	ctx, cancel := context.WithCancel(ctx)
	t := &intentTrimmer{cancel: cancel}
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		ticker := time.NewTicker(every)
		defer ticker.Stop()
		for {
			n, err := ledger.TrimIntents(ctx, pool, time.Now().Add(-retention))
			switch {
			case err != nil && ctx.Err() == nil:
				log.Warn("trimming nova proxy intents", "error", err)
			case n > 0:
				log.Debug("trimmed nova proxy intents", "deleted", n)
			}
			select {
			case <-ctx.Done():
				return
			case <-ticker.C:
			}
		}
	}()
	return t
}

// Stop ends the trimmer and waits for it.
func (t *intentTrimmer) Stop() {
	if t == nil {
		return
	}
	t.cancel()
	t.wg.Wait()
}
