package server

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3filter"

	"github.com/wataomi/wataomi/rbac"
	"github.com/wataomi/wataomi/store"
)

// stFlow stores a flow of owner straight in the DB with the given visibility, status and name.
func stFlow(t *testing.T, e *testEnv, owner *store.User, visibility, status, name string) int64 {
	t.Helper()
	id := azFlow(t, e, owner)
	upd := map[string]any{"visibility": visibility, "status": status, "name": name}
	if status == "archived" {
		upd["archived_at"] = store.Now()
	}
	if err := e.DB.Model(&store.Flow{}).Where("id = ?", id).Updates(upd).Error; err != nil {
		t.Fatal(err)
	}
	return id
}

// stRun is one run to insert: its status, when it was queued, and its duration (0: none).
type stRun struct {
	status   string
	queuedAt string // RFC 3339
	duration int64
}

// stRuns inserts runs of a flow straight in the DB and returns their ids.
func stRuns(t *testing.T, e *testEnv, flowID int64, triggeredBy *int64, runs ...stRun) []int64 {
	t.Helper()
	ids := make([]int64, 0, len(runs))
	for _, r := range runs {
		q, err := time.Parse(time.RFC3339Nano, r.queuedAt)
		if err != nil {
			t.Fatal(err)
		}
		ex := &store.Execution{FlowID: flowID, FlowRevision: 1, Graph: store.DefaultFlowData(), Mode: "manual", Status: r.status,
			TriggeredBy: triggeredBy, InputData: store.JSON(`{}`), QueuedAt: q.UTC(), UpdatedAt: q.UTC(), TotalNodes: 2}
		if r.duration > 0 {
			d := r.duration
			ex.DurationMS = &d
			s := q.UTC().Add(10 * time.Millisecond)
			c := s.Add(time.Duration(d) * time.Millisecond)
			ex.StartedAt, ex.CompletedAt = &s, &c
		}
		if r.status == store.ExecFailed {
			j := store.JSON(`{"code":"node-failed","message":"boom","node_id":"n1"}`)
			ex.Error, ex.HasErrors = &j, true
		}
		if err := e.DB.Create(ex).Error; err != nil {
			t.Fatal(err)
		}
		ids = append(ids, ex.ID)
	}
	return ids
}

// stGet calls a stats op and decodes its 200 body into out; any other status fails the test.
func stGet(t *testing.T, e *testEnv, tok, path string, out any) {
	t.Helper()
	resp, body := e.Do(http.MethodGet, BasePath+path, tok, "", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s\n%s", path, resp.StatusCode, body, e.Logs.String())
	}
	if err := json.Unmarshal(body, out); err != nil {
		t.Fatalf("GET %s: %v: %s", path, err, body)
	}
}

// stFigures is the JSON shape of RunFigures, with nulls kept visible.
type stFigures struct {
	Total     int64    `json:"total_executions"`
	Completed int64    `json:"completed"`
	Failed    int64    `json:"failed"`
	Cancelled int64    `json:"cancelled"`
	Active    int64    `json:"active"`
	Rate      *float64 `json:"success_rate"`
	Avg       *int64   `json:"avg_duration_ms"`
}

func (f stFigures) String() string {
	r, a := "null", "null"
	if f.Rate != nil {
		r = fmt.Sprint(*f.Rate)
	}
	if f.Avg != nil {
		a = fmt.Sprint(*f.Avg)
	}
	return fmt.Sprintf("total=%d completed=%d failed=%d cancelled=%d active=%d rate=%s avg=%s",
		f.Total, f.Completed, f.Failed, f.Cancelled, f.Active, r, a)
}

func TestStatsFlowFigures(t *testing.T) {
	e := newTestEnv(t)
	owner, ownerTok := e.User(rbac.Editor)
	_, otherTok := e.User(rbac.Editor)
	_, adminTok := e.User(rbac.Admin)
	flowID := stFlow(t, e, owner, "private", "published", "Figures")
	emptyID := stFlow(t, e, owner, "private", "draft", "Empty")
	stRuns(t, e, flowID, &owner.ID,
		stRun{"completed", "2026-03-02T08:00:00Z", 1000},
		stRun{"completed", "2026-03-03T08:00:00Z", 2000},
		stRun{"completed", "2026-03-04T08:00:00Z", 2500},
		stRun{"failed", "2026-03-04T09:00:00Z", 9000}, // a failed run's duration is not in the mean
		stRun{"failed", "2026-03-05T09:00:00Z", 0},
		stRun{"cancelled", "2026-03-05T10:00:00Z", 0},
		stRun{"queued", "2026-03-06T10:00:00Z", 0},
		stRun{"running", "2026-03-06T11:00:00Z", 0},
		stRun{"waiting", "2026-03-06T12:34:56.789Z", 0},
		stRun{"completed", "2026-03-01T23:59:59.999Z", 100000}, // the day before from
		stRun{"completed", "2026-03-07T00:00:00Z", 100000},     // the day after to
	)

	path := fmt.Sprintf("/stats/flows/%d?timezone=UTC&from=2026-03-02&to=2026-03-06", flowID)
	var got struct {
		FlowID   int64   `json:"flow_id"`
		Timezone string  `json:"timezone"`
		From     string  `json:"from"`
		To       string  `json:"to"`
		Last     *string `json:"last_execution_at"`
		stFigures
	}
	check := func(tok string) {
		t.Helper()
		got.Last = nil
		stGet(t, e, tok, path, &got)
		want := "total=9 completed=3 failed=2 cancelled=1 active=3 rate=60 avg=1833"
		if got.stFigures.String() != want || got.FlowID != flowID || got.Timezone != "UTC" {
			t.Fatalf("figures %s (flow %d, tz %q), want %s", got.stFigures, got.FlowID, got.Timezone, want)
		}
		if got.Last == nil || *got.Last != "2026-03-06T12:34:56.789Z" {
			t.Fatalf("last_execution_at = %v", got.Last)
		}
	}
	check(ownerTok)
	check(adminTok) // admins see every flow

	// The same days in a zone east of UTC start 9 hours earlier: the run at 2026-03-01T23:59:59Z (08:59
	// on 2 March in Tokyo) is in, and those queued on 6 March after 15:00 UTC (7 March in Tokyo) are out.
	var tokyo struct {
		stFigures
		Timezone string `json:"timezone"`
	}
	stGet(t, e, ownerTok, fmt.Sprintf("/stats/flows/%d?timezone=Asia/Tokyo&from=2026-03-02&to=2026-03-06", flowID), &tokyo)
	if want := "total=10 completed=4 failed=2 cancelled=1 active=3 rate=66.7 avg=26375"; tokyo.stFigures.String() != want || tokyo.Timezone != "Asia/Tokyo" {
		t.Fatalf("Tokyo figures %s (%q), want %s", tokyo.stFigures, tokyo.Timezone, want)
	}

	// 7 completed and 2 failed: 77.8 %, rounded to one decimal.
	rateID := stFlow(t, e, owner, "public", "published", "Rate")
	var runs []stRun
	for i := 0; i < 7; i++ {
		runs = append(runs, stRun{"completed", fmt.Sprintf("2026-03-03T10:%02d:00Z", i), int64(100 + i)})
	}
	runs = append(runs, stRun{"failed", "2026-03-03T11:00:00Z", 0}, stRun{"failed", "2026-03-03T11:01:00Z", 0})
	stRuns(t, e, rateID, nil, runs...)
	var rate stFigures
	stGet(t, e, otherTok, fmt.Sprintf("/stats/flows/%d?timezone=UTC&from=2026-03-03&to=2026-03-03", rateID), &rate)
	if want := "total=9 completed=7 failed=2 cancelled=0 active=0 rate=77.8 avg=103"; rate.String() != want {
		t.Fatalf("public flow figures %s, want %s", rate, want)
	}

	// No runs: zeros, and null where there is nothing to compute.
	var empty struct {
		stFigures
		Last *string `json:"last_execution_at"`
	}
	stGet(t, e, ownerTok, fmt.Sprintf("/stats/flows/%d", emptyID), &empty)
	if want := "total=0 completed=0 failed=0 cancelled=0 active=0 rate=null avg=null"; empty.stFigures.String() != want || empty.Last != nil {
		t.Fatalf("empty flow %s last %v, want %s and null", empty.stFigures, empty.Last, want)
	}

	// Another user's private flow is invisible: 404, like an unknown flow.
	for _, p := range []string{fmt.Sprintf("/stats/flows/%d", flowID), "/stats/flows/999999"} {
		resp, body := e.Do(http.MethodGet, BasePath+p, otherTok, "", nil)
		flWantProblem(t, resp, body, http.StatusNotFound, "not-found")
	}
	// from after to is a cross-field rule; a bad date or zone is a parameter error.
	resp, body := e.Do(http.MethodGet, BasePath+fmt.Sprintf("/stats/flows/%d?from=2026-03-05&to=2026-03-04", flowID), ownerTok, "", nil)
	flWantProblem(t, resp, body, http.StatusUnprocessableEntity, "unprocessable", "#/query/from")
	resp, body = e.Do(http.MethodGet, BasePath+fmt.Sprintf("/stats/flows/%d?from=2026-02-30", flowID), ownerTok, "", nil)
	flWantProblem(t, resp, body, http.StatusBadRequest, "validation-error", "#/query/from")
	resp, body = e.Do(http.MethodGet, BasePath+fmt.Sprintf("/stats/flows/%d?timezone=Mars/Olympus", flowID), ownerTok, "", nil)
	flWantProblem(t, resp, body, http.StatusBadRequest, "validation-error", "#/query/timezone")
}

func TestStatsDashboard(t *testing.T) {
	e := newTestEnv(t)
	me, meTok := e.User(rbac.User)
	other, _ := e.User(rbac.Editor)
	_, adminTok := e.User(rbac.SuperAdmin)

	mine := stFlow(t, e, me, "private", "published", "mine published")
	stFlow(t, e, me, "private", "draft", "mine draft")
	stFlow(t, e, me, "private", "archived", "mine archived")
	public := stFlow(t, e, other, "public", "published", "theirs public")
	hidden := stFlow(t, e, other, "private", "published", "theirs private")
	team := flTeam(t, e, "dash team", me.ID)
	teamFlow := stFlow(t, e, other, "team", "draft", "team flow")
	if err := e.DB.Model(&store.Flow{}).Where("id = ?", teamFlow).Update("team_id", team).Error; err != nil {
		t.Fatal(err)
	}

	loc, _ := time.LoadLocation("Asia/Tokyo")
	now := time.Now().In(loc)
	start := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, loc).UTC()
	at := func(d time.Duration) string { return start.Add(d).Format(time.RFC3339Nano) }
	stRuns(t, e, mine, nil, stRun{"completed", at(time.Second), 10}, stRun{"failed", at(2 * time.Second), 0},
		stRun{"failed", at(-time.Second), 0}) // the last one was yesterday in Tokyo
	stRuns(t, e, public, nil, stRun{"running", at(3 * time.Second), 0})
	stRuns(t, e, teamFlow, nil, stRun{"failed", at(4 * time.Second), 0})
	stRuns(t, e, hidden, nil, stRun{"failed", at(5 * time.Second), 0}, stRun{"completed", at(6 * time.Second), 0})

	type dash struct {
		Timezone   string `json:"timezone"`
		Date       string `json:"date"`
		Total      int64  `json:"total_flows"`
		Published  int64  `json:"published_flows"`
		Bots       int64  `json:"active_bots"`
		Open       int64  `json:"open_conversations"`
		Unassigned int64  `json:"unassigned_conversations"`
		Convs      int64  `json:"total_conversations"`
		Messages   int64  `json:"messages_today"`
		Runs       int64  `json:"executions_today"`
		Failed     int64  `json:"failed_executions_today"`
	}
	var d dash
	stGet(t, e, meTok, "/stats/dashboard?timezone=Asia/Tokyo", &d)
	today := now.Format(time.DateOnly)
	if want := (dash{Timezone: "Asia/Tokyo", Date: today, Total: 4, Published: 2, Runs: 4, Failed: 2}); d != want {
		t.Fatalf("user's dashboard %+v, want %+v", d, want)
	}
	stGet(t, e, adminTok, "/stats/dashboard?timezone=Asia/Tokyo", &d)
	if want := (dash{Timezone: "Asia/Tokyo", Date: today, Total: 5, Published: 3, Runs: 6, Failed: 3}); d != want {
		t.Fatalf("admin's dashboard %+v, want %+v", d, want)
	}

	// Without timezone, the organisation's default_timezone defines today.
	if err := e.DB.Model(&store.Settings{}).Where("id = ?", store.SettingsID).Update("default_timezone", "Asia/Tokyo").Error; err != nil {
		t.Fatal(err)
	}
	stGet(t, e, meTok, "/stats/dashboard", &d)
	if d.Timezone != "Asia/Tokyo" || d.Runs != 4 || d.Date != today {
		t.Fatalf("dashboard in the default zone %+v", d)
	}

	// An empty deployment counts zeros.
	e2 := newTestEnv(t)
	_, tok2 := e2.User(rbac.Viewer)
	var z dash
	stGet(t, e2, tok2, "/stats/dashboard", &z)
	if want := (dash{Timezone: "UTC", Date: time.Now().UTC().Format(time.DateOnly)}); z != want {
		t.Fatalf("empty dashboard %+v, want %+v", z, want)
	}
}

type stSeries struct {
	Timezone    string `json:"timezone"`
	From        string `json:"from"`
	To          string `json:"to"`
	Granularity string `json:"granularity"`
	FlowID      *int64 `json:"flow_id"`
	Buckets     []struct {
		Date    string    `json:"date"`
		Figures stFigures `json:"figures"`
	} `json:"buckets"`
	Totals stFigures `json:"totals"`
}

func (s stSeries) lines() string {
	var b strings.Builder
	for _, k := range s.Buckets {
		fmt.Fprintf(&b, "%s %s\n", k.Date, k.Figures)
	}
	return b.String()
}

func TestStatsSeriesAcrossDST(t *testing.T) {
	e := newTestEnv(t)
	owner, tok := e.User(rbac.Editor)
	_, strangerTok := e.User(rbac.Editor)
	a := stFlow(t, e, owner, "private", "published", "a")
	b := stFlow(t, e, owner, "private", "published", "b")
	// Berlin moves from UTC+1 to UTC+2 at 01:00 UTC on 29 March 2026 (a 23-hour day) and back at
	// 01:00 UTC on 25 October 2026 (a 25-hour day).
	stRuns(t, e, a, nil,
		stRun{"completed", "2026-03-27T22:59:59.999Z", 100}, // 27 March 23:59:59 CET
		stRun{"completed", "2026-03-27T23:00:00Z", 200},     // 28 March 00:00 CET
		stRun{"failed", "2026-03-28T22:59:59Z", 0},          // 28 March 23:59:59 CET
		stRun{"completed", "2026-03-28T23:00:00Z", 300},     // 29 March 00:00 CET
		stRun{"completed", "2026-03-29T21:59:59Z", 401},     // 29 March 23:59:59 CEST
		stRun{"cancelled", "2026-03-29T22:00:00Z", 0},       // 30 March 00:00 CEST (23:00 on the 29th at UTC+1)
		stRun{"completed", "2026-10-25T22:30:00Z", 50},      // 25 October 23:30 CET (00:30 on the 26th at UTC+2)
		stRun{"running", "2026-10-25T23:00:00Z", 0},         // 26 October 00:00 CET
	)
	stRuns(t, e, b, nil, stRun{"failed", "2026-03-29T12:00:00Z", 0})

	var s stSeries
	stGet(t, e, tok, "/stats/executions?timezone=Europe/Berlin&from=2026-03-28&to=2026-03-31", &s)
	want := "2026-03-28 total=2 completed=1 failed=1 cancelled=0 active=0 rate=50 avg=200\n" +
		"2026-03-29 total=3 completed=2 failed=1 cancelled=0 active=0 rate=66.7 avg=351\n" +
		"2026-03-30 total=1 completed=0 failed=0 cancelled=1 active=0 rate=null avg=null\n" +
		"2026-03-31 total=0 completed=0 failed=0 cancelled=0 active=0 rate=null avg=null\n"
	if s.lines() != want || s.Granularity != "day" || s.FlowID != nil || s.Timezone != "Europe/Berlin" {
		t.Fatalf("Berlin days (granularity %q, flow %v):\n%swant\n%s", s.Granularity, s.FlowID, s.lines(), want)
	}
	if w := "total=6 completed=3 failed=2 cancelled=1 active=0 rate=60 avg=300"; s.Totals.String() != w {
		t.Fatalf("totals %s, want %s", s.Totals, w)
	}

	// The same UTC instants, bucketed by days of UTC.
	stGet(t, e, tok, "/stats/executions?timezone=UTC&from=2026-03-28&to=2026-03-29&flow_id="+fmt.Sprint(a), &s)
	want = "2026-03-28 total=2 completed=1 failed=1 cancelled=0 active=0 rate=50 avg=300\n" +
		"2026-03-29 total=2 completed=1 failed=0 cancelled=1 active=0 rate=100 avg=401\n"
	if s.lines() != want || s.FlowID == nil || *s.FlowID != a {
		t.Fatalf("UTC days of flow a:\n%swant\n%s", s.lines(), want)
	}

	// The 25-hour autumn day.
	stGet(t, e, tok, "/stats/executions?timezone=Europe/Berlin&from=2026-10-25&to=2026-10-26", &s)
	want = "2026-10-25 total=1 completed=1 failed=0 cancelled=0 active=0 rate=100 avg=50\n" +
		"2026-10-26 total=1 completed=0 failed=0 cancelled=0 active=1 rate=null avg=null\n"
	if s.lines() != want {
		t.Fatalf("Berlin autumn days:\n%swant\n%s", s.lines(), want)
	}

	// Weeks start on Monday (23 and 30 March 2026); the first and last weeks are cut at from and to.
	stGet(t, e, tok, "/stats/executions?timezone=Europe/Berlin&from=2026-03-25&to=2026-03-30&granularity=week", &s)
	want = "2026-03-23 total=6 completed=4 failed=2 cancelled=0 active=0 rate=66.7 avg=250\n" +
		"2026-03-30 total=1 completed=0 failed=0 cancelled=1 active=0 rate=null avg=null\n"
	if s.lines() != want || s.Granularity != "week" {
		t.Fatalf("Berlin weeks:\n%swant\n%s", s.lines(), want)
	}

	// Another user sees none of these private flows: every bucket is empty, and naming the flow is 404.
	stGet(t, e, strangerTok, "/stats/executions?timezone=Europe/Berlin&from=2026-03-28&to=2026-03-29", &s)
	if s.Totals.Total != 0 || len(s.Buckets) != 2 {
		t.Fatalf("a stranger's series: %s totals %s", s.lines(), s.Totals)
	}
	resp, body := e.Do(http.MethodGet, BasePath+"/stats/executions?flow_id="+fmt.Sprint(a), strangerTok, "", nil)
	flWantProblem(t, resp, body, http.StatusNotFound, "not-found")

	// At most 366 days, both inclusive.
	stGet(t, e, tok, "/stats/executions?from=2025-01-01&to=2026-01-01", &s)
	if len(s.Buckets) != 366 {
		t.Fatalf("366-day series has %d buckets", len(s.Buckets))
	}
	resp, body = e.Do(http.MethodGet, BasePath+"/stats/executions?from=2025-01-01&to=2026-01-02", tok, "", nil)
	flWantProblem(t, resp, body, http.StatusUnprocessableEntity, "unprocessable", "#/query/to")
	resp, body = e.Do(http.MethodGet, BasePath+"/stats/executions?granularity=month", tok, "", nil)
	flWantProblem(t, resp, body, http.StatusBadRequest, "validation-error", "#/query/granularity")

	// The default range is the last 30 days up to today.
	stGet(t, e, tok, "/stats/executions?timezone=UTC", &s)
	today := time.Now().UTC()
	if len(s.Buckets) != 30 || s.To != today.Format(time.DateOnly) || s.From != today.AddDate(0, 0, -29).Format(time.DateOnly) {
		t.Fatalf("default range %s..%s with %d buckets", s.From, s.To, len(s.Buckets))
	}
}

func TestStatsBuckets(t *testing.T) {
	berlin, _ := time.LoadLocation("Europe/Berlin")
	day := func(s string) time.Time { d, _ := time.Parse(time.DateOnly, s); return d }
	r := statsRange{tz: "Europe/Berlin", loc: berlin, from: day("2026-03-29"), to: day("2026-04-06")}
	keys, bounds := r.buckets(true)
	var got []string
	for i, k := range keys {
		got = append(got, k.Format(time.DateOnly)+"@"+bounds[i].Format(time.RFC3339))
	}
	got = append(got, bounds[len(bounds)-1].Format(time.RFC3339))
	want := "2026-03-23@2026-03-28T23:00:00Z 2026-03-30@2026-03-29T22:00:00Z 2026-04-06@2026-04-05T22:00:00Z 2026-04-06T22:00:00Z"
	if strings.Join(got, " ") != want {
		t.Fatalf("weeks %s, want %s", strings.Join(got, " "), want)
	}
	keys, bounds = r.buckets(false)
	if len(keys) != 9 || len(bounds) != 10 || bounds[1].Sub(bounds[0]) != 23*time.Hour || bounds[2].Sub(bounds[1]) != 24*time.Hour {
		t.Fatalf("%d days, %d bounds", len(keys), len(bounds))
	}
	for _, c := range []struct{ in, out string }{{"=1+1", "'=1+1"}, {"+x", "'+x"}, {"-2", "'-2"}, {"@a", "'@a"},
		{"\tx", "'\tx"}, {"\rx", "'\rx"}, {"a=b", "a=b"}, {"", ""}} {
		if got := csvCell(c.in); got != c.out {
			t.Errorf("csvCell(%q) = %q, want %q", c.in, got, c.out)
		}
	}
}

func TestStatsExport(t *testing.T) {
	e := newTestEnv(t)
	admin, adminTok := e.User(rbac.Admin)
	_, editorTok := e.User(rbac.Editor)
	other, _ := e.User(rbac.Editor)
	// An admin exports every flow's runs; a non-admin with analytics:export would see only visible ones,
	// which rbac grants to no such role, so visibility is checked on the same query through a viewer below.
	f := stFlow(t, e, admin, "private", "published", `=HYPERLINK("http://x","y"), "quoted"`)
	g := stFlow(t, e, other, "private", "draft", "plain")
	ids := stRuns(t, e, f, &admin.ID,
		stRun{"completed", "2026-03-02T08:00:00.5Z", 1234},
		stRun{"failed", "2026-03-02T09:00:00Z", 0},
	)
	stRuns(t, e, f, nil, stRun{"completed", "2026-03-01T22:59:59Z", 1}) // 1 March in Berlin: out of range
	var many []stRun
	for i := 0; i < 1100; i++ {
		many = append(many, stRun{"queued", fmt.Sprintf("2026-03-03T%02d:%02d:%02dZ", i/3600, i/60%60, i%60), 0})
	}
	stRuns(t, e, g, nil, many...)

	q := url.Values{"dataset": {"executions"}, "from": {"2026-03-02"}, "to": {"2026-03-03"}, "timezone": {"Europe/Berlin"}}
	resp, body := e.Do(http.MethodGet, BasePath+"/stats/export?"+q.Encode(), adminTok, "", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("export: %d %s", resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/csv") {
		t.Fatalf("Content-Type %q", ct)
	}
	if cd := resp.Header.Get("Content-Disposition"); cd != `attachment; filename="executions-2026-03-02-2026-03-03.csv"` {
		t.Fatalf("Content-Disposition %q", cd)
	}
	if !bytes.HasPrefix(body, []byte("\uFEFF")) {
		t.Fatal("no byte-order mark")
	}
	lines := strings.Split(strings.TrimPrefix(string(body), "\uFEFF"), "\r\n")
	if lines[len(lines)-1] != "" || len(lines) != 1+2+1100+1 {
		t.Fatalf("%d CRLF lines (want a header, 1102 rows and a final CRLF); last %q", len(lines), lines[len(lines)-1])
	}
	if lines[0] != strings.Join(exportColumns, ",") {
		t.Fatalf("header %q", lines[0])
	}
	wantFirst := fmt.Sprintf(`%d,%d,"'=HYPERLINK(""http://x"",""y""), ""quoted""",,1,manual,completed,%d,,,,false,,`+
		`2026-03-02T08:00:00.500Z,2026-03-02T08:00:00.510Z,2026-03-02T08:00:01.744Z,1234,2,0,0,0`, ids[0], f, admin.ID)
	if lines[1] != wantFirst {
		t.Fatalf("first row\n%s\nwant\n%s", lines[1], wantFirst)
	}
	wantSecond := fmt.Sprintf(`%d,%d,"'=HYPERLINK(""http://x"",""y""), ""quoted""",,1,manual,failed,%d,,,,true,node-failed,`+
		`2026-03-02T09:00:00.000Z,,,,2,0,0,0`, ids[1], f, admin.ID)
	if lines[2] != wantSecond {
		t.Fatalf("second row\n%s\nwant\n%s", lines[2], wantSecond)
	}
	// Ordered by id across the 500-row batches, none lost or repeated.
	var prev int64
	for _, l := range lines[1 : len(lines)-1] {
		var id int64
		fmt.Sscanf(l, "%d,", &id)
		if id <= prev {
			t.Fatalf("id %d after %d", id, prev)
		}
		prev = id
	}

	// The audit row names the export, not its rows.
	rows := alRows(t, e, "analytics.export")
	if len(rows) != 1 || rows[0].ActorUserID == nil || *rows[0].ActorUserID != admin.ID || rows[0].Metadata == nil {
		t.Fatalf("audit rows %+v", rows)
	}
	var meta map[string]string
	if err := json.Unmarshal(*rows[0].Metadata, &meta); err != nil || meta["dataset"] != "executions" || meta["format"] != "csv" ||
		meta["from"] != "2026-03-02" || meta["to"] != "2026-03-03" || meta["timezone"] != "Europe/Berlin" {
		t.Fatalf("audit metadata %s", *rows[0].Metadata)
	}

	// NDJSON: one object per line, nulls as null, the same rows.
	q.Set("format", "ndjson")
	resp, body = e.Do(http.MethodGet, BasePath+"/stats/export?"+q.Encode(), adminTok, "", nil)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/x-ndjson" ||
		resp.Header.Get("Content-Disposition") != `attachment; filename="executions-2026-03-02-2026-03-03.ndjson"` {
		t.Fatalf("ndjson export: %d %v", resp.StatusCode, resp.Header)
	}
	sc := bufio.NewScanner(bytes.NewReader(body))
	n := 0
	for sc.Scan() {
		var obj map[string]any
		if err := json.Unmarshal(sc.Bytes(), &obj); err != nil {
			t.Fatalf("line %d: %v: %s", n+1, err, sc.Text())
		}
		if len(obj) != len(exportColumns) {
			t.Fatalf("line %d has %d members", n+1, len(obj))
		}
		if n == 1 {
			if obj["status"] != "failed" || obj["error_code"] != "node-failed" || obj["started_at"] != nil || obj["duration_ms"] != nil ||
				obj["queued_at"] != "2026-03-02T09:00:00.000Z" || obj["flow_name"] != `=HYPERLINK("http://x","y"), "quoted"` {
				t.Fatalf("second line %s", sc.Text())
			}
		}
		n++
	}
	if n != 1102 {
		t.Fatalf("%d NDJSON lines", n)
	}

	// Visibility: a viewer who cannot read the other editor's private flow gets none of its runs.
	got, err := store.ExportRunsAfter(t.Context(), e.DB.DB, store.Viewer{UserID: admin.ID}, time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2026, 3, 4, 0, 0, 0, 0, time.UTC), 0, 500)
	if err != nil || len(got) != 3 {
		t.Fatalf("a non-admin viewer's export has %d rows (%v), want the 3 runs of their own flow", len(got), err)
	}

	// An empty range is a header only; a range over 92 days is refused; managers may not export.
	q = url.Values{"dataset": {"executions"}, "from": {"2025-01-01"}, "to": {"2025-01-01"}}
	_, body = e.Do(http.MethodGet, BasePath+"/stats/export?"+q.Encode(), adminTok, "", nil)
	if string(body) != "\uFEFF"+strings.Join(exportColumns, ",")+"\r\n" {
		t.Fatalf("empty export %q", body)
	}
	q.Set("to", "2025-04-03") // 93 days
	resp, body = e.Do(http.MethodGet, BasePath+"/stats/export?"+q.Encode(), adminTok, "", nil)
	flWantProblem(t, resp, body, http.StatusUnprocessableEntity, "unprocessable", "#/query/to")
	resp, body = e.Do(http.MethodGet, BasePath+"/stats/export?dataset=messages", adminTok, "", nil)
	flWantProblem(t, resp, body, http.StatusBadRequest, "validation-error", "#/query/dataset")
	resp, body = e.Do(http.MethodGet, BasePath+"/stats/export?dataset=executions", editorTok, "", nil)
	if p := flWantProblem(t, resp, body, http.StatusForbidden, "forbidden"); p.MissingPermission != "analytics:export" {
		t.Fatalf("missing_permission %q", p.MissingPermission)
	}
	if len(alRows(t, e, "analytics.export")) != 3 {
		t.Fatal("a refused export wrote an audit row, or a served one did not")
	}
}

func init() {
	// The response validator reads NDJSON exports as text, like event streams.
	openapi3filter.RegisterBodyDecoder("application/x-ndjson", openapi3filter.PlainBodyDecoder)
}
