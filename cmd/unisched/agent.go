package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"

	"github.com/unisched/unisched/bridge/agentproto"
	"github.com/unisched/unisched/internal/config"
	"github.com/unisched/unisched/zunext/agent"
)

const agentUsage = `usage: unisched agent [--config FILE] [--host NAME] [--listen ADDR] [--serve-url URL] [--docker-host URL]

Runs the per-host agent: registers the host with serve's container API,
runs the containers serve places on it with Docker, and reports their state.
Configuration: the agent section of etc/unisched.yaml (sample with a configured
topology: etc/agent.sample.yaml), each key overridable as UNISCHED_AGENT_<KEY>;
the flags override both.
`

func runAgent(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("agent", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(fs.Output(), agentUsage) }
	path := fs.String("config", os.Getenv("UNISCHED_CONFIG"), "configuration file (YAML)")
	host := fs.String("host", "", "host name (agent.host)")
	listen := fs.String("listen", "", "listen address (agent.listen)")
	serveURL := fs.String("serve-url", "", "serve's container API URL (agent.serve_url)")
	dockerHost := fs.String("docker-host", "", "dockerd address (agent.docker_host)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	cfg, err := config.Load(*path)
	if err != nil {
		return err
	}
	log := newLogger(cfg.Log)
	slog.SetDefault(log)
	ac := agentConfig(cfg.Agent)
	for dst, v := range map[*string]string{&ac.Host: *host, &ac.Listen: *listen, &ac.ServeURL: *serveURL, &ac.DockerHost: *dockerHost} {
		if v != "" {
			*dst = v
		}
	}
	ac.Logger = log
	var a *agent.Agent
	// probes, /metrics, request metrics and logs (cmd/unisched/agent_obs.go)
	if ac.Wrap, err = agentObservability(func() *agent.Agent { return a }, log); err != nil {
		return err
	}
	if a, err = agent.New(ac); err != nil {
		return err
	}
	defer a.Close()
	c := a.Config()
	log.Info("agent starting", "host", c.Host, "dedicated_cpus", c.DedicatedCPUs, "shared_cpus", c.SharedCPUs, "cells", len(c.Cells))
	return a.Run(ctx)
}

// agentConfig maps the configuration file's agent section onto the agent.
func agentConfig(c config.Agent) agent.Config {
	out := agent.Config{
		Host: c.Host, Listen: c.Listen, AdvertiseURL: c.AdvertiseURL, ServeURL: c.ServeURL, Token: c.Token,
		DockerHost: c.DockerHost, NetworkMode: c.NetworkMode, ClampCpusets: c.ClampCpusets,
		DedicatedCPUs: c.DedicatedCPUs, SharedCPUs: c.SharedCPUs, DiskGB: c.DiskGB, AvailabilityZone: c.AvailabilityZone,
		CPUAllocationRatio: c.CPUAllocationRatio, RAMAllocationRatio: c.RAMAllocationRatio,
		DiskAllocationRatio: c.DiskAllocationRatio, ReservedMemoryMB: c.ReservedMemoryMB,
		StateFile: c.StateFile, HeartbeatInterval: c.HeartbeatInterval, RetryInterval: c.RetryInterval,
		RequestTimeout: c.RequestTimeout,
	}
	for _, cell := range c.Cells {
		out.Cells = append(out.Cells, agentproto.Cell{ID: cell.ID, CPUs: cell.CPUs, Siblings: cell.Siblings, MemoryMB: cell.MemoryMB})
	}
	return out
}
