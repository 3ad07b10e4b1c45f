package engine

import (
	"context"
	"encoding/json"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Event is one event of a run's stream (PRODUCT §6.6). Data already carries
// execution_id, seq and at.
type Event struct {
	ExecutionID int64           `json:"execution_id"`
	Seq         int             `json:"seq"`
	Name        string          `json:"event"`
	Data        json.RawMessage `json:"data"`
}

// Terminal reports whether e ends its stream.
func (e Event) Terminal() bool {
	return e.Name == "execution.completed" || e.Name == "execution.failed" || e.Name == "execution.cancelled"
}

// Bus fans events out to stream subscribers and carries cancel signals to the
// worker running a run, across replicas (Redis) or in one process (memory).
type Bus interface {
	// Publish hands events, already persisted, to every subscriber of their run.
	Publish(ctx context.Context, execID int64, events []Event)
	// Subscribe receives the events of one run published from now on.
	Subscribe(execID int64) (<-chan Event, func())
	// SignalCancel asks whichever worker runs execID to stop it.
	SignalCancel(ctx context.Context, execID int64)
	// OnCancel registers the handler of cancel signals (the engine's).
	OnCancel(fn func(execID int64))
	Close() error
}

// hub is the in-process fan-out both implementations share.
type hub struct {
	mu       sync.Mutex
	subs     map[int64]map[chan Event]struct{}
	onCancel func(int64)
}

func newHub() *hub { return &hub{subs: map[int64]map[chan Event]struct{}{}} }

func (h *hub) deliver(execID int64, events []Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for ch := range h.subs[execID] {
		for _, e := range events {
			select {
			case ch <- e:
			default:
				// A slow subscriber misses live events; it notices the gap in
				// seq and re-reads the persisted ones.
			}
		}
	}
}

func (h *hub) Subscribe(execID int64) (<-chan Event, func()) {
	ch := make(chan Event, 256)
	h.mu.Lock()
	if h.subs[execID] == nil {
		h.subs[execID] = map[chan Event]struct{}{}
	}
	h.subs[execID][ch] = struct{}{}
	h.mu.Unlock()
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			h.mu.Lock()
			delete(h.subs[execID], ch)
			if len(h.subs[execID]) == 0 {
				delete(h.subs, execID)
			}
			h.mu.Unlock()
		})
	}
}

func (h *hub) OnCancel(fn func(int64)) {
	h.mu.Lock()
	h.onCancel = fn
	h.mu.Unlock()
}

func (h *hub) cancel(execID int64) {
	h.mu.Lock()
	fn := h.onCancel
	h.mu.Unlock()
	if fn != nil {
		fn(execID)
	}
}

// MemoryBus is the single-process bus of the embedded default.
type MemoryBus struct{ *hub }

func NewMemoryBus() *MemoryBus { return &MemoryBus{newHub()} }

func (b *MemoryBus) Publish(_ context.Context, execID int64, events []Event) {
	b.deliver(execID, events)
}
func (b *MemoryBus) SignalCancel(_ context.Context, execID int64) { b.cancel(execID) }
func (b *MemoryBus) Close() error                                 { return nil }

const (
	redisEventsPrefix = "wataomi:exec:events:"
	redisCancel       = "wataomi:exec:cancel"
)

// The channels are namespaced by the database the replicas share, so
// processes on other databases (tests, staging) never see each other's runs.

// RedisBus shares events and cancel signals between replicas: one pattern
// subscription per process, one PUBLISH per batch of events.
type RedisBus struct {
	*hub
	rdb      *redis.Client
	ps       *redis.PubSub
	events   string // channel prefix
	cancelCh string
	log      *slog.Logger
	done     chan struct{}
	closed   sync.Once
}

func NewRedisBus(ctx context.Context, rdb *redis.Client, log *slog.Logger, namespace string) (*RedisBus, error) {
	events, cancelCh := redisEventsPrefix+namespace+":", redisCancel+":"+namespace
	// go-redis re-subscribes after a lost connection; a Redis that is down at
	// start is reported by the readiness probe, not here.
	ps := rdb.PSubscribe(ctx, events+"*", cancelCh)
	b := &RedisBus{hub: newHub(), rdb: rdb, ps: ps, log: log, done: make(chan struct{}), events: events, cancelCh: cancelCh}
	go b.loop()
	return b, nil
}

func (b *RedisBus) loop() {
	defer close(b.done)
	for msg := range b.ps.Channel(redis.WithChannelSize(1024)) {
		if msg.Channel == b.cancelCh {
			if id, err := strconv.ParseInt(msg.Payload, 10, 64); err == nil {
				b.cancel(id)
			}
			continue
		}
		id, err := strconv.ParseInt(strings.TrimPrefix(msg.Channel, b.events), 10, 64)
		if err != nil {
			continue
		}
		var events []Event
		if err := json.Unmarshal([]byte(msg.Payload), &events); err != nil {
			continue
		}
		b.deliver(id, events)
	}
}

func (b *RedisBus) Publish(ctx context.Context, execID int64, events []Event) {
	payload, err := json.Marshal(events)
	if err != nil {
		return
	}
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	if err := b.rdb.Publish(pctx, b.events+strconv.FormatInt(execID, 10), payload).Err(); err != nil {
		// Subscribers fall back to the persisted events.
		b.log.Warn("execution events not published", "execution_id", execID, "error", err)
	}
}

func (b *RedisBus) SignalCancel(ctx context.Context, execID int64) {
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	if err := b.rdb.Publish(pctx, b.cancelCh, strconv.FormatInt(execID, 10)).Err(); err != nil {
		b.log.Warn("cancel signal not published; the worker sees the flag at its next checkpoint", "execution_id", execID, "error", err)
	}
}

func (b *RedisBus) Close() error {
	var err error
	b.closed.Do(func() {
		err = b.ps.Close()
		<-b.done
	})
	return err
}
