package sdnotify

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestNotify(t *testing.T) {
	cases := []struct {
		name, socket string
	}{
		{"path", filepath.Join(t.TempDir(), "notify.sock")},
		{"abstract", fmt.Sprintf("@unisched-sdnotify-test-%d", os.Getpid())},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			name := tc.socket
			if name[0] == '@' {
				name = "\x00" + name[1:]
			}
			ln, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			t.Setenv("NOTIFY_SOCKET", tc.socket)
			for _, msg := range []string{Ready, "STATUS=serving", Stopping} {
				sent, err := Notify(msg)
				if err != nil || !sent {
					t.Fatalf("notify %q: %v %v", msg, sent, err)
				}
				buf := make([]byte, 256)
				_ = ln.SetReadDeadline(time.Now().Add(5 * time.Second))
				n, err := ln.Read(buf)
				if err != nil || string(buf[:n]) != msg {
					t.Fatalf("received %q %v, want %q", buf[:n], err, msg)
				}
			}
		})
	}
	t.Setenv("NOTIFY_SOCKET", "")
	if sent, err := Notify(Ready); sent || err != nil {
		t.Errorf("without NOTIFY_SOCKET: %v %v", sent, err)
	}
	t.Setenv("NOTIFY_SOCKET", filepath.Join(t.TempDir(), "absent.sock"))
	if _, err := Notify(Ready); err == nil {
		t.Error("an absent socket gave no error")
	}
}
