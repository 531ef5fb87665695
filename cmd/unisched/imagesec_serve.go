package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/docker/docker/client"
	"github.com/gophercloud/gophercloud/v2"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/unisched/unisched/imagesec"
	imagesapi "github.com/unisched/unisched/imagesec/api"
	"github.com/unisched/unisched/imagesec/collect"
	"github.com/unisched/unisched/imagesec/upgrade"
	"github.com/unisched/unisched/internal/config"
	"github.com/unisched/unisched/internal/openstack"
	"github.com/unisched/unisched/internal/pg"
)

// glanceClient returns a function that builds the Glance client on first
// use (a Keystone that is down when serve starts is retried at the next
// job); nil when no Glance is configured.
func glanceClient(g config.GlanceClient) func(ctx context.Context) (*gophercloud.ServiceClient, error) {
	if !g.Configured() {
		return nil
	}
	var mu sync.Mutex
	var client *gophercloud.ServiceClient
	return func(ctx context.Context) (*gophercloud.ServiceClient, error) {
		mu.Lock()
		defer mu.Unlock()
		if client != nil {
			return client, nil
		}
		c, err := collect.NewClient(ctx, collect.Auth{Endpoint: g.Endpoint, Token: g.Token, AuthURL: g.AuthURL,
			Username: g.Username, Password: g.Password, UserDomainName: g.UserDomainName, ProjectName: g.ProjectName,
			ProjectDomainName: g.ProjectDomainName, Region: g.RegionName, Interface: g.Interface, Timeout: g.Timeout})
		if err != nil {
			return nil, err
		}
		client = c
		return c, nil
	}
}

// newImagesecRunner is the job runner of imagesec's configuration.
func newImagesecRunner(pool *pgxpool.Pool, cfg *config.Config, log *slog.Logger) *imagesec.Runner {
	ic := cfg.Imagesec
	return imagesec.NewRunner(imagesec.RunnerConfig{DB: pool, Glance: glanceClient(ic.Glance), WorkDir: ic.WorkDir,
		DiskFormats: ic.DiskFormats, Parallelism: ic.JobParallelism, UpgradeEnv: upgradeEnv(ic),
		Logger: log.With("component", "imagesec")})
}

// startImagesec starts the job runner (and the periodic collection when
// imagesec.collect_interval is set), exports its metrics on reg and
// returns the /v1/images handler mounted in front of next. Stop the
// runner when serve ends.
func startImagesec(ctx context.Context, pool *pgxpool.Pool, cfg *config.Config, log *slog.Logger, reg prometheus.Registerer, lead leadership, auth openstack.Authenticator, next http.Handler) (*imagesec.Runner, http.Handler, error) {
	r := newImagesecRunner(pool, cfg, log)
	if err := r.RegisterMetrics(reg); err != nil {
		return nil, nil, err
	}
	if err := r.Start(ctx); err != nil {
		return nil, nil, err
	}
	if cfg.Imagesec.CollectInterval > 0 {
		leading, err := campaignCollect(r, pool, lead, log)
		if err != nil {
			r.Stop()
			return nil, nil, err
		}
		r.StartPeriodicCollect(cfg.Imagesec.CollectInterval, leading)
	}
	h := imagesapi.New(imagesapi.Config{Auth: auth, DB: pool, Runner: r, MaxBodyBytes: cfg.ContainerAPI.MaxBodyBytes, Logger: log})
	return r, imagesapi.Mount(h, next), nil
}

// campaignCollect campaigns, until the runner stops, for the periodic
// collection's lead among serve's replicas (imagesec.CollectLockKey, the
// leader.* settings, unisched_leader{role="imagesec collect"}) and
// returns whether this replica leads now.
func campaignCollect(r *imagesec.Runner, pool *pgxpool.Pool, lead leadership, log *slog.Logger) (func() bool, error) {
	const role = "imagesec collect"
	l, err := pg.NewLeader(pool, pg.LeaderConfig{Role: role, Key: imagesec.CollectLockKey, Retry: lead.cfg.RetryInterval,
		Keepalive: lead.keepalive(), Logger: log, OnChange: lead.observer(role)})
	if err != nil {
		return nil, err
	}
	r.Go(func(ctx context.Context) {
		l.Run(ctx, func(ctx context.Context, conn *pgx.Conn) error {
			for {
				if err := pg.Hold(ctx, conn, time.Minute); err != nil {
					return err
				}
			}
		})
	})
	return l.Leading, nil
}

// upgradeEnv gives upgrade jobs their sandbox (a Docker client of
// imagesec.docker_host and the helper image) and the .deb cache.
func upgradeEnv(ic config.Imagesec) imagesec.UpgradeEnv {
	return func(ctx context.Context) (upgrade.Options, func(), error) {
		return upgradeSandbox(ctx, ic.DockerHost, ic.SandboxImage, ic.DebCacheDir, "imagesec.deb_cache_dir")
	}
}

// upgradeSandbox is the sandbox of an offline upgrade: a Docker client of
// host (default $DOCKER_HOST, then the system socket), the helper image
// (default: the host's static busybox, imported, so no registry is
// needed) and the .deb cache in cacheDir (default the user cache dir's
// unisched/debs; cacheKey names the setting in errors). done closes the
// client.
func upgradeSandbox(ctx context.Context, host, img, cacheDir, cacheKey string) (opts upgrade.Options, done func(), err error) {
	if host == "" {
		host = os.Getenv("DOCKER_HOST")
	}
	if host == "" {
		host = "unix:///var/run/docker.sock"
	}
	cli, err := client.NewClientWithOpts(client.WithHost(host), client.WithAPIVersionNegotiation())
	if err != nil {
		return upgrade.Options{}, nil, fmt.Errorf("docker client for %s: %w", host, err)
	}
	if img == "" {
		if img, err = upgrade.EnsureImage(ctx, cli, upgrade.Busybox); err != nil {
			cli.Close()
			return upgrade.Options{}, nil, fmt.Errorf("the sandbox image on %s: %w", host, err)
		}
	}
	if cacheDir == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			cli.Close()
			return upgrade.Options{}, nil, fmt.Errorf("no %s and no user cache dir: %w", cacheKey, err)
		}
		cacheDir = filepath.Join(base, "unisched", "debs")
	}
	cache, err := upgrade.NewCache(cacheDir)
	if err != nil {
		cli.Close()
		return upgrade.Options{}, nil, err
	}
	return upgrade.Options{Sandbox: &upgrade.Sandbox{Client: cli, Image: img}, Cache: cache}, func() { cli.Close() }, nil
}
