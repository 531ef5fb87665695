package inspect

import (
	"errors"
	"fmt"
)

// Errors an inspection ends with. Callers tell them apart with errors.Is;
// the messages are meant for the operator as they are.
var (
	// ErrUnsupported: the image uses something inspect cannot read yet
	// (an image format, LVM, a filesystem, a package database). The error
	// is an *UnsupportedError saying which and where.
	ErrUnsupported = errors.New("not supported")
	// ErrInvalidImage: the file is not a readable disk image (truncated or
	// corrupt qcow2, no partition table and no filesystem).
	ErrInvalidImage = errors.New("invalid image")
	// ErrNoOS: the disk was readable but no filesystem holds an OS root
	// (/etc/os-release or /usr/lib/os-release).
	ErrNoOS = errors.New("no operating system found")
	// ErrNoPackageDB: an OS root was found but it has no package database.
	ErrNoPackageDB = errors.New("no package database found")
)

// UnsupportedError names what could not be read and where.
type UnsupportedError struct {
	What  string // "image format", "filesystem", "volume manager", "package database"
	Name  string // "vmdk", "xfs", "LVM2 physical volume", "rpm"
	Where string // "partition 2", "disk"; "" when it applies to the whole image
	Hint  string // what is supported instead
}

func (e *UnsupportedError) Error() string {
	msg := fmt.Sprintf("%s %s is not supported yet", e.What, e.Name)
	if e.Where != "" {
		msg = e.Where + ": " + msg
	}
	if e.Hint != "" {
		msg += " (" + e.Hint + ")"
	}
	return msg
}

// Is makes errors.Is(err, ErrUnsupported) true.
func (e *UnsupportedError) Is(target error) bool { return target == ErrUnsupported }

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidImage, fmt.Sprintf(format, args...))
}
