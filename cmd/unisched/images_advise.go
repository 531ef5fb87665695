package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/unisched/unisched/imagesec"
	"github.com/unisched/unisched/imagesec/upgrade"
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
		sandboxImage: fs.String("sandbox-image", "", "upgrade: the sandbox's helper image (default unisched/upgrade-sandbox:<hash>, imported from the host's busybox-static when missing)"),
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
	u, done, err := upgradeSandbox(ctx, *o.dockerHost, *o.sandboxImage, *o.cacheDir, "--cache-dir")
	if err != nil {
		return err
	}
	defer done()
	u.WorkDir = workDir
	opts := imagesec.UpgradeOptions{Feed: *o.feed, Advisories: *o.advisories, Out: *o.out, Upgrade: u}
	if !quiet {
		opts.Upgrade.Progress = upgradeProgress(c.stderr)
	}
	start := time.Now()
	res, err := imagesec.UpgradeImage(ctx, pool, id, opts)
	if err != nil {
		return dbHint(err)
	}
	if !quiet {
		fmt.Fprintf(c.stderr, "upgraded image %d in %v: image %d at %s\n", id, time.Since(start).Round(time.Millisecond), res.Image.ID, res.Record.Path)
	}
	if format == "json" {
		return c.json(res)
	}
	tw := c.table("PACKAGE", "ARCH", "FROM", "TO", "ADVISORIES")
	for _, u := range res.Upgrade.Applied {
		ids := make([]string, len(u.Advisories))
		for i, a := range u.Advisories {
			ids[i] = a.ID
		}
		row(tw, u.Name, u.Architecture, u.From, u.To, strings.Join(ids, ","))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "\nnew image %d: %s (%s)\n", res.Image.ID, res.Record.Path, res.Image.Checksum)
	for _, u := range res.Upgrade.Skipped {
		fmt.Fprintf(c.stdout, "not applied (no feed offers it): %s %s -> %s\n", u.Name, u.From, u.To)
	}
	return nil
}

// upgradeProgress prints one line per stage, and download bytes every
// quarter.
func upgradeProgress(w io.Writer) func(upgrade.Event) {
	last := ""
	lastQuarter := -1
	return func(e upgrade.Event) {
		if e.Stage == last && e.Total > 0 {
			q := int(4 * e.Bytes / e.Total)
			if q == lastQuarter {
				return
			}
			lastQuarter = q
			fmt.Fprintf(w, "upgrade [%d/%d] %s: %s of %s (%s)\n", e.Step, e.Steps, e.Stage, humanBytes(e.Bytes), humanBytes(e.Total), e.Message)
			return
		}
		last, lastQuarter = e.Stage, -1
		fmt.Fprintf(w, "upgrade [%d/%d] %s\n", e.Step, e.Steps, e.Message)
	}
}
