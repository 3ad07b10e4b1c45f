package engine

import (
	"container/heap"
	"encoding/json"
	"fmt"

	"github.com/wataomi/wataomi/flow"
)

// node is one node of a compiled plan.
type node struct {
	idx     int
	ID      string
	Type    string
	Label   string
	Def     flow.NodeType
	Raw     map[string]any // the node as stored
	RawCfg  map[string]any // data.config as stored (AI precedence needs to see which keys are present)
	Config  map[string]any // data.config with the type's defaults
	OnError string
	Retry   flow.RetryPolicy
	Handles []string // the handles this node can select
	In      []int    // incoming edge indexes
	Out     []int    // outgoing edge indexes
}

// edge is one edge of a plan; Handle is the source handle it leaves from.
type edge struct {
	Src, Dst int
	Handle   string
}

// Plan is a graph compiled for execution: nodes, edges, and the order in which
// they run (topological, ties broken by node id; PRODUCT §6.5).
type Plan struct {
	Nodes   []*node
	Edges   []edge
	Order   []int
	Trigger int // index of the trigger node, -1 when there is none
	byID    map[string]int
	nodeIDs []string
}

// Compile builds a plan from a stored graph. The graph must have passed the
// structural checks; Compile still refuses what it cannot run.
func Compile(graph []byte) (*Plan, error) {
	g, err := flow.Parse(graph)
	if err != nil {
		return nil, err
	}
	p := &Plan{Trigger: -1, byID: make(map[string]int, len(g.Nodes))}
	for i, raw := range g.Nodes {
		id, typ := flow.NodeID(raw), flow.NodeTypeOf(raw)
		def, ok := flow.LookupNodeType(typ)
		if !ok {
			return nil, fmt.Errorf("node %q has the unknown type %q", id, typ)
		}
		if _, dup := p.byID[id]; dup {
			return nil, fmt.Errorf("duplicate node id %q", id)
		}
		rawCfg := flow.NodeConfig(raw)
		onErr, retry := flow.NodeSettings(raw)
		n := &node{
			idx: i, ID: id, Type: typ, Label: flow.NodeLabel(raw), Def: def, Raw: raw,
			RawCfg: rawCfg, Config: flow.WithDefaults(typ, rawCfg), OnError: onErr, Retry: retry,
			Handles: flow.OutputHandles(raw),
		}
		p.byID[id] = i
		p.Nodes = append(p.Nodes, n)
		p.nodeIDs = append(p.nodeIDs, id)
		if def.Category == "trigger" {
			if p.Trigger >= 0 {
				return nil, fmt.Errorf("more than one trigger node")
			}
			p.Trigger = i
		}
	}
	for _, e := range g.Edges {
		src, ok1 := p.byID[str(e["source"])]
		dst, ok2 := p.byID[str(e["target"])]
		if !ok1 || !ok2 {
			return nil, fmt.Errorf("edge %q has an unknown end", str(e["id"]))
		}
		h := str(e["sourceHandle"])
		if h == "" {
			h = defaultHandle(p.Nodes[src].Handles)
		}
		p.Edges = append(p.Edges, edge{Src: src, Dst: dst, Handle: h})
		k := len(p.Edges) - 1
		p.Nodes[src].Out = append(p.Nodes[src].Out, k)
		p.Nodes[dst].In = append(p.Nodes[dst].In, k)
	}
	order, err := p.topoOrder()
	if err != nil {
		return nil, err
	}
	p.Order = order
	return p, nil
}

// defaultHandle is what an edge without sourceHandle leaves from: "out" when the
// node has it, else its only handle.
func defaultHandle(handles []string) string {
	for _, h := range handles {
		if h == "out" {
			return h
		}
	}
	if len(handles) > 0 {
		return handles[0]
	}
	return "out"
}

// idHeap orders ready nodes by id.
type idHeap struct {
	idx []int
	p   *Plan
}

func (h idHeap) Len() int           { return len(h.idx) }
func (h idHeap) Less(i, j int) bool { return h.p.Nodes[h.idx[i]].ID < h.p.Nodes[h.idx[j]].ID }
func (h idHeap) Swap(i, j int)      { h.idx[i], h.idx[j] = h.idx[j], h.idx[i] }
func (h *idHeap) Push(x any)        { h.idx = append(h.idx, x.(int)) }
func (h *idHeap) Pop() any {
	n := len(h.idx) - 1
	x := h.idx[n]
	h.idx = h.idx[:n]
	return x
}

// topoOrder is Kahn's algorithm with the ready set ordered by node id.
func (p *Plan) topoOrder() ([]int, error) {
	indeg := make([]int, len(p.Nodes))
	for _, e := range p.Edges {
		indeg[e.Dst]++
	}
	h := &idHeap{p: p}
	for i, d := range indeg {
		if d == 0 {
			h.idx = append(h.idx, i)
		}
	}
	heap.Init(h)
	order := make([]int, 0, len(p.Nodes))
	for h.Len() > 0 {
		i := heap.Pop(h).(int)
		order = append(order, i)
		for _, k := range p.Nodes[i].Out {
			d := p.Edges[k].Dst
			if indeg[d]--; indeg[d] == 0 {
				heap.Push(h, d)
			}
		}
	}
	if len(order) != len(p.Nodes) {
		return nil, fmt.Errorf("the graph has a cycle")
	}
	return order, nil
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

// jsonSize is the compact JSON size of v.
func jsonSize(v any) (int, []byte, error) {
	b, err := json.Marshal(v)
	return len(b), b, err
}
