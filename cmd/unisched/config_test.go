package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// `unisched config sample` prints the samples in etc/ byte for byte, and
// `config check` accepts them and names the line of a bad INI file.
func TestConfigCommand(t *testing.T) {
	for _, tc := range []struct {
		args []string
		file string
	}{
		{[]string{"sample"}, "../../etc/unisched.yaml"},
		{[]string{"sample", "--format", "ini"}, "../../etc/unisched.conf.sample"},
	} {
		var out bytes.Buffer
		if err := runConfig(tc.args, &out); err != nil {
			t.Fatalf("%v: %v", tc.args, err)
		}
		want, err := os.ReadFile(tc.file)
		if err != nil {
			t.Fatal(err)
		}
		if out.String() != string(want) {
			t.Errorf("config %v differs from %s", tc.args, tc.file)
		}
	}
	for _, file := range []string{"../../etc/unisched.yaml", "../../etc/unisched.conf.sample"} {
		var out bytes.Buffer
		if err := runConfig([]string{"check", "--config", file}, &out); err != nil || !strings.Contains(out.String(), "configuration ok") {
			t.Errorf("check %s: %v %q", file, err, out.String())
		}
	}
	bad := filepath.Join(t.TempDir(), "unisched.conf")
	if err := os.WriteFile(bad, []byte("[scheduler]\nfilters = [{\"name\": \"nosuch\"}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := runConfig([]string{"check", "--config", bad}, new(bytes.Buffer)); err == nil || !strings.Contains(err.Error(), "nosuch") {
		t.Errorf("check of an unknown filter: %v", err)
	}
	if err := os.WriteFile(bad, []byte("[database]\nurl = x\n[placement]\nlisten 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := runConfig([]string{"check", "--config", bad}, new(bytes.Buffer)); err == nil || !strings.Contains(err.Error(), bad+":4:") {
		t.Errorf("check of a bad line: %v", err)
	}
	if err := runConfig([]string{"sample", "--format", "toml"}, new(bytes.Buffer)); err == nil {
		t.Error("an unknown sample format was accepted")
	}
}

// `config check` refuses the pool sizes serve refuses.
func TestConfigCheckPoolSizes(t *testing.T) {
	t.Setenv("UNISCHED_DATABASE_MAX_CONNS", "4")
	t.Setenv("UNISCHED_DATABASE_MIN_IDLE_CONNS", "5")
	err := runConfig([]string{"check"}, new(bytes.Buffer))
	if err == nil || !strings.Contains(err.Error(), "database.min_idle_conns 5 must be between 0 and database.max_conns (4)") {
		t.Fatalf("config check with min_idle_conns over max_conns: %v", err)
	}
}
