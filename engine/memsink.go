package engine

import (
	"context"
	"sync"
)

// MemorySink keeps what a run produces in memory (tests and the in-memory benchmark).
type MemorySink struct {
	mu          sync.Mutex
	Events      []MemEvent
	Records     map[string]*Record
	Checkpoints int
	// OnCheckpoint, when set, runs at every checkpoint; an error stops the run
	// as a failed checkpoint would (ErrCancelRequested cancels it).
	OnCheckpoint func(ctx context.Context) error
}

// MemEvent is one event seen by a MemorySink.
type MemEvent struct {
	Name string
	Data map[string]any
}

func NewMemorySink() *MemorySink { return &MemorySink{Records: map[string]*Record{}} }

func (m *MemorySink) Event(name string, data map[string]any) {
	m.mu.Lock()
	m.Events = append(m.Events, MemEvent{name, data})
	m.mu.Unlock()
}

func (m *MemorySink) Record(r *Record) {
	m.mu.Lock()
	m.Records[r.NodeID] = r
	m.mu.Unlock()
}

func (m *MemorySink) Checkpoint(ctx context.Context) error {
	m.mu.Lock()
	m.Checkpoints++
	fn := m.OnCheckpoint
	m.mu.Unlock()
	if fn != nil {
		return fn(ctx)
	}
	return nil
}

// EventNames lists the names of the events seen, in order.
func (m *MemorySink) EventNames() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]string, len(m.Events))
	for i, e := range m.Events {
		out[i] = e.Name
	}
	return out
}
