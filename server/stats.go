package server

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
	// Stats compute local days with time.LoadLocation (DESIGN §4); the zone database travels with the
	// binary so a minimal image serves every IANA zone.
	_ "time/tzdata"

	openapi_types "github.com/oapi-codegen/runtime/types"

	"github.com/wataomi/wataomi/gen/api"
	"github.com/wataomi/wataomi/openapi/apitime"
	"github.com/wataomi/wataomi/store"
)

const (
	statsDefaultDays = 30  // the default range: today and the 29 days before it
	statsSeriesDays  = 366 // the longest time series
	statsExportDays  = 92  // the longest export
	statsExportBatch = 500 // rows per keyset batch of an export
)

// statsRange is a stats request's calendar: its zone and its first and last local days. Days are
// civil dates held as UTC midnights; they become instants only through start.
type statsRange struct {
	tz       string
	loc      *time.Location
	from, to time.Time
}

// start is the instant local day d begins in the range's zone. time.Date resolves DST: a day
// across a change is 23 or 25 hours long.
func (r statsRange) start(d time.Time) time.Time {
	return time.Date(d.Year(), d.Month(), d.Day(), 0, 0, 0, 0, r.loc).UTC()
}

// end is the instant after the range's last day: the exclusive upper bound.
func (r statsRange) end() time.Time { return r.start(r.to.AddDate(0, 0, 1)) }

func civilDay(t time.Time) time.Time {
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
}

func apiDate(d time.Time) openapi_types.Date { return openapi_types.Date{Time: d} }

// statsZone resolves the timezone parameter, defaulting to the organisation's default_timezone.
func (s *Server) statsZone(ctx context.Context, tz *string) (string, *time.Location, error) {
	name := ""
	if tz != nil {
		name = *tz
	} else {
		st, err := store.GetSettings(ctx, s.deps.DB.DB)
		if err != nil {
			return "", nil, err
		}
		name = st.DefaultTimezone
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		if tz != nil { // the iana-tz format already refused it; kept for direct calls
			return "", nil, validationError(FieldError{Pointer: "#/query/timezone", Detail: "is not an IANA time zone", Code: "format"})
		}
		name, loc = "UTC", time.UTC // a stored zone this binary does not know
	}
	return name, loc, nil
}

// statsRangeOf resolves timezone, from and to (PRODUCT §5.16): from and to are local days, both
// inclusive, by default the last 30 days up to today; maxDays (0: no limit) caps the span. A range
// that ends before it starts, or is too long, is a cross-field rule: 422.
func (s *Server) statsRangeOf(ctx context.Context, tz *string, from, to *openapi_types.Date, maxDays int) (statsRange, error) {
	name, loc, err := s.statsZone(ctx, tz)
	if err != nil {
		return statsRange{}, err
	}
	r := statsRange{tz: name, loc: loc, to: civilDay(store.Now().In(loc))}
	if to != nil {
		r.to = civilDay(to.Time)
	}
	r.from = r.to.AddDate(0, 0, 1-statsDefaultDays)
	if from != nil {
		r.from = civilDay(from.Time)
	}
	if r.from.After(r.to) {
		return r, unprocessable("unprocessable", "from is after to.",
			FieldError{Pointer: "#/query/from", Detail: "must not be after to (" + r.to.Format(time.DateOnly) + ")", Code: "unprocessable"})
	}
	if days := int(r.to.Sub(r.from)/(24*time.Hour)) + 1; maxDays > 0 && days > maxDays {
		return r, unprocessable("unprocessable", fmt.Sprintf("The range spans %d days; at most %d are allowed.", days, maxDays),
			FieldError{Pointer: "#/query/to", Detail: fmt.Sprintf("must be at most %d days after from, both inclusive", maxDays-1), Code: "unprocessable"})
	}
	return r, nil
}

// buckets splits the range into day or week buckets: their keys (the local day, or the Monday of
// the local week) and the instants bounding them (len(keys)+1 bounds). Weeks start on Monday; the
// first and last weeks are cut at from and to.
func (r statsRange) buckets(week bool) (keys []time.Time, bounds []time.Time) {
	for d := r.from; !d.After(r.to); {
		next := d.AddDate(0, 0, 1)
		key := d
		if week {
			back := (int(d.Weekday()) + 6) % 7 // days since Monday
			key = d.AddDate(0, 0, -back)
			next = key.AddDate(0, 0, 7)
			if next.After(r.to) {
				next = r.to.AddDate(0, 0, 1)
			}
		}
		keys = append(keys, key)
		bounds = append(bounds, r.start(d))
		d = next
	}
	return keys, append(bounds, r.end())
}

// successRate is completed/(completed+failed) in percent with 1 decimal; nil when both are 0.
func successRate(f store.RunFigures) *float64 {
	if f.Completed+f.Failed == 0 {
		return nil
	}
	v := math.Round(float64(f.Completed)*1000/float64(f.Completed+f.Failed)) / 10
	return &v
}

// avgDuration is the mean duration of completed runs, rounded to the millisecond; nil if none.
func avgDuration(f store.RunFigures) *int64 {
	if f.DurationN == 0 {
		return nil
	}
	v := int64(math.Round(float64(f.DurationSum) / float64(f.DurationN)))
	return &v
}

func runFigures(f store.RunFigures) api.RunFigures {
	return api.RunFigures{TotalExecutions: f.Total, Completed: f.Completed, Failed: f.Failed, Cancelled: f.Cancelled,
		Active: f.Active, SuccessRate: NullableFrom(successRate(f)), AvgDurationMs: NullableFrom(avgDuration(f))}
}

func (h *handlers) GetDashboardStats(ctx context.Context, req api.GetDashboardStatsRequestObject) (api.GetDashboardStatsResponseObject, error) {
	_, v := viewerOf(ctx)
	name, loc, err := h.s.statsZone(ctx, req.Params.Timezone)
	if err != nil {
		return nil, err
	}
	today := civilDay(store.Now().In(loc))
	r := statsRange{tz: name, loc: loc, from: today, to: today}
	flows, err := store.CountFlowsByStatus(ctx, h.s.deps.DB.DB, v)
	if err != nil {
		return nil, err
	}
	runs, err := store.CountRunsByBucket(ctx, h.s.deps.DB.DB, v, 0, []time.Time{r.start(today), r.end()})
	if err != nil {
		return nil, err
	}
	// Bots, conversations and messages (PRODUCT §5.6, §5.9) have no tables in this release: there is
	// nothing to count, so their figures are 0, not an estimate.
	return api.GetDashboardStats200JSONResponse{Body: api.DashboardStats{
		Timezone: name, Date: apiDate(today),
		TotalFlows: flows.Total - flows.Archived, PublishedFlows: flows.Published,
		ExecutionsToday: runs[0].Total, FailedExecutionsToday: runs[0].Failed,
	}}, nil
}

func (h *handlers) GetFlowStats(ctx context.Context, req api.GetFlowStatsRequestObject) (api.GetFlowStatsResponseObject, error) {
	_, v := viewerOf(ctx)
	if _, err := store.GetFlow(ctx, h.s.deps.DB.DB, v, req.FlowId); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, notFound("flow")
		}
		return nil, err
	}
	p := req.Params
	r, err := h.s.statsRangeOf(ctx, p.Timezone, p.From, p.To, 0)
	if err != nil {
		return nil, err
	}
	from, to := r.start(r.from), r.end()
	figs, err := store.CountRunsByBucket(ctx, h.s.deps.DB.DB, v, req.FlowId, []time.Time{from, to})
	if err != nil {
		return nil, err
	}
	last, err := store.LastRunAt(ctx, h.s.deps.DB.DB, v, req.FlowId, from, to)
	if err != nil {
		return nil, err
	}
	f := runFigures(figs[0])
	return api.GetFlowStats200JSONResponse{Body: api.FlowStats{
		FlowId: req.FlowId, Timezone: r.tz, From: apiDate(r.from), To: apiDate(r.to),
		TotalExecutions: f.TotalExecutions, Completed: f.Completed, Failed: f.Failed, Cancelled: f.Cancelled, Active: f.Active,
		SuccessRate: f.SuccessRate, AvgDurationMs: f.AvgDurationMs, LastExecutionAt: nullTime(last),
	}}, nil
}

func (h *handlers) GetExecutionStats(ctx context.Context, req api.GetExecutionStatsRequestObject) (api.GetExecutionStatsResponseObject, error) {
	_, v := viewerOf(ctx)
	p := req.Params
	var flowID int64
	if p.FlowId != nil {
		if _, err := store.GetFlow(ctx, h.s.deps.DB.DB, v, *p.FlowId); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return nil, notFound("flow")
			}
			return nil, err
		}
		flowID = *p.FlowId
	}
	r, err := h.s.statsRangeOf(ctx, p.Timezone, p.From, p.To, statsSeriesDays)
	if err != nil {
		return nil, err
	}
	gran := api.StatsGranularity("day")
	if p.Granularity != nil {
		gran = *p.Granularity
	}
	keys, bounds := r.buckets(gran == api.StatsGranularity("week"))
	figs, err := store.CountRunsByBucket(ctx, h.s.deps.DB.DB, v, flowID, bounds)
	if err != nil {
		return nil, err
	}
	out := api.ExecutionSeries{Timezone: r.tz, From: apiDate(r.from), To: apiDate(r.to), Granularity: gran,
		FlowId: NullableFrom(p.FlowId), Buckets: make([]api.ExecutionBucket, len(keys))}
	var total store.RunFigures
	for i, k := range keys {
		out.Buckets[i] = api.ExecutionBucket{Date: apiDate(k), Figures: runFigures(figs[i])}
		total.Add(figs[i])
	}
	out.Totals = runFigures(total)
	return api.GetExecutionStats200JSONResponse{Body: out}, nil
}

func (h *handlers) ExportStats(ctx context.Context, req api.ExportStatsRequestObject) (api.ExportStatsResponseObject, error) {
	_, v := viewerOf(ctx)
	p := req.Params
	r, err := h.s.statsRangeOf(ctx, p.Timezone, p.From, p.To, statsExportDays)
	if err != nil {
		return nil, err
	}
	format := "csv"
	if p.Format != nil {
		format = string(*p.Format)
	}
	dataset := string(p.Dataset)
	if dataset != "executions" { // the contract's enum holds only the datasets this release stores
		return nil, validationError(FieldError{Pointer: "#/query/dataset", Detail: "is not an exportable dataset", Code: "enum"})
	}
	from, to := r.start(r.from), r.end()
	if err := writeAudit(ctx, h.s.deps.DB.DB, auditEntry{Action: "analytics.export", ResourceType: "analytics",
		Metadata: map[string]string{"dataset": dataset, "format": format, "from": r.from.Format(time.DateOnly),
			"to": r.to.Format(time.DateOnly), "timezone": r.tz}}); err != nil {
		return nil, err
	}
	return exportResponse{
		ctx: ctx, s: h.s, v: v, from: from, to: to, format: format,
		filename: fmt.Sprintf("%s-%s-%s.%s", dataset, r.from.Format(time.DateOnly), r.to.Format(time.DateOnly), format),
	}, nil
}

// exportColumns are the executions export's columns, in order (the contract lists them).
var exportColumns = []string{"id", "flow_id", "flow_name", "flow_version", "flow_revision", "mode", "status",
	"triggered_by", "api_token_id", "conversation_id", "retry_of", "has_errors", "error_code", "queued_at",
	"started_at", "completed_at", "duration_ms", "total_nodes", "completed_nodes", "failed_nodes", "skipped_nodes"}

// exportResponse streams an export: it reads one keyset batch (the rows in memory, the cursor
// closed), writes it, flushes, and reads the next, so no database cursor or SQLite connection is held
// while the client reads.
type exportResponse struct {
	ctx      context.Context
	s        *Server
	v        store.Viewer
	from, to time.Time
	format   string
	filename string
}

func (r exportResponse) VisitExportStatsResponse(w http.ResponseWriter) error {
	h := w.Header()
	if r.format == "ndjson" {
		h.Set("Content-Type", "application/x-ndjson")
	} else {
		h.Set("Content-Type", "text/csv; charset=utf-8")
	}
	h.Set("Content-Disposition", `attachment; filename="`+r.filename+`"`)
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	bw := bufio.NewWriterSize(w, 32<<10)
	var cw *csv.Writer
	if r.format != "ndjson" {
		cw = csv.NewWriter(bw)
		cw.UseCRLF = true
		if _, err := bw.WriteString("\uFEFF"); err != nil {
			return nil
		}
		if err := cw.Write(exportColumns); err != nil {
			return nil
		}
	}
	var after int64
	for {
		rows, err := store.ExportRunsAfter(r.ctx, r.s.deps.DB.DB, r.v, r.from, r.to, after, statsExportBatch)
		if err != nil {
			if r.ctx.Err() != nil {
				return nil // the client went away
			}
			r.s.deps.Logger.ErrorContext(r.ctx, "export failed after the stream started", "error", err.Error())
			if cw != nil {
				// CSV has no error row: break the response so the client cannot take a cut file for a whole one.
				cw.Flush()
				_ = bw.Flush()
				panic(http.ErrAbortHandler)
			}
			line, _ := json.Marshal(map[string]any{"error": map[string]string{"type": "urn:wataomi:problem:internal-error",
				"title": titles["internal-error"], "detail": "The export stopped early; the lines above are incomplete."}})
			_, _ = bw.Write(append(line, '\n'))
			_ = bw.Flush()
			return nil
		}
		for i := range rows {
			if cw != nil {
				err = cw.Write(exportCSVRecord(&rows[i]))
			} else {
				var line []byte
				line, err = json.Marshal(exportObject(&rows[i]))
				if err == nil {
					_, err = bw.Write(append(line, '\n'))
				}
			}
			if err != nil {
				return nil
			}
		}
		if cw != nil {
			cw.Flush()
			if cw.Error() != nil {
				return nil
			}
		}
		if bw.Flush() != nil {
			return nil
		}
		if flusher != nil {
			flusher.Flush()
		}
		if len(rows) < statsExportBatch {
			return nil
		}
		after = rows[len(rows)-1].ID
	}
}

func exportErrorCode(e *store.JSON) *string {
	if e == nil {
		return nil
	}
	var v struct {
		Code string `json:"code"`
	}
	if json.Unmarshal(*e, &v) != nil || v.Code == "" {
		return nil
	}
	return &v.Code
}

// exportObject is one NDJSON line: the columns with their JSON types, null for a missing value.
func exportObject(x *store.ExportRun) map[string]any {
	t := func(p *time.Time) any {
		if p == nil {
			return nil
		}
		return apitime.From(*p)
	}
	return map[string]any{
		"id": x.ID, "flow_id": x.FlowID, "flow_name": x.FlowName, "flow_version": x.FlowVersion, "flow_revision": x.FlowRevision,
		"mode": x.Mode, "status": x.Status, "triggered_by": x.TriggeredBy, "api_token_id": x.APITokenID,
		"conversation_id": x.ConversationID, "retry_of": x.RetryOf, "has_errors": x.HasErrors, "error_code": exportErrorCode(x.Error),
		"queued_at": apitime.From(x.QueuedAt), "started_at": t(x.StartedAt), "completed_at": t(x.CompletedAt),
		"duration_ms": x.DurationMS, "total_nodes": x.TotalNodes, "completed_nodes": x.CompletedNodes,
		"failed_nodes": x.FailedNodes, "skipped_nodes": x.SkippedNodes,
	}
}

// exportCSVRecord is one CSV record in exportColumns order: empty cells for nulls, UTC RFC 3339 times
// with milliseconds, and text cells guarded against formula injection.
func exportCSVRecord(x *store.ExportRun) []string {
	i64 := func(p *int64) string {
		if p == nil {
			return ""
		}
		return strconv.FormatInt(*p, 10)
	}
	tm := func(p *time.Time) string {
		if p == nil {
			return ""
		}
		return csvTime(*p)
	}
	ver := ""
	if x.FlowVersion != nil {
		ver = strconv.Itoa(*x.FlowVersion)
	}
	code := ""
	if c := exportErrorCode(x.Error); c != nil {
		code = *c
	}
	return []string{
		strconv.FormatInt(x.ID, 10), strconv.FormatInt(x.FlowID, 10), csvCell(x.FlowName), ver, strconv.Itoa(x.FlowRevision),
		csvCell(x.Mode), csvCell(x.Status), i64(x.TriggeredBy), i64(x.APITokenID), i64(x.ConversationID), i64(x.RetryOf),
		strconv.FormatBool(x.HasErrors), csvCell(code), csvTime(x.QueuedAt), tm(x.StartedAt), tm(x.CompletedAt),
		i64(x.DurationMS), strconv.Itoa(x.TotalNodes), strconv.Itoa(x.CompletedNodes), strconv.Itoa(x.FailedNodes),
		strconv.Itoa(x.SkippedNodes),
	}
}

func csvTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

// csvCell guards a text cell against spreadsheet formula injection (PRODUCT §5.16): a cell starting
// with =, +, -, @, a tab or a carriage return gets a leading apostrophe.
func csvCell(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}
