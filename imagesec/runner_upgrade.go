package imagesec

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/unisched/unisched/imagesec/collect"
	"github.com/unisched/unisched/imagesec/store"
	"github.com/unisched/unisched/imagesec/upgrade"
)

// UpgradeParams are an upgrade job's: the fix sources to advise against
// afresh (both empty: apply the image's stored advice).
type UpgradeParams struct {
	Feed       string `json:"feed,omitempty"`
	Advisories string `json:"advisories,omitempty"`
}

// UpgradeEnv gives an upgrade job its sandbox and package cache (a Docker
// client and a cache directory, which only the caller's configuration
// knows); done releases them.
type UpgradeEnv func(ctx context.Context) (opts upgrade.Options, done func(), err error)

// upgradeFunc is the upgrade job over UpgradeImage: an image collected
// from Glance is downloaded first (verified against the checksum collect
// recorded); the upgraded file goes to the work dir's upgraded/.
func (r *Runner) upgradeFunc(env UpgradeEnv) UpgradeFunc {
	return func(ctx context.Context, imageID int64, raw json.RawMessage, progress func(store.Progress)) (any, int64, error) {
		var p UpgradeParams
		if err := strictJSON(raw, &p); err != nil {
			return nil, 0, err
		}
		d, err := store.GetImage(ctx, r.cfg.DB, imageID)
		if err != nil {
			return nil, 0, err
		}
		opts := UpgradeOptions{Feed: p.Feed, Advisories: p.Advisories}
		outDir := filepath.Join(r.cfg.WorkDir, "upgraded")
		if err := os.MkdirAll(outDir, 0o700); err != nil {
			return nil, 0, err
		}
		ext := "." + d.Format
		opts.Out = filepath.Join(outDir, fmt.Sprintf("image-%d.upgraded-%s%s", imageID, time.Now().UTC().Format("20060102T150405"), ext))
		if glanceID, ok := strings.CutPrefix(d.Source, "glance:"); ok {
			path, err := r.fetchGlance(ctx, glanceID, d.Format, progress)
			if err != nil {
				return nil, 0, err
			}
			defer os.Remove(path)
			opts.SourcePath = path
		}
		u, done, err := env(ctx)
		if err != nil {
			return nil, 0, fmt.Errorf("preparing the upgrade sandbox: %w", err)
		}
		defer done()
		u.WorkDir = r.cfg.WorkDir
		u.Progress = func(e upgrade.Event) {
			progress(store.Progress{Step: e.Stage, Message: e.Message, BytesDone: e.Bytes, BytesTotal: e.Total, StepsDone: e.Step, StepsTotal: e.Steps})
		}
		opts.Upgrade = u
		res, err := UpgradeImage(ctx, r.cfg.DB, imageID, opts)
		if err != nil {
			return nil, 0, err
		}
		return res, res.Image.ID, nil
	}
}

// fetchGlance downloads a collected Glance image's data (resuming a
// partial download) to the work dir.
func (r *Runner) fetchGlance(ctx context.Context, glanceID, format string, progress func(store.Progress)) (string, error) {
	g, err := store.GetGlanceImage(ctx, r.cfg.DB, glanceID)
	if err != nil {
		return "", err
	}
	if g == nil {
		return "", fmt.Errorf("%w: glance image %s was never collected", ErrBadJob, glanceID)
	}
	c, err := r.glance(ctx)
	if err != nil {
		return "", err
	}
	dir := filepath.Join(r.cfg.WorkDir, "collect")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	h := collect.Hash{Algo: g.HashAlgo, Value: g.HashValue}
	part := collect.PartialPath(dir, glanceID, h)
	if _, err := collect.Download(ctx, c, glanceID, part, g.Size, h, func(done, total int64) {
		progress(store.Progress{Step: "download", Message: glanceID, BytesDone: done, BytesTotal: total})
	}); err != nil {
		return "", err
	}
	path := strings.TrimSuffix(part, ".part") + ".upgrade-source." + format
	if err := os.Rename(part, path); err != nil {
		return "", err
	}
	return path, nil
}
