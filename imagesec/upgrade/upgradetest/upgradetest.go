// Package upgradetest gives tests of the offline upgrade a sandbox: a
// private dockerd for one test (the packages using it do not run
// dockertest.Main, whose daemon is shared by a whole test binary), the
// helper image on it and a fresh .deb cache.
package upgradetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/docker/docker/client"

	"github.com/unisched/unisched/imagesec/upgrade"
	"github.com/unisched/unisched/internal/dockertest"
)

// Daemon starts a private dockerd, stopped when t ends. A machine without
// Docker skips the test (fails it under UNISCHED_REQUIRE_DOCKER=1).
func Daemon(t testing.TB) *dockertest.Daemon {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	d, err := dockertest.StartDaemon(ctx, dockertest.Options{})
	if err != nil {
		if errors.Is(err, dockertest.ErrUnavailable) {
			dockertest.Unavailable(t, err)
		}
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := d.Close(ctx); err != nil {
			t.Errorf("stopping dockerd: %v", err)
		}
	})
	return d
}

// Options starts a Daemon and returns upgrade options sandboxed there
// (the helper image imported, a client closed when t ends) with a cache
// of their own; WorkDir is left to the caller.
func Options(t testing.TB) upgrade.Options {
	t.Helper()
	d := Daemon(t)
	cli, err := dockertest.NewClient(d.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return upgrade.Options{Sandbox: &upgrade.Sandbox{Client: cli, Image: image(t, cli)}, Cache: cache(t)}
}

func image(t testing.TB, cli *client.Client) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	img, err := upgrade.EnsureImage(ctx, cli, upgrade.Busybox)
	if err != nil {
		dockertest.Unavailable(t, err)
	}
	return img
}

func cache(t testing.TB) *upgrade.Cache {
	t.Helper()
	c, err := upgrade.NewCache(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return c
}
