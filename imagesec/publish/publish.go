// Package publish uploads a patched image to Glance as a new image linked
// to its parent: the same disk and container format, the parent's boot
// properties, and properties that say where it comes from and what was
// fixed (unisched_parent_image, unisched_family, unisched_fixes,
// unisched_advisories, unisched_patched_at). Glance's image data is
// immutable once active, so a patch is always a new image; the parent can
// be hidden (os_hidden) so that image lists show the patched one. The
// lineage is recorded in the database, where the coordinator resolves a
// family to its newest patched image.
package publish

import (
	"context"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/image/v2/imagedata"
	"github.com/gophercloud/gophercloud/v2/openstack/image/v2/images"

	"github.com/unisched/unisched/imagesec/store"
	"github.com/unisched/unisched/internal/pg"
)

// Property names set on a published image.
const (
	PropParent     = "unisched_parent_image"
	PropFamily     = "unisched_family"
	PropFixes      = "unisched_fixes"
	PropAdvisories = "unisched_advisories"
	PropPatchedAt  = "unisched_patched_at"
)

// maxProperty is Glance's limit on a property value (255 characters).
const maxProperty = 255

// ErrParentNotFound: the parent image is not in Glance.
var ErrParentNotFound = errors.New("parent image not found in glance")

// ErrInvalid: the request cannot be carried out as given.
var ErrInvalid = errors.New("invalid publish request")

// Request is one patched image to publish.
type Request struct {
	// File is the patched image (same disk format as the parent).
	File string `json:"file"`
	// ParentGlanceID is the image it was patched from.
	ParentGlanceID string `json:"parent_glance_id"`
	// Name of the new image; default "<parent name> (patched <date>)".
	Name string `json:"name,omitempty"`
	// Family groups an image and its patched versions; default the
	// parent's unisched_family, else the parent's id.
	Family     string      `json:"family,omitempty"`
	Fixes      []store.Fix `json:"fixes,omitempty"`
	Advisories []string    `json:"advisories,omitempty"`
	// HideParent sets os_hidden on the parent once the new image is active.
	HideParent bool `json:"hide_parent,omitempty"`
	// The imagesec images of the file and of the parent (lineage; 0 when unknown).
	ImageID       int64 `json:"image_id,omitempty"`
	ParentImageID int64 `json:"parent_image_id,omitempty"`

	Now      func() time.Time     `json:"-"`
	Progress func(store.Progress) `json:"-"`
}

// Result is the published image.
type Result struct {
	GlanceID     string            `json:"glance_id"`
	Name         string            `json:"name"`
	Family       string            `json:"family"`
	DiskFormat   string            `json:"disk_format"`
	Size         int64             `json:"size"`
	Properties   map[string]string `json:"properties"`
	ParentHidden bool              `json:"parent_hidden"`
	PatchedAt    time.Time         `json:"patched_at"`
}

// copied are the parent's properties that say how to boot the image: the
// patched one boots the same way.
var copied = []string{"hw_", "os_distro", "os_version", "os_type", "os_admin_user", "os_require_quiesce",
	"architecture", "img_", "vm_mode", "hypervisor_type", "auto_disk_config"}

func bootProperty(k string) bool {
	for _, p := range copied {
		if strings.HasPrefix(k, p) {
			return true
		}
	}
	return false
}

// Publish creates the image, uploads the file (verified against the
// sha512 Glance computes), optionally hides the parent and records the
// lineage. A failed upload deletes the half-made image again.
func Publish(ctx context.Context, db pg.DBTX, c *gophercloud.ServiceClient, req Request) (*Result, error) {
	progress := func(step, format string, args ...any) {
		if req.Progress != nil {
			req.Progress(store.Progress{Step: step, Message: fmt.Sprintf(format, args...)})
		}
	}
	if req.ParentGlanceID == "" {
		return nil, fmt.Errorf("%w: no parent image", ErrInvalid)
	}
	st, err := os.Stat(req.File)
	if err != nil {
		return nil, fmt.Errorf("%w: image file: %v", ErrInvalid, err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: image file %s is not a regular file", ErrInvalid, req.File)
	}
	now := time.Now
	if req.Now != nil {
		now = req.Now
	}
	at := now().UTC().Truncate(time.Second)
	parent, err := images.Get(ctx, c, req.ParentGlanceID).Extract()
	if gophercloud.ResponseCodeIs(err, 404) {
		return nil, fmt.Errorf("%w: %s", ErrParentNotFound, req.ParentGlanceID)
	}
	if err != nil {
		return nil, fmt.Errorf("reading parent image %s: %w", req.ParentGlanceID, err)
	}
	family := req.Family
	if family == "" {
		family, _ = parent.Properties[PropFamily].(string)
	}
	if family == "" {
		family = parent.ID
	}
	name := req.Name
	if name == "" {
		name = fmt.Sprintf("%s (patched %s)", parent.Name, at.Format("2006-01-02"))
	}
	props := map[string]string{}
	for k, v := range parent.Properties {
		if s, ok := v.(string); ok && bootProperty(k) {
			props[k] = s
		}
	}
	props[PropParent] = parent.ID
	props[PropFamily] = family
	props[PropFixes] = compact(fixStrings(req.Fixes))
	props[PropAdvisories] = compact(req.Advisories)
	props[PropPatchedAt] = at.Format(time.RFC3339)

	progress("publish", "creating image %q", name)
	img, err := images.Create(ctx, c, images.CreateOpts{Name: name, DiskFormat: parent.DiskFormat,
		ContainerFormat: parent.ContainerFormat, MinDisk: parent.MinDiskGigabytes, MinRAM: parent.MinRAMMegabytes,
		Tags: parent.Tags, Properties: props}).Extract()
	if err != nil {
		return nil, fmt.Errorf("creating glance image %q: %w", name, err)
	}
	res, err := upload(ctx, c, img.ID, req, st.Size())
	if err != nil {
		// a queued or killed image without data is of no use: remove it
		if derr := images.Delete(context.WithoutCancel(ctx), c, img.ID).ExtractErr(); derr != nil {
			err = errors.Join(err, fmt.Errorf("deleting the incomplete image %s: %w", img.ID, derr))
		}
		return nil, err
	}
	res.Name, res.Family, res.Properties, res.PatchedAt = name, family, props, at
	if req.HideParent && !parent.Hidden {
		progress("publish", "hiding parent %s", parent.ID)
		if _, err := images.Update(ctx, c, parent.ID, images.UpdateOpts{images.ReplaceImageHidden{NewHidden: true}}).Extract(); err != nil {
			return res, fmt.Errorf("image %s published, but hiding its parent %s failed: %w", res.GlanceID, parent.ID, err)
		}
	}
	res.ParentHidden = req.HideParent || parent.Hidden
	err = store.SaveLineage(ctx, db, store.Lineage{GlanceID: res.GlanceID, ParentGlanceID: parent.ID, Family: family,
		Name: name, ImageID: req.ImageID, ParentImageID: req.ParentImageID, Fixes: req.Fixes,
		Advisories: req.Advisories, ParentHidden: res.ParentHidden, PatchedAt: at})
	if err != nil {
		return res, fmt.Errorf("image %s published: %w", res.GlanceID, err)
	}
	progress("publish", "published %s as %s", name, res.GlanceID)
	return res, nil
}

// upload streams the file and checks that Glance stored what was sent.
func upload(ctx context.Context, c *gophercloud.ServiceClient, id string, req Request, size int64) (*Result, error) {
	f, err := os.Open(req.File)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", req.File, err)
	}
	defer f.Close()
	h := sha512.New()
	pr := &progressReader{r: io.TeeReader(f, h), total: size, fn: req.Progress}
	if err := imagedata.Upload(ctx, c, id, pr).ExtractErr(); err != nil {
		return nil, fmt.Errorf("uploading %s to glance image %s: %w", req.File, id, err)
	}
	img, err := images.Get(ctx, c, id).Extract()
	if err != nil {
		return nil, fmt.Errorf("reading glance image %s after the upload: %w", id, err)
	}
	if img.Status != images.ImageStatusActive {
		return nil, fmt.Errorf("glance image %s is %s after the upload, not active", id, img.Status)
	}
	algo, _ := img.Properties["os_hash_algo"].(string)
	value, _ := img.Properties["os_hash_value"].(string)
	if sum := hex.EncodeToString(h.Sum(nil)); algo == "sha512" && value != sum {
		return nil, fmt.Errorf("glance image %s: stored data has sha512 %s, sent %s", id, value, sum)
	}
	if img.SizeBytes != size {
		return nil, fmt.Errorf("glance image %s: stored %d bytes, sent %d", id, img.SizeBytes, size)
	}
	return &Result{GlanceID: id, DiskFormat: img.DiskFormat, Size: img.SizeBytes}, nil
}

type progressReader struct {
	r           io.Reader
	done, total int64
	last        time.Time
	fn          func(store.Progress)
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.done += int64(n)
	if p.fn != nil && (time.Since(p.last) > 200*time.Millisecond || err == io.EOF) {
		p.last = time.Now()
		p.fn(store.Progress{Step: "upload", BytesDone: p.done, BytesTotal: p.total})
	}
	return n, err
}

func fixStrings(fixes []store.Fix) []string {
	out := make([]string, 0, len(fixes))
	for _, f := range fixes {
		out = append(out, f.Name+" "+f.From+"->"+f.To)
	}
	sort.Strings(out)
	return out
}

// compact joins items with ", " within Glance's 255 characters; what does
// not fit is counted ("... +3 more"); the database keeps the full lists.
// Room for the count is kept at every step, so it always fits.
func compact(items []string) string {
	var b strings.Builder
	for i, it := range items {
		sep := ""
		if i > 0 {
			sep = ", "
		}
		need := b.Len() + len(sep) + len(it)
		if left := len(items) - i - 1; left > 0 {
			need += len(" +" + strconv.Itoa(left) + " more")
		}
		if need > maxProperty {
			return strings.TrimSpace(b.String() + " +" + strconv.Itoa(len(items)-i) + " more")
		}
		b.WriteString(sep)
		b.WriteString(it)
	}
	return b.String()
}
