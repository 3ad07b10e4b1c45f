package flow

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
)

// Limits bound a graph's size (FLOW_MAX_NODES, FLOW_MAX_EDGES, FLOW_MAX_BYTES).
type Limits struct {
	MaxNodes int
	MaxEdges int
	MaxBytes int
}

// Issue is one finding about a graph. Pointers start at the graph's own location (base).
type Issue struct {
	Pointer  string
	Code     string
	Message  string
	Severity string // "error" or "warning"
}

const (
	SeverityError   = "error"
	SeverityWarning = "warning"
)

// ReservedRoots cannot be node ids: templates resolve them before node ids (PRODUCT §6.4).
var ReservedRoots = map[string]bool{
	"trigger": true, "input": true, "vars": true, "conversation": true, "contact": true,
	"execution": true, "flow": true, "now": true, "nodes": true,
}

// runtimeKeys are written into node data by the editor while showing a run; they are never stored.
var runtimeKeys = []string{"executionStatus", "executionError", "executionOutput"}

// Graph is the parsed form the checks work on; unknown keys stay in the raw maps.
type Graph struct {
	Nodes []map[string]any
	Edges []map[string]any
	raw   map[string]any
}

// Parse reads a graph document.
func Parse(data []byte) (*Graph, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var raw map[string]any
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("graph is not a JSON object: %w", err)
	}
	if raw == nil {
		return nil, errors.New("graph is not a JSON object: null")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("graph is not a JSON object: unexpected data after the object")
	}
	g := &Graph{raw: raw}
	g.Nodes = objects(raw["nodes"])
	g.Edges = objects(raw["edges"])
	return g, nil
}

func objects(v any) []map[string]any {
	list, _ := v.([]any)
	out := make([]map[string]any, 0, len(list))
	for _, item := range list {
		m, _ := item.(map[string]any)
		if m == nil {
			m = map[string]any{}
		}
		out = append(out, m)
	}
	return out
}

// Clean drops the editor's run-time keys from every node's data and returns compact JSON.
func (g *Graph) Clean() ([]byte, error) {
	for _, n := range g.Nodes {
		if d, ok := n["data"].(map[string]any); ok {
			for _, k := range runtimeKeys {
				delete(d, k)
			}
		}
	}
	return json.Marshal(g.raw)
}

// NodeCount is the number of nodes.
func (g *Graph) NodeCount() int { return len(g.Nodes) }

// Hash is the SHA-256 of the graph's canonical content: for nodes id, data.type, data.config,
// data.on_error and data.retry; edges whole. Positions, labels and the viewport are ignored, so
// moving a node does not count as an unpublished change.
func (g *Graph) Hash() string {
	type node struct {
		ID      any `json:"id"`
		Type    any `json:"type"`
		Config  any `json:"config"`
		OnError any `json:"on_error"`
		Retry   any `json:"retry"`
	}
	type edge struct {
		ID, Source, Target, SourceHandle, TargetHandle any
	}
	c := struct {
		Nodes []node `json:"nodes"`
		Edges []edge `json:"edges"`
	}{Nodes: []node{}, Edges: []edge{}}
	for _, n := range g.Nodes {
		d, _ := n["data"].(map[string]any)
		c.Nodes = append(c.Nodes, node{n["id"], d["type"], d["config"], d["on_error"], d["retry"]})
	}
	for _, e := range g.Edges {
		c.Edges = append(c.Edges, edge{e["id"], e["source"], e["target"], e["sourceHandle"], e["targetHandle"]})
	}
	b, _ := json.Marshal(c) // maps marshal with sorted keys: canonical
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

func nodeType(n map[string]any) string {
	d, _ := n["data"].(map[string]any)
	return str(d["type"])
}

// IsTrigger reports whether a node-type id is of category trigger.
func IsTrigger(typ string) bool { return strings.HasPrefix(typ, "trigger-") }

// CheckStructure runs the structural checks of PRODUCT §6.2 that every save must pass. size is the
// compact JSON size of the graph. base is the pointer of the graph in the request body ("/data").
// Every issue it returns is an error; the warnings (a reference to a node that is not upstream) come
// only from Validate.
func (g *Graph) CheckStructure(base string, size int, lim Limits) []Issue {
	return g.structure(base, size, lim, false)
}

func (g *Graph) structure(base string, size int, lim Limits, warnings bool) []Issue {
	var issues []Issue
	add := func(ptr, code, format string, args ...any) {
		issues = append(issues, Issue{Pointer: base + ptr, Code: code, Message: fmt.Sprintf(format, args...), Severity: SeverityError})
	}
	if lim.MaxBytes > 0 && size > lim.MaxBytes {
		add("", "too-large", "the graph is %d bytes, over the limit of %d", size, lim.MaxBytes)
	}
	if lim.MaxNodes > 0 && len(g.Nodes) > lim.MaxNodes {
		add("/nodes", "too-large", "the graph has %d nodes, over the limit of %d", len(g.Nodes), lim.MaxNodes)
	}
	if lim.MaxEdges > 0 && len(g.Edges) > lim.MaxEdges {
		add("/edges", "too-large", "the graph has %d edges, over the limit of %d", len(g.Edges), lim.MaxEdges)
	}
	if len(issues) > 0 {
		return issues // the rest is not worth computing on an oversized graph
	}

	index := make(map[string]int, len(g.Nodes))
	types := make([]*NodeType, len(g.Nodes))
	triggers := 0
	for i, n := range g.Nodes {
		id := str(n["id"])
		p := "/nodes/" + strconv.Itoa(i)
		switch {
		case ReservedRoots[id]:
			add(p+"/id", "reserved-id", "node id %q is a reserved template root", id)
		case index[id] > 0:
			add(p+"/id", "duplicate-id", "node id %q is already used by node %d", id, index[id]-1)
		default:
			index[id] = i + 1
		}
		typ := nodeType(n)
		if types[i] = lookup(typ); types[i] == nil {
			add(p+"/data/type", "unknown-node-type", "%s", unknownTypeMessage(typ))
		}
		if IsTrigger(typ) {
			triggers++
			if triggers > 1 {
				add(p+"/data/type", "multiple-triggers", "a flow has at most one trigger node")
			}
		}
	}
	edgeIDs := map[string]int{}
	seen := map[string]bool{}
	adj := map[string][]string{}
	handles := make([][]string, len(g.Nodes)) // OutputHandles per source node, computed on first use
	for i, e := range g.Edges {
		id, src, dst := str(e["id"]), str(e["source"]), str(e["target"])
		p := "/edges/" + strconv.Itoa(i)
		if j, dup := edgeIDs[id]; dup {
			add(p+"/id", "duplicate-id", "edge id %q is already used by edge %d", id, j)
		} else {
			edgeIDs[id] = i
		}
		if index[src] == 0 {
			add(p+"/source", "dangling-edge", "edge %q starts at the unknown node %q", id, src)
			continue
		}
		if index[dst] == 0 {
			add(p+"/target", "dangling-edge", "edge %q ends at the unknown node %q", id, dst)
			continue
		}
		if src == dst {
			add(p+"/target", "dangling-edge", "edge %q loops from node %q to itself", id, src)
			continue
		}
		s := index[src] - 1
		handle, handleOK := e["sourceHandle"].(string)
		if !handleOK && e["sourceHandle"] != nil {
			add(p+"/sourceHandle", "bad-handle", "edge %q: sourceHandle must be a string or absent", id)
			continue
		}
		var hs []string
		if types[s] != nil {
			if handles[s] == nil {
				handles[s] = outputHandles(g.Nodes[s], types[s])
			}
			hs = handles[s]
			if handle == "" && len(hs) == 1 {
				handle = hs[0] // an absent handle on a single-output node means that output
			}
		}
		key := src + "\x00" + handle + "\x00" + dst
		if seen[key] {
			add(p, "bad-handle", "edge %q duplicates another edge from %q to %q", id, src, dst)
			continue
		}
		seen[key] = true
		if types[s] != nil {
			switch {
			case handle == "" && len(hs) == 0:
				add(p+"/source", "bad-handle", "edge %q leaves node %q, which has no outputs", id, src)
			case handle == "":
				add(p+"/sourceHandle", "bad-handle", "edge %q leaves node %q without a sourceHandle; node %q has several outputs, so name one of %s",
					id, src, src, strings.Join(hs, ", "))
			case !slices.Contains(hs, handle):
				add(p+"/sourceHandle", "bad-handle", "edge %q leaves node %q by the handle %q, which it does not have; its outputs are %s",
					id, src, handle, strings.Join(hs, ", "))
			}
		}
		if IsTrigger(nodeType(g.Nodes[index[dst]-1])) {
			add(p+"/target", "multiple-triggers", "edge %q enters the trigger node %q", id, dst)
		}
		adj[src] = append(adj[src], dst)
	}
	if cyc := findCycle(g.Nodes, adj); cyc != "" {
		add("/nodes/"+strconv.Itoa(index[cyc]-1)+"/id", "cycle", "node %q is part of a cycle; flows must be acyclic", cyc)
	}
	c := checker{g: g, base: base, warnings: warnings, index: index, adj: adj, issues: issues}
	for i, n := range g.Nodes {
		if types[i] != nil {
			c.node(i, n, types[i])
		}
	}
	return c.issues
}

// findCycle returns a node on a cycle, or "" (iterative three-colour DFS, safe on deep graphs).
func findCycle(nodes []map[string]any, adj map[string][]string) string {
	const (
		white = iota
		grey
		black
	)
	colour := map[string]int{}
	type frame struct {
		id   string
		next int
	}
	for _, n := range nodes {
		start := str(n["id"])
		if colour[start] != white {
			continue
		}
		stack := []frame{{id: start}}
		colour[start] = grey
		for len(stack) > 0 {
			top := &stack[len(stack)-1]
			if top.next < len(adj[top.id]) {
				nxt := adj[top.id][top.next]
				top.next++
				switch colour[nxt] {
				case grey:
					return nxt
				case white:
					colour[nxt] = grey
					stack = append(stack, frame{id: nxt})
				}
				continue
			}
			colour[top.id] = black
			stack = stack[:len(stack)-1]
		}
	}
	return ""
}

// CheckCompleteness reports what a draft may lack but publishing and executing need: exactly one
// trigger, every other node reachable from it, and every required config value (missing-config).
func (g *Graph) CheckCompleteness(base string) []Issue {
	var issues []Issue
	trigger := -1
	for i, n := range g.Nodes {
		if IsTrigger(nodeType(n)) && trigger < 0 {
			trigger = i
		}
	}
	var reached map[string]bool
	if trigger < 0 {
		issues = append(issues, Issue{Pointer: base + "/nodes", Code: "missing-trigger", Message: "the flow needs exactly one trigger node", Severity: SeverityError})
	} else {
		adj := map[string][]string{}
		for _, e := range g.Edges {
			adj[str(e["source"])] = append(adj[str(e["source"])], str(e["target"]))
		}
		reached = map[string]bool{}
		queue := []string{str(g.Nodes[trigger]["id"])}
		for len(queue) > 0 {
			id := queue[0]
			queue = queue[1:]
			if reached[id] {
				continue
			}
			reached[id] = true
			queue = append(queue, adj[id]...)
		}
	}
	for i, n := range g.Nodes {
		if id := str(n["id"]); reached != nil && !reached[id] {
			issues = append(issues, Issue{Pointer: base + "/nodes/" + strconv.Itoa(i), Code: "unreachable",
				Message: fmt.Sprintf("node %q is not reachable from the trigger", id), Severity: SeverityError})
		}
		if t := lookup(nodeType(n)); t != nil {
			issues = missingConfig(base, i, n, t, issues)
		}
	}
	return issues
}

// Validate runs both kinds of checks: what flow.validation and POST /flows/{id}/validate report. Unlike
// CheckStructure, it also reports warnings (severity "warning"): references to nodes that are not
// upstream of the node using them.
func (g *Graph) Validate(base string, size int, lim Limits) []Issue {
	issues := g.structure(base, size, lim, true)
	return append(issues, g.CheckCompleteness(base)...)
}
