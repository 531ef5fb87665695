package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/unisched/unisched/imagesec"
	"github.com/unisched/unisched/imagesec/inspect"
	"github.com/unisched/unisched/imagesec/store"
	"github.com/unisched/unisched/internal/config"
	"github.com/unisched/unisched/migrations"
)

const imagesUsage = `usage: unisched images <command> [flags]

commands:
  inspect PATH   inspect a qcow2 or raw image file (no boot, no mount) and store the result
  list           list stored images
  show ID        an image's basic information and partitions
  packages ID    an image's installed packages
  advise ID      compare an image's packages with a fix feed and/or an advisory file
                 (--feed URL|PATH, --advisories FILE); stores and prints the plan
  upgrade ID     apply the advised upgrades offline to a copy of the image (--feed URL|PATH,
                 --out PATH, --docker-host URL); inspects and stores the result
  resolve GLANCE_ID | --family F
                 the Glance image to boot: the newest patched image published from it (or
                 in the family), else the image itself; prints its id
  collect        collect from Glance (imagesec.glance.*): new or changed images downloaded,
                 inspected and stored (--keep-files keeps the downloads)
  publish ID     upload an upgraded image to Glance as a new image of its parent's family
                 (--name, --family, --hide-parent; or --file PATH --parent GLANCE_ID)
  jobs [ID]      image jobs of every process (collect, inspect, advise, upgrade, publish);
                 --watch follows job ID until it ends

flags (anywhere after the command):
  -f table|json  output format (default table)
  --config FILE  configuration file (YAML); the database is database.url / UNISCHED_DATABASE_URL
  --work-dir DIR where inspect converts qcow2 to raw (default: the system temp dir)
  -q             no progress on stderr
`

// imagesCLI carries the output streams so tests can read them.
type imagesCLI struct {
	stdout, stderr io.Writer
}

// runImages is `unisched images ...`.
func runImages(ctx context.Context, args []string) error {
	return imagesCLI{stdout: os.Stdout, stderr: os.Stderr}.run(ctx, args)
}

func (c imagesCLI) run(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(c.stdout, imagesUsage)
		return nil
	}
	sub := args[0]
	if sub == "collect" || sub == "publish" || sub == "jobs" {
		return c.pipeline(ctx, sub, args[1:]) // images_jobs.go
	}
	fs, cf := c.flags(sub, "directory for the raw copy of a qcow2 image")
	cfgPath, format, workDir, quiet := cf.config, cf.format, cf.workDir, cf.quiet
	up := upgradeFlags(fs)
	family := fs.String("family", "", "resolve: an image family instead of a Glance id")
	pos, err := cf.parse(fs, args[1:])
	if err != nil {
		return err
	}
	want := map[string]int{"inspect": 1, "list": 0, "show": 1, "packages": 1, "advise": 1, "upgrade": 1, "resolve": 1}
	if sub == "resolve" && *family != "" {
		want[sub] = 0
	}
	n, ok := want[sub]
	if !ok {
		return fmt.Errorf("unknown images command %q\n\n%s", sub, imagesUsage)
	}
	if len(pos) != n {
		return fmt.Errorf("images %s takes %d argument(s), got %d\n\n%s", sub, n, len(pos), imagesUsage)
	}
	var id int64
	if sub == "show" || sub == "packages" || sub == "advise" || sub == "upgrade" {
		if id, err = strconv.ParseInt(pos[0], 10, 64); err != nil || id <= 0 {
			return fmt.Errorf("image id %q is not a positive integer (see unisched images list)", pos[0])
		}
	}
	if sub == "inspect" {
		// Check the file before connecting: a typo is not a database error.
		if _, err := os.Stat(pos[0]); err != nil {
			return err
		}
	}

	_, pool, err := openImagesDB(ctx, *cfgPath)
	if err != nil {
		return err
	}
	defer pool.Close()

	switch sub {
	case "resolve":
		return c.resolve(ctx, pool, pos, *family, *format)
	case "advise":
		return c.advise(ctx, pool, id, up, *format)
	case "upgrade":
		return c.upgrade(ctx, pool, id, up, *format, *workDir, *quiet)
	case "inspect":
		opts := inspect.Options{WorkDir: *workDir}
		if !*quiet {
			opts.Progress = newProgress(c.stderr)
		}
		start := time.Now()
		d, err := imagesec.InspectFile(ctx, pool, pos[0], opts)
		if err != nil {
			return dbHint(err)
		}
		if !*quiet {
			fmt.Fprintf(c.stderr, "inspected %s in %v: image %d, %d packages\n", pos[0], time.Since(start).Round(time.Millisecond), d.ID, d.Packages)
		}
		return c.show(d, *format)
	case "list":
		list, err := store.ListImages(ctx, pool)
		if err != nil {
			return dbHint(err)
		}
		if *format == "json" {
			return c.json(list)
		}
		tw := c.table("ID", "NAME", "FORMAT", "SIZE", "DISTRO", "RELEASE", "PACKAGES", "STATUS", "INSPECTED")
		for _, im := range list {
			row(tw, im.ID, im.Name, im.Format, humanBytes(im.Size), im.Distro, im.Release, im.Packages, im.Status, stamp(im.InspectedAt))
		}
		return tw.Flush()
	case "show":
		d, err := store.GetImage(ctx, pool, id)
		if err != nil {
			return dbHint(err)
		}
		return c.show(d, *format)
	default: // packages
		pkgs, err := store.ListPackages(ctx, pool, id)
		if err != nil {
			return dbHint(err)
		}
		if *format == "json" {
			return c.json(pkgs)
		}
		tw := c.table("NAME", "VERSION", "ARCH", "SOURCE", "SOURCE VERSION", "STATUS")
		for _, p := range pkgs {
			row(tw, p.Name, p.Version, p.Architecture, p.Source, p.SourceVersion, p.Status)
		}
		return tw.Flush()
	}
}

// commonFlags are the flags every images command takes.
type commonFlags struct {
	config, format, workDir *string
	quiet                   *bool
}

// flags is the flag set of `images sub` with the common flags (workDir
// says what --work-dir is for in that command).
func (c imagesCLI) flags(sub, workDir string) (*flag.FlagSet, commonFlags) {
	fs := flag.NewFlagSet("images "+sub, flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	return fs, commonFlags{
		config:  fs.String("config", os.Getenv("UNISCHED_CONFIG"), "configuration file (YAML)"),
		format:  fs.String("f", "table", "output format: table or json"),
		workDir: fs.String("work-dir", "", workDir),
		quiet:   fs.Bool("q", false, "no progress on stderr"),
	}
}

// parse parses args (flags anywhere) and checks the output format; it
// returns the positional arguments.
func (cf commonFlags) parse(fs *flag.FlagSet, args []string) ([]string, error) {
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return nil, err
	}
	if *cf.format != "table" && *cf.format != "json" {
		return nil, fmt.Errorf("unknown output format %q (table or json)", *cf.format)
	}
	return pos, nil
}

// openImagesDB loads the configuration, migrates the database when
// database.migrate says so, and connects; close the pool when done.
func openImagesDB(ctx context.Context, cfgPath string) (*config.Config, *pgxpool.Pool, error) {
	cfg, err := config.Load(cfgPath)
	if err != nil {
		return nil, nil, err
	}
	if cfg.Database.URL == "" {
		return nil, nil, errors.New("no database configured: set UNISCHED_DATABASE_URL or database.url")
	}
	if cfg.Database.Migrate {
		if err := migrations.Up(cfg.Database.URL); err != nil {
			return nil, nil, err
		}
	}
	pool, err := pgxpool.New(ctx, cfg.Database.URL)
	if err != nil {
		return nil, nil, fmt.Errorf("connecting to database: %w", err)
	}
	return cfg, pool, nil
}

// resolve prints the Glance id to boot for a Glance id or a family
// (imagesec.ResolveImage, ResolveFamily), so that a script can boot the
// current patched image: openstack server create --image "$(unisched
// images resolve ID -q)".
func (c imagesCLI) resolve(ctx context.Context, pool *pgxpool.Pool, pos []string, family, format string) error {
	var id, requested string
	var err error
	if family != "" {
		requested = family
		id, err = imagesec.ResolveFamily(ctx, pool, family)
	} else {
		requested = pos[0]
		id, err = imagesec.ResolveImage(ctx, pool, requested)
	}
	if err != nil {
		return dbHint(err)
	}
	if format == "json" {
		return c.json(map[string]any{"glance_id": id, "requested": requested, "patched": id != requested || family != ""})
	}
	fmt.Fprintln(c.stdout, id)
	return nil
}

func (c imagesCLI) show(d *store.Detail, format string) error {
	if format == "json" {
		return c.json(d)
	}
	f := d.Info
	kernels := strings.Join(f.Kernels, ", ")
	if kernels == "" {
		kernels = "(none found)"
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	for _, kv := range [][2]string{
		{"id", strconv.FormatInt(d.ID, 10)}, {"name", d.Name}, {"source", d.Source}, {"checksum", d.Checksum},
		{"format", d.Format}, {"size", fmt.Sprintf("%s (virtual %s)", humanBytes(d.Size), humanBytes(d.VirtualSize))},
		{"status", d.Status}, {"inspected", stamp(d.InspectedAt)},
		{"os", f.OS.Family}, {"distro", fmt.Sprintf("%s %s (%s)", f.OS.Distro, f.OS.Release, f.OS.PrettyName)},
		{"version", f.OS.Version}, {"codename", f.OS.Codename}, {"kernels", kernels},
		{"packages", fmt.Sprintf("%d (%s, %s)", d.Packages, f.PackageFormat, f.PackageManager)},
		{"partition table", f.PartitionTable}, {"root partition", strconv.Itoa(f.RootPartition)},
	} {
		fmt.Fprintf(tw, "%s:\t%s\n", kv[0], kv[1])
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(c.stdout)
	tw = c.table("PART", "START", "SIZE", "TYPE", "NAME", "FILESYSTEM", "LABEL", "NOTE")
	for _, p := range f.Partitions {
		boot := ""
		if p.Bootable {
			boot = "*"
		}
		row(tw, strconv.Itoa(p.Number)+boot, p.Start, humanBytes(p.Size), p.Type, p.Name, p.Filesystem, p.Label, p.Note)
	}
	return tw.Flush()
}

func (c imagesCLI) json(v any) error {
	enc := json.NewEncoder(c.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func (c imagesCLI) table(headers ...string) *tabwriter.Writer {
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(headers, "\t"))
	return tw
}

func row(tw io.Writer, cells ...any) {
	s := make([]string, len(cells))
	for i, c := range cells {
		s[i] = fmt.Sprint(c)
		if s[i] == "" {
			s[i] = "-"
		}
	}
	fmt.Fprintln(tw, strings.Join(s, "\t"))
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTP"[exp])
}

// newProgress prints one line per event, except that a percentage within
// a stage (the qcow2 conversion) is shown every 10 percent, rewritten in
// place on a terminal.
func newProgress(w io.Writer) func(inspect.Event) {
	tty := false
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			tty = true
		}
	}
	last, lastPct, open := "", -10.0, false
	return func(e inspect.Event) {
		if e.Percent >= 0 && e.Stage == last && e.Message == "qcow2 to raw" {
			if e.Percent-lastPct < 10 && (e.Percent < 100 || lastPct >= 100) {
				return
			}
			lastPct = e.Percent
			if tty {
				fmt.Fprintf(w, "\r%s: %3.0f%%", e.Stage, e.Percent)
				open = true
				return
			}
			fmt.Fprintf(w, "%s: %.0f%%\n", e.Stage, e.Percent)
			return
		}
		if open {
			fmt.Fprintln(w)
			open = false
		}
		last, lastPct = e.Stage, e.Percent
		if e.Percent >= 0 {
			fmt.Fprintf(w, "%s: %.0f%% %s\n", e.Stage, e.Percent, e.Message)
			return
		}
		fmt.Fprintf(w, "%s: %s\n", e.Stage, e.Message)
	}
}

// dbHint explains a database without imagesec's tables.
func dbHint(err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "42P01" {
		return fmt.Errorf("%w (the database has no imagesec tables: run `unisched migrate`)", err)
	}
	return err
}

// parseInterspersed lets flags follow positional arguments, as operators
// type them ("images packages 3 -f json").
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}
