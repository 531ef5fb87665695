package main

import (
	"context"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/unisched/unisched/internal/pgtest"
)

// Under systemd (Type=notify) serve says READY=1 only once its listener is
// bound, and STOPPING=1 when it shuts down.
func TestServeNotifiesSystemd(t *testing.T) {
	const addr = "127.0.0.1:26001" // the packaging range
	sock := filepath.Join(t.TempDir(), "notify.sock")
	ln, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	t.Setenv("NOTIFY_SOCKET", sock)
	t.Setenv("UNISCHED_DATABASE_URL", pgtest.URL(t))
	t.Setenv("UNISCHED_PLACEMENT_LISTEN", addr)
	t.Setenv("UNISCHED_CONTAINER_API_LISTEN", "off")
	t.Setenv("UNISCHED_LOG_LEVEL", "error")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- runServe(ctx, nil) }()

	read := func() string {
		buf := make([]byte, 256)
		_ = ln.SetReadDeadline(time.Now().Add(2 * time.Minute))
		n, err := ln.Read(buf)
		if err != nil {
			select {
			case err := <-done:
				t.Fatalf("serve ended: %v", err)
			default:
			}
			t.Fatalf("no notification: %v", err)
		}
		return string(buf[:n])
	}
	if msg := read(); msg != "READY=1" {
		t.Fatalf("first notification %q, want READY=1", msg)
	}
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		t.Fatalf("READY=1 before the listener answers: %v", err)
	}
	c.Close()
	cancel()
	if msg := read(); msg != "STOPPING=1" {
		t.Errorf("notification at shutdown %q, want STOPPING=1", msg)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
