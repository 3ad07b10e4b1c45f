package engine

import (
	"context"
	"encoding/json"
	"testing"
	"time"
)

// nopSink drops everything a run produces.
type nopSink struct{}

func (nopSink) Event(string, map[string]any)     {}
func (nopSink) Record(*Record)                   {}
func (nopSink) Checkpoint(context.Context) error { return nil }

// logicFlow10 is a 10-node pure logic flow in which every node runs:
// trigger → condition (true) → set-variable → switch (case "big") → five
// CEL transforms → response.
func logicFlow10(tb testing.TB) []byte {
	sw := gnode{id: "sw", typ: "logic-switch", cfg: map[string]any{
		"value": "{{sv.total}}",
		"cases": []any{
			map[string]any{"id": "big", "operator": "greater_than", "compare_to": 100},
			map[string]any{"id": "small", "operator": "less_than", "compare_to": "{{t.input.floor}}"},
		},
	}}
	return buildGraph(tb, []gnode{
		manual(),
		condition("cond", "greater_than", "{{t.input.qty}}", 5),
		{id: "sv", typ: "logic-set-variable", cfg: map[string]any{"variables": map[string]any{
			"total": `trigger.input.qty * trigger.input.price`,
			"label": `"order-" + string(trigger.input.qty)`,
		}}},
		sw,
		transform("tr1", map[string]any{"discount": `vars.total > 500 ? vars.total / 10 : 0`, "currency": `"EUR"`}),
		transform("tr2", map[string]any{"net": `vars.total - tr1.discount`, "tags": `trigger.input.tags.map(t, string(t).upperAscii())`}),
		transform("tr3", map[string]any{"vat": `double(tr2.net) * 0.2`, "has_vip": `"VIP" in tr2.tags`}),
		transform("tr4", map[string]any{"gross": `double(tr2.net) + double(tr3.vat)`, "name": `vars.label + "/" + tr1.currency`}),
		transform("tr5", map[string]any{"summary": `{"name": tr4.name, "gross": tr4.gross, "vip": tr3.has_vip, "count": size(tr2.tags)}`}),
		response("r", map[string]any{"summary": "{{tr5.summary}}", "case": "{{sw.matched_case}}"}),
	}, []gedge{
		{"t", "cond", ""}, {"cond", "sv", "true"}, {"sv", "sw", ""}, {"sw", "tr1", "big"},
		{"tr1", "tr2", ""}, {"tr2", "tr3", ""}, {"tr3", "tr4", ""}, {"tr4", "tr5", ""}, {"tr5", "r", ""},
	})
}

// BenchmarkExecutor10NodeLogic runs the 10-node logic flow in full per
// iteration (a fresh State, the compiled plan reused, a no-op sink) and
// reports node executions per second; the target is ≥ 50,000 nodes/s.
func BenchmarkExecutor10NodeLogic(b *testing.B) {
	plan := mustCompile(b, logicFlow10(b))
	x := &Executor{Services: &Services{}}
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	input := map[string]any{"qty": 12, "price": 50, "floor": 3, "tags": []any{"vip", "new"}}
	info := RunInfo{ExecutionID: 1, Mode: "manual", FlowID: 1, FlowName: "bench", StartedAt: now, QueuedAt: now, Input: input}
	ctx := context.Background()

	// One checked run first: every node must complete.
	out := x.Execute(ctx, NewState(plan, info, nil), nopSink{})
	if out.Status != "completed" || out.Completed != 10 || out.HasErrors {
		b.Fatalf("the benchmark flow does not run fully: %+v (error %v at %q)", out, out.Error, out.ErrorNode)
	}

	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		out := x.Execute(ctx, NewState(plan, info, nil), nopSink{})
		if out.Completed != 10 {
			b.Fatalf("run %d: %s after %d nodes (error %v at %q)", i, out.Status, out.Completed, out.Error, out.ErrorNode)
		}
	}
	b.ReportMetric(float64(b.N*10)/b.Elapsed().Seconds(), "nodes/s")
}

// TestBenchmarkFlowOutput checks what the benchmark flow computes, so the
// benchmark measures a flow that really does its work.
func TestBenchmarkFlowOutput(t *testing.T) {
	r := newRig(t)
	out, sink := r.run(t, logicFlow10(t), map[string]any{"qty": 12, "price": 50, "floor": 3, "tags": []any{"vip", "new"}})
	wantOutcome(t, out, "completed", "")
	if out.Completed != 10 {
		t.Errorf("completed %d nodes, want 10", out.Completed)
	}
	// total 600 → discount 60 → net 540 → vat 108 → gross 648.
	jsonEqual(t, "body", out.OutputData.(map[string]any)["body"], map[string]any{
		"case":    "big",
		"summary": map[string]any{"name": "order-12/EUR", "gross": json.Number("648.0"), "vip": true, "count": 2},
	})
	if rec := record(t, sink, "sw"); rec.Handle != "big" {
		t.Errorf("switch handle %q", rec.Handle)
	}
}
