package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/unisched/unisched/imagesec"
	"github.com/unisched/unisched/imagesec/advise"
	"github.com/unisched/unisched/imagesec/collect"
	"github.com/unisched/unisched/imagesec/publish"
	"github.com/unisched/unisched/imagesec/store"
)

// pipeline runs `images collect|publish|jobs`. collect and publish run
// as jobs of a runner in this process (recorded like serve's, so `jobs`
// and GET /v1/images/jobs show them) and print their progress.
func (c imagesCLI) pipeline(ctx context.Context, sub string, args []string) error {
	fs, cf := c.flags(sub, "work directory (default imagesec.work_dir)")
	cfgPath, format, workDir, quiet := cf.config, cf.format, cf.workDir, cf.quiet
	watch := fs.Bool("watch", false, "jobs ID: follow the job until it ends")
	keep := fs.Bool("keep-files", false, "collect: keep the downloaded images")
	name := fs.String("name", "", "publish: the new image's name (default \"<parent name> (patched <date>)\")")
	family := fs.String("family", "", "publish: the image family (default the parent's)")
	hide := fs.Bool("hide-parent", false, "publish: set os_hidden on the parent")
	file := fs.String("file", "", "publish: the image file (default: the upgrade's result)")
	parent := fs.String("parent", "", "publish: the parent's Glance id (default: the image the upgrade started from)")
	pos, err := cf.parse(fs, args)
	if err != nil {
		return err
	}
	var id int64
	switch {
	case sub == "collect" && len(pos) != 0:
		return fmt.Errorf("images collect takes no argument, got %d", len(pos))
	case sub == "publish" && len(pos) != 1 && *file == "":
		return fmt.Errorf("images publish takes an image id (an upgrade's result), or --file and --parent")
	case sub == "jobs" && len(pos) > 1:
		return fmt.Errorf("images jobs takes at most one job id")
	case sub == "jobs" && *watch && len(pos) != 1:
		return fmt.Errorf("images jobs --watch needs a job id")
	}
	if len(pos) == 1 {
		if id, err = strconv.ParseInt(pos[0], 10, 64); err != nil || id <= 0 {
			return fmt.Errorf("id %q is not a positive integer", pos[0])
		}
	}
	cfg, pool, err := openImagesDB(ctx, *cfgPath)
	if err != nil {
		return err
	}
	defer pool.Close()
	if *workDir != "" {
		cfg.Imagesec.WorkDir = *workDir
	}

	if sub == "jobs" {
		if id == 0 {
			jobs, err := store.ListJobs(ctx, pool, 50)
			if err != nil {
				return dbHint(err)
			}
			if *format == "json" {
				return c.json(jobs)
			}
			tw := c.table("ID", "KIND", "STATE", "IMAGE", "STEP", "PROGRESS", "CREATED", "ERROR")
			for _, j := range jobs {
				row(tw, j.ID, j.Kind, j.State, imageCell(j.ImageID), j.Progress.Step, progressCell(j.Progress), stamp(j.CreatedAt), j.Error)
			}
			return tw.Flush()
		}
		if *watch {
			return c.follow(ctx, pool, id, *format, *quiet, nil)
		}
		j, err := store.GetJob(ctx, pool, id)
		if err != nil {
			return dbHint(err)
		}
		return c.printJob(j, *format)
	}

	// collect and publish: a runner of this process, stopped (its job
	// failed as interrupted) if the command is interrupted
	quietLog := slog.New(slog.NewTextHandler(c.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	r := newImagesecRunner(pool, cfg, quietLog)
	if err := r.Start(ctx); err != nil {
		return dbHint(err)
	}
	defer r.Stop()
	var j *store.Job
	if sub == "collect" {
		j, err = r.Submit(ctx, store.JobCollect, 0, imagesec.CollectParams{KeepFiles: *keep})
	} else {
		j, err = r.Submit(ctx, store.JobPublish, id, imagesec.PublishParams{File: *file, ParentGlanceID: *parent,
			Name: *name, Family: *family, HideParent: *hide})
	}
	if err != nil {
		return dbHint(err)
	}
	if !*quiet {
		fmt.Fprintf(c.stderr, "%s: job %d\n", sub, j.ID)
	}
	return c.follow(ctx, pool, j.ID, *format, *quiet, r)
}

// follow prints a job's progress until it ends, then the job; a failed
// job is the command's error.
func (c imagesCLI) follow(ctx context.Context, pool *pgxpool.Pool, id int64, format string, quiet bool, r *imagesec.Runner) error {
	last := ""
	t0 := time.Now()
	for {
		j, err := store.GetJob(ctx, pool, id)
		if err != nil {
			return dbHint(err)
		}
		if line := progressLine(j); !quiet && line != last && j.State == store.JobRunning {
			fmt.Fprintln(c.stderr, line)
			last = line
		}
		if j.Done() {
			if !quiet {
				fmt.Fprintf(c.stderr, "job %d %s after %v\n", j.ID, j.State, time.Since(t0).Round(time.Millisecond))
			}
			if err := c.printJob(j, format); err != nil {
				return err
			}
			if j.State == store.JobFailed {
				return fmt.Errorf("job %d (%s) failed: %s", j.ID, j.Kind, j.Error)
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(300 * time.Millisecond):
		}
	}
}

func progressLine(j *store.Job) string {
	p := j.Progress
	s := p.Step
	if p.StepsTotal > 0 {
		s += fmt.Sprintf(" [%d/%d]", p.StepsDone, p.StepsTotal)
	}
	if p.BytesTotal > 0 {
		s += fmt.Sprintf(" %s of %s (%.0f%%)", humanBytes(p.BytesDone), humanBytes(p.BytesTotal), 100*float64(p.BytesDone)/float64(p.BytesTotal))
	}
	if p.Message != "" && p.BytesTotal == 0 {
		s += " " + p.Message
	}
	return strings.TrimSpace(s)
}

func progressCell(p store.Progress) string {
	switch {
	case p.BytesTotal > 0:
		return fmt.Sprintf("%.0f%%", 100*float64(p.BytesDone)/float64(p.BytesTotal))
	case p.StepsTotal > 0:
		return fmt.Sprintf("%d/%d", p.StepsDone, p.StepsTotal)
	}
	return ""
}

func imageCell(id int64) string {
	if id == 0 {
		return ""
	}
	return strconv.FormatInt(id, 10)
}

// printJob prints a finished or running job: its result's summary in a
// table, or the whole job as JSON.
func (c imagesCLI) printJob(j *store.Job, format string) error {
	if format == "json" {
		return c.json(j)
	}
	fmt.Fprintf(c.stdout, "job %d: %s %s", j.ID, j.Kind, j.State)
	if j.Error != "" {
		fmt.Fprintf(c.stdout, ": %s", j.Error)
	}
	fmt.Fprintln(c.stdout)
	if j.State != store.JobSucceeded {
		return nil
	}
	switch j.Kind {
	case store.JobCollect:
		var res collect.Result
		if err := json.Unmarshal(j.Result, &res); err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "%d listed, %d inspected, %d skipped, %d failed, %s downloaded\n",
			res.Listed, res.Inspected, res.Skipped, res.Failed, humanBytes(res.Bytes))
		tw := c.table("GLANCE ID", "NAME", "FORMAT", "ACTION", "IMAGE", "REASON")
		for _, im := range res.Images {
			row(tw, im.GlanceID, im.Name, im.DiskFormat, im.Action, imageCell(im.ImageID), im.Reason)
		}
		return tw.Flush()
	case store.JobAdvise:
		var plan advise.Plan
		if err := json.Unmarshal(j.Result, &plan); err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "image %d: %d of %d packages to upgrade (%d current in the feed)\n", j.ImageID, len(plan.Upgrades), plan.Checked, plan.Current)
		return nil
	case store.JobPublish:
		var res publish.Result
		if err := json.Unmarshal(j.Result, &res); err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "glance image %s %q (family %s, parent hidden: %v)\n", res.GlanceID, res.Name, res.Family, res.ParentHidden)
		return nil
	}
	fmt.Fprintf(c.stdout, "%s\n", j.Result)
	return nil
}
