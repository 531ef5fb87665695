package agent

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// appliedSet remembers the ids of the last n applied events, so a
// redelivered event is answered without acting twice. With a file it
// survives restarts: one id per line, appended as events are applied and
// rewritten with only the last n when it grows past 2n lines.
type appliedSet struct {
	mu    sync.Mutex
	n     int
	ids   map[int64]struct{}
	order []int64
	path  string
	f     *os.File
	lines int
}

func newAppliedSet(n int, path string) (*appliedSet, error) {
	s := &appliedSet{n: n, ids: make(map[int64]struct{}, n), path: path}
	if path == "" {
		return s, nil
	}
	if b, err := os.ReadFile(path); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if id, err := strconv.ParseInt(strings.TrimSpace(line), 10, 64); err == nil {
				s.addLocked(id)
			}
		}
	} else if !os.IsNotExist(err) {
		return nil, fmt.Errorf("reading applied events %s: %w", path, err)
	}
	if err := s.rewriteLocked(); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *appliedSet) Has(id int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.ids[id]
	return ok
}

// Add records id; a failure to persist it is returned but the id is
// remembered in memory anyway.
func (s *appliedSet) Add(id int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.ids[id]; ok {
		return nil
	}
	s.addLocked(id)
	if s.f == nil {
		return nil
	}
	if _, err := fmt.Fprintf(s.f, "%d\n", id); err != nil {
		return fmt.Errorf("recording applied event %d: %w", id, err)
	}
	s.lines++
	if s.lines > 2*s.n {
		return s.rewriteLocked()
	}
	return nil
}

func (s *appliedSet) addLocked(id int64) {
	if _, ok := s.ids[id]; ok {
		return
	}
	s.ids[id] = struct{}{}
	s.order = append(s.order, id)
	if len(s.order) > s.n {
		delete(s.ids, s.order[0])
		s.order = s.order[1:]
	}
}

// rewriteLocked replaces the file with the remembered ids and reopens it
// for appending.
func (s *appliedSet) rewriteLocked() error {
	if s.f != nil {
		s.f.Close()
		s.f = nil
	}
	f, err := rewriteFile(s.path, func(w *bufio.Writer) error {
		for _, id := range s.order {
			if _, err := fmt.Fprintf(w, "%d\n", id); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("writing applied events: %w", err)
	}
	s.f, s.lines = f, len(s.order)
	return nil
}

// rewriteFile replaces path with what write puts in it and opens the new
// file for appending. It goes through a synced temporary file renamed over
// path, and syncs the directory, so that a crash leaves the old file or the
// new one, never a torn or empty one: the journal and the applied set both
// compact this way.
func rewriteFile(path string, write func(*bufio.Writer) error) (*os.File, error) {
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return nil, err
	}
	w := bufio.NewWriter(f)
	err = write(w)
	if err == nil {
		err = w.Flush()
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return nil, err
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		_ = d.Sync() // the rename itself survives a crash
		d.Close()
	}
	return os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0o644)
}

func (s *appliedSet) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f != nil {
		s.f.Close()
		s.f = nil
	}
}

// keyedMutex serialises work per workload (an event and a resync of the
// same container never interleave) while different workloads proceed.
type keyedMutex struct {
	mu    sync.Mutex
	locks map[string]*keyedEntry
}

type keyedEntry struct {
	mu   sync.Mutex
	refs int
}

func (k *keyedMutex) Lock(key string) func() {
	k.mu.Lock()
	if k.locks == nil {
		k.locks = map[string]*keyedEntry{}
	}
	e := k.locks[key]
	if e == nil {
		e = &keyedEntry{}
		k.locks[key] = e
	}
	e.refs++
	k.mu.Unlock()
	e.mu.Lock()
	return func() {
		e.mu.Unlock()
		k.mu.Lock()
		e.refs--
		if e.refs == 0 {
			delete(k.locks, key)
		}
		k.mu.Unlock()
	}
}
