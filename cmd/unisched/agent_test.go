package main

import (
	"testing"
	"time"

	"github.com/unisched/unisched/internal/config"
)

// The sample agent configuration loads and describes a valid two-cell host.
func TestAgentSampleConfig(t *testing.T) {
	cfg, err := config.Load("../../etc/agent.sample.yaml")
	if err != nil {
		t.Fatal(err)
	}
	ac := agentConfig(cfg.Agent)
	if err := ac.Defaults(); err != nil {
		t.Fatal(err)
	}
	if ac.Host != "host-a" || len(ac.Cells) != 2 || ac.Cells[1].CPUs != "1" || ac.Cells[1].MemoryMB != 2048 ||
		ac.DedicatedCPUs != "1" || ac.SharedCPUs != "0" || ac.DiskGB != 20 || ac.CPUAllocationRatio != 4 ||
		ac.HeartbeatInterval != 30*time.Second || ac.RetryInterval != time.Second || !ac.ClampCpusets {
		t.Fatalf("agent config %+v", ac)
	}
}

func TestAgentConfigFromEnvironment(t *testing.T) {
	t.Setenv("UNISCHED_AGENT_HOST", "h-env")
	t.Setenv("UNISCHED_AGENT_HEARTBEAT_INTERVAL", "5s")
	t.Setenv("UNISCHED_AGENT_DEDICATED_CPUS", "0")
	cfg, err := config.Load("")
	if err != nil {
		t.Fatal(err)
	}
	ac := agentConfig(cfg.Agent)
	if ac.Host != "h-env" || ac.HeartbeatInterval != 5*time.Second || ac.DedicatedCPUs != "0" ||
		ac.Listen != "127.0.0.1:9518" || ac.ServeURL != "http://127.0.0.1:9517" || ac.Token != "admin:admin" {
		t.Fatalf("agent config %+v", ac)
	}
}
