package inspect

import (
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"path"
	"strings"

	"github.com/diskfs/go-diskfs/backend"
	"github.com/diskfs/go-diskfs/filesystem/ext4"
)

// maxFileSize bounds what is read from the guest into memory: package
// databases of large images are tens of MiB.
const maxFileSize = 256 << 20

// maxLinks bounds symlink resolution as Linux does (MAXSYMLINKS), so a link
// loop in a guest ends in an error.
const maxLinks = 40

var errNotExist = iofs.ErrNotExist

// guestFS reads one guest filesystem by guest paths ("/etc/os-release").
// Symlinks are resolved here, inside the guest: an absolute target starts
// again from the guest's root and ".." stops at it, so nothing resolves to
// the host's files, and a loop is an error. The ext4 reader's own link
// following is never used (it has no loop limit). Calls into the reader
// recover from its panics: a corrupt filesystem is an error, never a crash.
type guestFS struct {
	fs   *ext4.FileSystem
	dirs map[string]map[string]iofs.DirEntry
}

func openExt4(b backend.Storage, p Partition) (g *guestFS, err error) {
	defer recoverTo(&err, "reading ext4")
	fs, err := ext4.Read(b, p.Size, p.Start, sectorSize)
	if err != nil {
		return nil, fmt.Errorf("reading ext4: %w", err)
	}
	return &guestFS{fs: fs, dirs: map[string]map[string]iofs.DirEntry{}}, nil
}

func recoverTo(err *error, what string) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("%w: %s: the filesystem reader failed on corrupt data: %v", ErrInvalidImage, what, r)
	}
}

// rel turns a clean absolute guest path into the reader's form ("etc/x").
func rel(p string) string {
	if p == "/" {
		return "."
	}
	return strings.TrimPrefix(p, "/")
}

// entries lists a resolved directory, cached by path.
func (g *guestFS) entries(dir string) (m map[string]iofs.DirEntry, err error) {
	if m, ok := g.dirs[dir]; ok {
		return m, nil
	}
	defer recoverTo(&err, "reading directory "+dir)
	// Only directories found in their parent's listing (or the root) get
	// here, so a failure is damage, not absence.
	list, err := g.fs.ReadDir(rel(dir))
	if err != nil {
		return nil, fmt.Errorf("%w: reading directory %s: %v", ErrInvalidImage, dir, err)
	}
	m = make(map[string]iofs.DirEntry, len(list))
	for _, e := range list {
		m[e.Name()] = e
	}
	g.dirs[dir] = m
	return m, nil
}

// resolve follows symlinks in every component of p and returns the guest
// path of what p names, with its directory entry (nil for "/").
func (g *guestFS) resolve(p string) (string, iofs.DirEntry, error) {
	links := 0
	todo := strings.Split(p, "/")
	cur := "/"
	var ent iofs.DirEntry
	for len(todo) > 0 {
		name := todo[0]
		todo = todo[1:]
		switch name {
		case "", ".":
			continue
		case "..":
			cur, ent = path.Dir(cur), nil
			continue
		}
		if ent != nil && !ent.IsDir() {
			return "", nil, fmt.Errorf("%s: not a directory", cur)
		}
		m, err := g.entries(cur)
		if err != nil {
			return "", nil, err
		}
		e, ok := m[name]
		if !ok {
			return "", nil, fmt.Errorf("%s: %w", path.Join(cur, name), errNotExist)
		}
		if e.Type()&iofs.ModeSymlink != 0 {
			if links++; links > maxLinks {
				return "", nil, fmt.Errorf("%s: too many levels of symbolic links", p)
			}
			target, err := g.readLink(path.Join(cur, name))
			if err != nil {
				return "", nil, err
			}
			if strings.HasPrefix(target, "/") {
				cur = "/"
			}
			todo = append(strings.Split(target, "/"), todo...)
			ent = nil
			continue
		}
		cur, ent = path.Join(cur, name), e
	}
	return cur, ent, nil
}

func (g *guestFS) readLink(p string) (t string, err error) {
	defer recoverTo(&err, "reading link "+p)
	t, err = g.fs.ReadLink(rel(p))
	if err != nil {
		return "", fmt.Errorf("reading link %s: %w", p, err)
	}
	return t, nil
}

// ReadFile reads a regular file, following symlinks inside the guest.
func (g *guestFS) ReadFile(p string) (data []byte, err error) {
	real, ent, err := g.resolve(p)
	if err != nil {
		return nil, err
	}
	if ent == nil || !ent.Type().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", p)
	}
	defer recoverTo(&err, "reading "+p)
	f, err := g.fs.OpenFile(rel(real), 0)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", p, err)
	}
	defer f.Close()
	data, err = io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", p, err)
	}
	if len(data) > maxFileSize {
		return nil, fmt.Errorf("%s: larger than %d bytes", p, maxFileSize)
	}
	return data, nil
}

// ReadDir lists a directory (following symlinks to it) by name and type.
func (g *guestFS) ReadDir(p string) (map[string]iofs.DirEntry, error) {
	real, ent, err := g.resolve(p)
	if err != nil {
		return nil, err
	}
	if ent != nil && !ent.IsDir() {
		return nil, fmt.Errorf("%s: not a directory", p)
	}
	return g.entries(real)
}

// Exists reports whether p names anything (after following links); an
// error is a damaged filesystem or a link loop.
func (g *guestFS) Exists(p string) (bool, error) {
	_, _, err := g.resolve(p)
	if err == nil {
		return true, nil
	}
	if isNotExist(err) {
		return false, nil
	}
	return false, err
}

func isNotExist(err error) bool { return errors.Is(err, errNotExist) }
