// Package sdnotify tells systemd how a Type=notify service is doing: one
// datagram to the socket systemd names in $NOTIFY_SOCKET (sd_notify(3)).
// It is a dozen lines, so no dependency is taken for it; without
// $NOTIFY_SOCKET (not under systemd, or Type=exec) it does nothing.
package sdnotify

import (
	"fmt"
	"net"
	"os"
)

// Messages of sd_notify(3) that unisched sends.
const (
	Ready    = "READY=1"
	Stopping = "STOPPING=1"
)

// Notify sends state (e.g. Ready, or "STATUS=...") to systemd. sent is
// false when no notification socket is set.
func Notify(state string) (sent bool, err error) {
	return notify(os.Getenv("NOTIFY_SOCKET"), state)
}

func notify(socket, state string) (bool, error) {
	if socket == "" {
		return false, nil
	}
	// "@name" is a socket in the abstract namespace
	if socket[0] == '@' {
		socket = "\x00" + socket[1:]
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: socket, Net: "unixgram"})
	if err != nil {
		return false, fmt.Errorf("sd_notify: %w", err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(state)); err != nil {
		return false, fmt.Errorf("sd_notify: %w", err)
	}
	return true, nil
}
