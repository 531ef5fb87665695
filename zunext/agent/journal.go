package agent

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"

	"github.com/unisched/unisched/bridge/agentproto"
)

// journal holds the events the agent has acknowledged but not applied
// yet. The agent answers the relay only once an event is in it (the
// "delivered" of the outbox means: held durably by the agent), so an agent
// that dies before applying an event applies it after its restart instead
// of relying on a redelivery that will not come.
//
// The file has one JSON object a line: {"seq":N,"event":{...}} when an
// event is taken (fsynced before the answer), {"done":N} once it is
// applied (not synced: losing it only applies the event again after a
// crash, which the applied set and the events' idempotence absorb). It is
// rewritten with only the pending entries when the done lines outnumber
// them, the way appliedSet compacts its file. A torn last line (a crash
// mid-write of an entry that was never acknowledged) is skipped on load.
type journal struct {
	mu      sync.Mutex
	path    string
	f       *os.File
	seq     int64
	pending map[int64]*agentproto.Event // by seq
	lines   int
}

// journalEntry is one line of the journal file.
type journalEntry struct {
	Seq   int64             `json:"seq,omitempty"`
	Event *agentproto.Event `json:"event,omitempty"`
	Done  int64             `json:"done,omitempty"`
}

// queued is a journaled event waiting to be applied.
type queued struct {
	seq int64
	ev  *agentproto.Event
}

// openJournal reads path (memory only when empty) and compacts it; the
// pending events come back in the order they were taken.
func openJournal(path string) (*journal, []queued, error) {
	j := &journal{path: path, pending: map[int64]*agentproto.Event{}}
	if path == "" {
		return j, nil, nil
	}
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, nil, fmt.Errorf("reading the event journal %s: %w", path, err)
	}
	for _, line := range bytes.Split(b, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		var e journalEntry
		if json.Unmarshal(line, &e) != nil {
			continue // torn by a crash: never acknowledged
		}
		switch {
		case e.Done != 0:
			delete(j.pending, e.Done)
		case e.Seq != 0 && e.Event != nil:
			j.pending[e.Seq] = e.Event
			j.seq = max(j.seq, e.Seq)
		}
	}
	if err := j.rewriteLocked(); err != nil {
		return nil, nil, err
	}
	return j, j.pendingLocked(), nil
}

func (j *journal) pendingLocked() []queued {
	out := make([]queued, 0, len(j.pending))
	for seq, ev := range j.pending {
		out = append(out, queued{seq: seq, ev: ev})
	}
	slices.SortFunc(out, func(a, b queued) int { return int(a.seq - b.seq) })
	return out
}

// Add records ev durably and returns its journal sequence number.
func (j *journal) Add(ev *agentproto.Event) (int64, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	seq := j.seq + 1
	line, err := json.Marshal(journalEntry{Seq: seq, Event: ev})
	if err != nil {
		return 0, fmt.Errorf("journaling event %d: %w", ev.ID, err)
	}
	if j.f != nil {
		_, err := j.f.Write(append(line, '\n'))
		if err == nil {
			err = j.f.Sync()
		}
		if err != nil {
			// a torn line would swallow the next entry: start the file
			// again from what is known to be pending
			_ = j.rewriteLocked()
			return 0, fmt.Errorf("journaling event %d: %w", ev.ID, err)
		}
		j.lines++
	}
	j.seq = seq
	j.pending[seq] = ev
	return seq, nil
}

// Done forgets the entry seq (applied, or dropped for good).
func (j *journal) Done(seq int64) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if _, ok := j.pending[seq]; !ok {
		return nil
	}
	delete(j.pending, seq)
	if j.f == nil {
		return nil
	}
	if _, err := fmt.Fprintf(j.f, "{\"done\":%d}\n", seq); err != nil {
		return fmt.Errorf("journaling applied entry %d: %w", seq, err)
	}
	j.lines++
	if j.lines > 2*len(j.pending)+256 {
		return j.rewriteLocked()
	}
	return nil
}

// Len is the number of events taken and not applied yet.
func (j *journal) Len() int {
	j.mu.Lock()
	defer j.mu.Unlock()
	return len(j.pending)
}

// rewriteLocked replaces the file with the pending entries and reopens it
// for appending.
func (j *journal) rewriteLocked() error {
	if j.path == "" {
		return nil
	}
	if j.f != nil {
		j.f.Close()
		j.f = nil
	}
	pending := j.pendingLocked()
	f, err := rewriteFile(j.path, func(w *bufio.Writer) error {
		for _, q := range pending {
			line, err := json.Marshal(journalEntry{Seq: q.seq, Event: q.ev})
			if err != nil {
				return err
			}
			if _, err := w.Write(append(line, '\n')); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("compacting the event journal: %w", err)
	}
	j.f, j.lines = f, len(pending)
	return nil
}

func (j *journal) Close() {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f != nil {
		j.f.Close()
		j.f = nil
	}
}
