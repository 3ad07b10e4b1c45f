package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/wataomi/wataomi/engine"
	"github.com/wataomi/wataomi/store"
)

const (
	ssePing        = 15 * time.Second
	sseResync      = time.Second // a missed live event is picked up from the database within this
	sseReplayBatch = 500
)

// sseResponse streams a run's events (PRODUCT §6.6): the persisted ones after
// `after`, then live ones, until the terminal event.
type sseResponse struct {
	s     *Server
	ctx   context.Context
	id    int64
	after int
}

func (r sseResponse) VisitStreamExecutionResponse(w http.ResponseWriter) error    { return r.stream(w) }
func (r sseResponse) VisitGetExecutionEventsResponse(w http.ResponseWriter) error { return r.stream(w) }

func (r sseResponse) stream(w http.ResponseWriter) error {
	ctx := r.ctx
	flusher, _ := w.(http.Flusher)
	flush := func() {
		if flusher != nil {
			flusher.Flush()
		}
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if _, err := io.WriteString(w, "retry: 2000\n\n"); err != nil {
		return nil
	}
	flush()
	ch, unsub := r.s.deps.Engine.Bus().Subscribe(r.id)
	defer unsub()
	next := r.after + 1
	// replay writes every persisted event from next on; done reports the terminal event.
	replay := func() (done bool, err error) {
		for {
			var rows []store.ExecutionEvent
			if err := r.s.deps.DB.WithContext(ctx).Where("execution_id = ? AND seq >= ?", r.id, next).
				Order("seq").Limit(sseReplayBatch).Find(&rows).Error; err != nil {
				return false, err
			}
			for _, ev := range rows {
				if err := writeEvent(w, ev.Event, ev.Seq, ev.Data); err != nil {
					return false, err
				}
				next = ev.Seq + 1
				if (engine.Event{Name: ev.Event}).Terminal() {
					flush()
					return true, nil
				}
			}
			flush()
			if len(rows) < sseReplayBatch {
				return false, nil
			}
		}
	}
	done, err := replay()
	if done || err != nil {
		return nil
	}
	// Past the event retention the run may have ended with its events gone:
	// one terminal event built from the row.
	if ex, err := r.s.reload(ctx, r.id); err == nil && store.IsTerminal(ex.Status) {
		if done, _ := replay(); !done {
			r.terminalFromRow(w, ex)
			flush()
		}
		return nil
	}
	ping := time.NewTicker(ssePing)
	defer ping.Stop()
	resync := time.NewTicker(sseResync)
	defer resync.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ping.C:
			if _, err := io.WriteString(w, ": ping\n\n"); err != nil {
				return nil
			}
			flush()
		case ev := <-ch:
			if ev.Seq < next {
				continue
			}
			if ev.Seq > next {
				// A gap: the missing events are persisted (events are published after commit).
				if done, err := replay(); done || err != nil {
					return nil
				}
				continue
			}
			if err := writeEvent(w, ev.Name, ev.Seq, ev.Data); err != nil {
				return nil
			}
			flush()
			next = ev.Seq + 1
			if ev.Terminal() {
				return nil
			}
		case <-resync.C:
			if done, err := replay(); done || err != nil {
				return nil
			}
		}
	}
}

func (r sseResponse) terminalFromRow(w http.ResponseWriter, ex *store.Execution) {
	data := map[string]any{"execution_id": ex.ID, "seq": ex.EventSeq, "at": ex.UpdatedAt.UTC().Format(time.RFC3339Nano),
		"status": ex.Status, "has_errors": ex.HasErrors, "duration_ms": ex.DurationMS}
	if ex.CompletedAt != nil {
		data["completed_at"] = ex.CompletedAt.UTC().Format(time.RFC3339Nano)
	}
	if ex.Error != nil {
		data["error"] = json.RawMessage(*ex.Error)
	}
	if ex.OutputData != nil {
		data["output_data"] = json.RawMessage(*ex.OutputData)
	}
	b, _ := json.Marshal(data)
	_ = writeEvent(w, "execution."+ex.Status, ex.EventSeq, b)
}

func writeEvent(w io.Writer, name string, seq int, data []byte) error {
	_, err := fmt.Fprintf(w, "event: %s\nid: %d\ndata: %s\n\n", name, seq, compactJSON(data))
	return err
}

// compactJSON keeps data on one line (PostgreSQL's jsonb text has no newlines either, but be sure).
func compactJSON(b []byte) []byte {
	var out []byte
	for _, c := range b {
		if c != '\n' && c != '\r' {
			out = append(out, c)
		}
	}
	return out
}
