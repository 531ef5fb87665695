package main

import (
	"context"
	"flag"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/unisched/unisched/imagesec"
)

// upgradeOpts are the flags of `images advise` and `images upgrade`.
type upgradeOpts struct {
	feed, advisories, out, dockerHost, cacheDir, sandboxImage *string
}

func upgradeFlags(fs *flag.FlagSet) upgradeOpts {
	return upgradeOpts{
		feed:         fs.String("feed", "", "fix feed: an apt repository index (path, file:// or http:// URL of Packages[.gz|.xz] or its directory)"),
		advisories:   fs.String("advisories", "", "advisory file (YAML or JSON)"),
		out:          fs.String("out", "", "upgrade: the upgraded image's path (default: beside the original, name.upgraded-<time>.ext)"),
		dockerHost:   fs.String("docker-host", "", "upgrade: the Docker daemon running the sandbox (default $DOCKER_HOST, then unix:///var/run/docker.sock)"),
		cacheDir:     fs.String("cache-dir", "", "upgrade: the .deb download cache (default <user cache dir>/unisched/debs)"),
		sandboxImage: fs.String("sandbox-image", "", "upgrade: the sandbox's helper image (default unisched/busybox:latest, imported from Debian's busybox-static when missing)"),
	}
}

func (c imagesCLI) advise(ctx context.Context, pool *pgxpool.Pool, id int64, o upgradeOpts, format string) error {
	if *o.feed == "" && *o.advisories == "" {
		return fmt.Errorf("images advise needs --feed URL and/or --advisories FILE")
	}
	plan, err := imagesec.AdviseImage(ctx, pool, id, imagesec.AdviseOptions{Feed: *o.feed, Advisories: *o.advisories})
	if err != nil {
		return dbHint(err)
	}
	if format == "json" {
		return c.json(plan)
	}
	tw := c.table("PACKAGE", "ARCH", "FROM", "TO", "SEVERITY", "ADVISORIES", "AVAILABLE")
	for _, u := range plan.Upgrades {
		ids := make([]string, len(u.Advisories))
		for i, a := range u.Advisories {
			ids[i] = a.ID
		}
		avail := "yes"
		if !u.Available {
			avail = "no"
		}
		row(tw, u.Name, u.Architecture, u.From, u.To, u.Severity, strings.Join(ids, ","), avail)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(c.stderr, "image %d: %d of %d packages to upgrade (%d current in the feed)\n", id, len(plan.Upgrades), plan.Checked, plan.Current)
	return nil
}

func (c imagesCLI) upgrade(ctx context.Context, pool *pgxpool.Pool, id int64, o upgradeOpts, format, workDir string, quiet bool) error {
	return fmt.Errorf("images upgrade: not available yet")
}
