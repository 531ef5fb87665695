// Package store holds all SQL of the image security server: images, their
// basic information and their packages (migrations/000006_imagesec). Each
// function takes (ctx, db pg.DBTX, ...) and never begins a transaction;
// writes that must land together take a pgx.Tx.
package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/unisched/unisched/imagesec/inspect"
	"github.com/unisched/unisched/internal/pg"
)

// ErrNotFound: no image with that id.
var ErrNotFound = errors.New("image not found")

// StatusInspected is the status of an image whose inspection is stored.
const StatusInspected = "inspected"

// Image is one row of imagesec_images, with the summary list shows.
type Image struct {
	ID          int64     `json:"id"`
	Source      string    `json:"source"`
	Name        string    `json:"name"`
	Checksum    string    `json:"checksum"`
	Format      string    `json:"format"`
	Size        int64     `json:"size"`
	VirtualSize int64     `json:"virtual_size"`
	Status      string    `json:"status"`
	InspectedAt time.Time `json:"inspected_at"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`

	// From the image's information and packages, when inspected.
	Distro   string `json:"distro"`
	Release  string `json:"release"`
	Packages int    `json:"packages"`
}

// Info is the basic information of an image (imagesec_image_info).
type Info struct {
	OS             inspect.OS          `json:"os"`
	Kernel         string              `json:"kernel"`
	Kernels        []string            `json:"kernels"`
	PackageFormat  string              `json:"package_format"`
	PackageManager string              `json:"package_manager"`
	PartitionTable string              `json:"partition_table"`
	RootPartition  int                 `json:"root_partition"`
	Partitions     []inspect.Partition `json:"partitions"`
}

// Detail is an image with its information.
type Detail struct {
	Image
	Info Info `json:"info"`
}

const upsertImage = `
INSERT INTO imagesec_images (source, name, checksum, format, size, virtual_size, status, inspected_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT (source, checksum) DO UPDATE
SET name = EXCLUDED.name, format = EXCLUDED.format, size = EXCLUDED.size,
    virtual_size = EXCLUDED.virtual_size, status = EXCLUDED.status,
    inspected_at = EXCLUDED.inspected_at, updated_at = now()
RETURNING id`

const upsertInfo = `
INSERT INTO imagesec_image_info (image_id, os_family, distro, distro_version, distro_release, codename,
    pretty_name, id_like, kernel, kernels, package_format, package_manager, partition_table,
    root_partition, partitions, os_name)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
ON CONFLICT (image_id) DO UPDATE
SET os_family = EXCLUDED.os_family, distro = EXCLUDED.distro, distro_version = EXCLUDED.distro_version,
    distro_release = EXCLUDED.distro_release, codename = EXCLUDED.codename,
    pretty_name = EXCLUDED.pretty_name, id_like = EXCLUDED.id_like, kernel = EXCLUDED.kernel,
    kernels = EXCLUDED.kernels, package_format = EXCLUDED.package_format,
    package_manager = EXCLUDED.package_manager, partition_table = EXCLUDED.partition_table,
    root_partition = EXCLUDED.root_partition, partitions = EXCLUDED.partitions, os_name = EXCLUDED.os_name`

const deletePackages = `DELETE FROM imagesec_packages WHERE image_id = $1`

// insertPackages writes all packages in one statement from parallel arrays.
const insertPackages = `
INSERT INTO imagesec_packages (image_id, name, version, architecture, source, source_version, status)
SELECT $1, * FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[])`

// SaveInspection stores an inspection of the image at source: the image row
// (the existing one when the same source and checksum were seen before),
// its information and its package list, replacing any earlier ones. It
// takes a transaction so that a reader never sees an image with half its
// packages.
func SaveInspection(ctx context.Context, tx pgx.Tx, source, name string, r *inspect.Report) (int64, error) {
	name, r = text(name), storableReport(r)
	var id int64
	err := tx.QueryRow(ctx, upsertImage, source, name, r.Checksum, r.Format, r.FileSize, r.VirtualSize,
		StatusInspected, r.InspectedAt).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("storing image %s: %w", source, err)
	}
	parts, err := json.Marshal(r.Partitions)
	if err != nil {
		return 0, fmt.Errorf("encoding partitions: %w", err)
	}
	idLike := r.OS.IDLike
	if idLike == nil {
		idLike = []string{}
	}
	kernels := r.Kernels
	if kernels == nil {
		kernels = []string{}
	}
	b := &pgx.Batch{}
	b.Queue(upsertInfo, id, r.OS.Family, r.OS.Distro, r.OS.Version, r.OS.Release, r.OS.Codename,
		r.OS.PrettyName, idLike, r.Kernel(), kernels, r.PackageFormat, r.PackageManager,
		r.PartitionTable, r.RootPartition, parts, r.OS.Name)
	b.Queue(deletePackages, id)
	n := len(r.Packages)
	names, versions, archs := make([]string, n), make([]string, n), make([]string, n)
	sources, sourceVersions, statuses := make([]string, n), make([]string, n), make([]string, n)
	for i, p := range r.Packages {
		names[i], versions[i], archs[i] = p.Name, p.Version, p.Architecture
		sources[i], sourceVersions[i], statuses[i] = p.Source, p.SourceVersion, p.Status
	}
	b.Queue(insertPackages, id, names, versions, archs, sources, sourceVersions, statuses)
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return 0, fmt.Errorf("storing information and %d packages of image %d: %w", n, id, err)
	}
	return id, nil
}

const selectImages = `
SELECT i.id, i.source, i.name, i.checksum, i.format, i.size, i.virtual_size, i.status,
       i.inspected_at, i.created_at, i.updated_at,
       coalesce(f.distro, ''), coalesce(f.distro_release, ''),
       (SELECT count(*) FROM imagesec_packages p WHERE p.image_id = i.id)
FROM imagesec_images i LEFT JOIN imagesec_image_info f ON f.image_id = i.id`

func scanImage(row pgx.Row) (Image, error) {
	var im Image
	var inspected *time.Time
	err := row.Scan(&im.ID, &im.Source, &im.Name, &im.Checksum, &im.Format, &im.Size, &im.VirtualSize,
		&im.Status, &inspected, &im.CreatedAt, &im.UpdatedAt, &im.Distro, &im.Release, &im.Packages)
	if inspected != nil {
		im.InspectedAt = *inspected
	}
	return im, err
}

// ListImages returns every image, oldest first.
func ListImages(ctx context.Context, db pg.DBTX) ([]Image, error) {
	rows, err := db.Query(ctx, selectImages+` ORDER BY i.id`)
	if err != nil {
		return nil, fmt.Errorf("listing images: %w", err)
	}
	images, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Image, error) { return scanImage(r) })
	if err != nil {
		return nil, fmt.Errorf("listing images: %w", err)
	}
	return images, nil
}

const selectInfo = `
SELECT os_family, distro, distro_version, distro_release, codename, pretty_name, id_like, kernel,
       kernels, package_format, package_manager, partition_table, root_partition, partitions, os_name
FROM imagesec_image_info WHERE image_id = $1`

// GetImage returns one image with its information (zero Info when it has
// none); ErrNotFound when there is no such image.
func GetImage(ctx context.Context, db pg.DBTX, id int64) (*Detail, error) {
	im, err := scanImage(db.QueryRow(ctx, selectImages+` WHERE i.id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("image %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("reading image %d: %w", id, err)
	}
	d := &Detail{Image: im}
	var parts []byte
	f := &d.Info
	err = db.QueryRow(ctx, selectInfo, id).Scan(&f.OS.Family, &f.OS.Distro, &f.OS.Version, &f.OS.Release,
		&f.OS.Codename, &f.OS.PrettyName, &f.OS.IDLike, &f.Kernel, &f.Kernels, &f.PackageFormat,
		&f.PackageManager, &f.PartitionTable, &f.RootPartition, &parts, &f.OS.Name)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return d, nil
	case err != nil:
		return nil, fmt.Errorf("reading information of image %d: %w", id, err)
	}
	if err := json.Unmarshal(parts, &f.Partitions); err != nil {
		return nil, fmt.Errorf("decoding partitions of image %d: %w", id, err)
	}
	if len(f.OS.IDLike) == 0 {
		f.OS.IDLike = nil
	}
	return d, nil
}

const selectPackages = `
SELECT name, version, architecture, source, source_version, status
FROM imagesec_packages WHERE image_id = $1 ORDER BY name, architecture`

// ListPackages returns an image's packages by name; ErrNotFound when there
// is no such image.
func ListPackages(ctx context.Context, db pg.DBTX, id int64) ([]inspect.Package, error) {
	var exists bool
	if err := db.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM imagesec_images WHERE id = $1)`, id).Scan(&exists); err != nil {
		return nil, fmt.Errorf("reading image %d: %w", id, err)
	}
	if !exists {
		return nil, fmt.Errorf("image %d: %w", id, ErrNotFound)
	}
	rows, err := db.Query(ctx, selectPackages, id)
	if err != nil {
		return nil, fmt.Errorf("listing packages of image %d: %w", id, err)
	}
	pkgs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (inspect.Package, error) {
		var p inspect.Package
		err := r.Scan(&p.Name, &p.Version, &p.Architecture, &p.Source, &p.SourceVersion, &p.Status)
		return p, err
	})
	if err != nil {
		return nil, fmt.Errorf("listing packages of image %d: %w", id, err)
	}
	return pkgs, nil
}

// text is s as PostgreSQL text (and jsonb) can hold it: NUL characters
// and bytes that are not UTF-8 become U+FFFD. A guest's files are
// untrusted (a damaged or hostile dpkg status, os-release or partition
// label): one odd byte must not fail the store of the whole inspection
// with the database's encoding error.
func text(s string) string {
	if strings.IndexByte(s, 0) < 0 && utf8.ValidString(s) {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}

func texts(ss []string) []string {
	if ss == nil {
		return nil
	}
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = text(s)
	}
	return out
}

// storableReport is a copy of r with text applied to every string read
// from the image; the caller's report is left as it is.
func storableReport(r *inspect.Report) *inspect.Report {
	c := *r
	c.Format, c.Checksum, c.PartitionTable = text(r.Format), text(r.Checksum), text(r.PartitionTable)
	c.PackageFormat, c.PackageManager = text(r.PackageFormat), text(r.PackageManager)
	o := &c.OS
	o.Family, o.Distro, o.IDLike, o.Name = text(o.Family), text(o.Distro), texts(o.IDLike), text(o.Name)
	o.Version, o.Release, o.Codename, o.PrettyName = text(o.Version), text(o.Release), text(o.Codename), text(o.PrettyName)
	c.Kernels = texts(r.Kernels)
	if r.Partitions != nil {
		c.Partitions = make([]inspect.Partition, len(r.Partitions))
		for i, p := range r.Partitions {
			p.Type, p.Name, p.Filesystem, p.Label, p.Note = text(p.Type), text(p.Name), text(p.Filesystem), text(p.Label), text(p.Note)
			c.Partitions[i] = p
		}
	}
	if r.Packages != nil {
		// Two names that differ only in unstorable bytes become one: the
		// first is kept (a package is one row per name and architecture).
		c.Packages = make([]inspect.Package, 0, len(r.Packages))
		type key struct{ name, arch string }
		seen := make(map[key]bool, len(r.Packages))
		for _, p := range r.Packages {
			p.Name, p.Version, p.Architecture = text(p.Name), text(p.Version), text(p.Architecture)
			p.Source, p.SourceVersion, p.Status = text(p.Source), text(p.SourceVersion), text(p.Status)
			if k := (key{p.Name, p.Architecture}); !seen[k] {
				seen[k] = true
				c.Packages = append(c.Packages, p)
			}
		}
	}
	return &c
}
