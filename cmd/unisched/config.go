package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/unisched/unisched/etc"
	"github.com/unisched/unisched/internal/config"
)

const configUsage = `usage: unisched config sample [--format yaml|ini]
       unisched config check [--config FILE]

sample  prints the annotated sample with every key and its default: YAML
        (etc/unisched.yaml) or oslo-style INI (etc/unisched.conf.sample)
check   reads FILE (YAML, or INI for .conf/.ini) and the environment as serve
        would and says what is wrong, with the line for INI files
`

// runConfig is `unisched config`: the samples an operator starts from and a
// check of a file before a restart.
func runConfig(args []string, stdout io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, configUsage)
		return errors.New("config: a subcommand is needed")
	}
	switch args[0] {
	case "sample":
		fs := flag.NewFlagSet("config sample", flag.ContinueOnError)
		format := fs.String("format", "yaml", "yaml or ini")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		switch *format {
		case "yaml":
			_, err := stdout.Write(etc.UnischedYAML)
			return err
		case "ini", "conf", "oslo":
			out, err := config.INISample(etc.UnischedYAML)
			if err != nil {
				return err
			}
			_, err = stdout.Write(out)
			return err
		}
		return fmt.Errorf("config sample: unknown format %q (yaml or ini)", *format)
	case "check":
		fs := flag.NewFlagSet("config check", flag.ContinueOnError)
		path := fs.String("config", os.Getenv("UNISCHED_CONFIG"), "configuration file (YAML, or INI for .conf/.ini)")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		cfg, err := config.Load(*path)
		if err != nil {
			return err
		}
		if _, err := schedulerEngine(cfg.Scheduler); err != nil {
			return fmt.Errorf("scheduler: %w", err)
		}
		if _, err := poolConfig(cfg.Database); err != nil {
			return err
		}
		if cfg.Database.URL == "" {
			fmt.Fprintln(stdout, "warning: no database.url (serve and migrate need one)")
		}
		fmt.Fprintln(stdout, "configuration ok")
		return nil
	case "-h", "--help", "help":
		fmt.Fprint(stdout, configUsage)
		return nil
	}
	fmt.Fprint(os.Stderr, configUsage)
	return fmt.Errorf("config: unknown subcommand %q", args[0])
}
