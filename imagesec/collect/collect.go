package collect

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/image/v2/images"
	"github.com/gophercloud/gophercloud/v2/pagination"
	"github.com/jackc/pgx/v5"

	"github.com/unisched/unisched/imagesec/inspect"
	"github.com/unisched/unisched/imagesec/store"
	"github.com/unisched/unisched/internal/pg"
)

// DefaultDiskFormats are the formats inspect reads.
var DefaultDiskFormats = []string{"qcow2", "raw"}

// Options configures a collection.
type Options struct {
	// WorkDir receives the downloads (<glance id>.<hash prefix>.part while
	// they run) and inspect's raw copies; required.
	WorkDir string
	// DiskFormats to collect (default DefaultDiskFormats); other images
	// are listed as skipped.
	DiskFormats []string
	// PageSize is Glance's list limit per request (default 100).
	PageSize int
	// KeepFiles leaves the downloaded files in WorkDir (for an upgrade
	// to start from); by default they are removed once inspected.
	KeepFiles bool
	// Progress, when set, gets every step.
	Progress func(store.Progress)
}

// Action is what a collection did with one image.
const (
	ActionInspected = "inspected"
	ActionSkipped   = "skipped"
	ActionFailed    = "failed"
)

// ImageResult is one Glance image of a collection.
type ImageResult struct {
	GlanceID   string `json:"glance_id"`
	Name       string `json:"name"`
	DiskFormat string `json:"disk_format"`
	Hash       Hash   `json:"hash"`
	Action     string `json:"action"`
	Reason     string `json:"reason,omitempty"`   // why skipped or failed
	ImageID    int64  `json:"image_id,omitempty"` // the stored inspection
	Bytes      int64  `json:"bytes"`              // transferred by this collection
	Path       string `json:"path,omitempty"`     // with KeepFiles
}

// Result sums a collection up.
type Result struct {
	Listed    int           `json:"listed"`
	Inspected int           `json:"inspected"`
	Skipped   int           `json:"skipped"`
	Failed    int           `json:"failed"`
	Bytes     int64         `json:"bytes"`
	Images    []ImageResult `json:"images"`
}

// DB is what collect needs of the database: a pool (queries and
// transactions).
type DB interface {
	pg.DBTX
	pg.Beginner
}

// ImageSource is the store's source of a Glance image.
func ImageSource(glanceID string) string { return "glance:" + glanceID }

// HashOf is the checksum Glance recorded for an image; ok is false when
// it has none (no data yet).
func HashOf(img *images.Image) (Hash, bool) {
	algo, _ := img.Properties["os_hash_algo"].(string)
	value, _ := img.Properties["os_hash_value"].(string)
	if algo != "" && value != "" {
		return Hash{Algo: algo, Value: value}, true
	}
	if img.Checksum != "" {
		return Hash{Algo: "md5", Value: img.Checksum}, true
	}
	return Hash{}, false
}

// List returns every active image Glance shows, following its pages.
func List(ctx context.Context, c *gophercloud.ServiceClient, pageSize int) ([]images.Image, error) {
	if pageSize <= 0 {
		pageSize = 100
	}
	var out []images.Image
	err := images.List(c, images.ListOpts{Status: images.ImageStatusActive, Limit: pageSize, SortKey: "created_at", SortDir: "asc"}).
		EachPage(ctx, func(_ context.Context, p pagination.Page) (bool, error) {
			imgs, err := images.ExtractImages(p)
			if err != nil {
				return false, err
			}
			out = append(out, imgs...)
			return true, nil
		})
	if err != nil {
		return nil, fmt.Errorf("listing glance images: %w", err)
	}
	return out, nil
}

// Collect lists Glance's images and inspects the new and changed ones.
// One image's failure (bad data, unsupported disk) is recorded and the
// collection goes on; the error is for what stops it (Glance or the
// database unreachable, ctx cancelled).
func Collect(ctx context.Context, db DB, c *gophercloud.ServiceClient, opts Options) (*Result, error) {
	if opts.WorkDir == "" {
		return nil, errors.New("collect: no work directory")
	}
	if err := os.MkdirAll(opts.WorkDir, 0o700); err != nil {
		return nil, fmt.Errorf("collect: %w", err)
	}
	formats := opts.DiskFormats
	if len(formats) == 0 {
		formats = DefaultDiskFormats
	}
	progress := func(p store.Progress) {
		if opts.Progress != nil {
			opts.Progress(p)
		}
	}
	progress(store.Progress{Step: "list", Message: "listing glance images"})
	list, err := List(ctx, c, opts.PageSize)
	if err != nil {
		return nil, err
	}
	res := &Result{Listed: len(list), Images: []ImageResult{}}
	for i := range list {
		img := &list[i]
		ir := ImageResult{GlanceID: img.ID, Name: img.Name, DiskFormat: img.DiskFormat}
		step := func(name, format string, args ...any) {
			progress(store.Progress{Step: name, Message: fmt.Sprintf(format, args...), StepsDone: i, StepsTotal: len(list)})
		}
		h, ok := HashOf(img)
		ir.Hash = h
		switch {
		case !slices.Contains(formats, img.DiskFormat):
			ir.Action, ir.Reason = ActionSkipped, fmt.Sprintf("disk format %q is not collected (%s)", img.DiskFormat, strings.Join(formats, ", "))
		case !ok:
			ir.Action, ir.Reason = ActionSkipped, "glance records no checksum for it"
		default:
			prev, err := store.GetGlanceImage(ctx, db, img.ID)
			if err != nil {
				return res, err
			}
			if prev != nil && prev.HashAlgo == h.Algo && prev.HashValue == h.Value {
				ir.Action, ir.ImageID = ActionSkipped, prev.ImageID
				ir.Reason = "unchanged since it was " + prev.Status
				if prev.Status == store.GlanceFailed {
					ir.Reason += ": " + prev.Error
				}
				break
			}
			step("download", "%s (%s, %d bytes)", img.Name, img.ID, img.SizeBytes)
			if err := collectOne(ctx, db, c, img, h, opts, &ir, progress, i, len(list)); err != nil {
				res.Bytes += ir.Bytes
				return res, err
			}
		}
		res.Bytes += ir.Bytes
		switch ir.Action {
		case ActionInspected:
			res.Inspected++
		case ActionSkipped:
			res.Skipped++
		case ActionFailed:
			res.Failed++
		}
		res.Images = append(res.Images, ir)
		step("image", "%s: %s %s", img.ID, ir.Action, ir.Reason)
	}
	progress(store.Progress{Step: "done", Message: fmt.Sprintf("%d listed, %d inspected, %d skipped, %d failed",
		res.Listed, res.Inspected, res.Skipped, res.Failed), StepsDone: len(list), StepsTotal: len(list)})
	return res, nil
}

// PartialPath is where a download of the image's data (with that hash)
// is written; a later collection resumes it.
func PartialPath(workDir, glanceID string, h Hash) string {
	v := h.Value
	if len(v) > 16 {
		v = v[:16]
	}
	return filepath.Join(workDir, glanceID+"."+v+".part")
}

// collectOne downloads, inspects and stores one image. A bad image (a
// download that does not match Glance's checksum, or one inspect refuses)
// is recorded as failed, with its reason, and is no error of the
// collection.
func collectOne(ctx context.Context, db DB, c *gophercloud.ServiceClient, img *images.Image, h Hash,
	opts Options, ir *ImageResult, progress func(store.Progress), i, n int) error {
	part := PartialPath(opts.WorkDir, img.ID, h)
	got, err := Download(ctx, c, img.ID, part, img.SizeBytes, h, func(done, total int64) {
		progress(store.Progress{Step: "download", Message: img.ID, BytesDone: done, BytesTotal: total, StepsDone: i, StepsTotal: n})
	})
	ir.Bytes = got
	if errors.Is(err, ErrChecksum) && got < img.SizeBytes {
		// resumed from a partial file that was not a prefix of the image
		// (damaged on disk): once more from the start before blaming Glance
		progress(store.Progress{Step: "download", Message: img.ID + ": checksum mismatch after a resume, downloading again", StepsDone: i, StepsTotal: n})
		got, err = Download(ctx, c, img.ID, part, img.SizeBytes, h, func(done, total int64) {
			progress(store.Progress{Step: "download", Message: img.ID, BytesDone: done, BytesTotal: total, StepsDone: i, StepsTotal: n})
		})
		ir.Bytes += got
	}
	if errors.Is(err, ErrChecksum) {
		return recordFailure(ctx, db, img, h, ir, err)
	}
	if err != nil {
		return err
	}
	final := strings.TrimSuffix(part, ".part") + "." + img.DiskFormat
	if err := os.Rename(part, final); err != nil {
		return fmt.Errorf("collect: %w", err)
	}
	if opts.KeepFiles {
		ir.Path = final
	} else {
		defer os.Remove(final)
	}
	r, err := inspect.Inspect(ctx, final, inspect.Options{WorkDir: opts.WorkDir, Progress: func(e inspect.Event) {
		progress(store.Progress{Step: "inspect", Message: img.ID + ": " + e.Stage + " " + e.Message, StepsDone: i, StepsTotal: n})
	}})
	if err != nil {
		if inspect.IsBadInput(err) {
			return recordFailure(ctx, db, img, h, ir, err)
		}
		return fmt.Errorf("inspecting glance image %s: %w", img.ID, err)
	}
	return pg.WithTx(ctx, db, pgx.TxOptions{}, func(tx pgx.Tx) error {
		id, err := store.SaveInspection(ctx, tx, ImageSource(img.ID), img.Name, r)
		if err != nil {
			return err
		}
		ir.Action, ir.ImageID = ActionInspected, id
		return store.SaveGlanceImage(ctx, tx, store.GlanceImage{GlanceID: img.ID, Name: img.Name, DiskFormat: img.DiskFormat,
			HashAlgo: h.Algo, HashValue: h.Value, Size: img.SizeBytes, Status: store.GlanceInspected, ImageID: id})
	})
}

func recordFailure(ctx context.Context, db DB, img *images.Image, h Hash, ir *ImageResult, cause error) error {
	ir.Action, ir.Reason = ActionFailed, cause.Error()
	return pg.WithTx(ctx, db, pgx.TxOptions{}, func(tx pgx.Tx) error {
		return store.SaveGlanceImage(ctx, tx, store.GlanceImage{GlanceID: img.ID, Name: img.Name, DiskFormat: img.DiskFormat,
			HashAlgo: h.Algo, HashValue: h.Value, Size: img.SizeBytes, Status: store.GlanceFailed, Error: cause.Error()})
	})
}
