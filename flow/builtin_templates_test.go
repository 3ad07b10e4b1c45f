package flow_test

import (
	"bytes"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/wataomi/wataomi/flow"
	"github.com/wataomi/wataomi/flow/expr"
)

var btLimits = flow.Limits{MaxNodes: 200, MaxEdges: 500, MaxBytes: 1 << 20}

// btPointer resolves an RFC 6901 pointer in a decoded JSON document.
func btPointer(doc any, ptr string) (any, bool) {
	if ptr == "" {
		return doc, true
	}
	if !strings.HasPrefix(ptr, "/") {
		return nil, false
	}
	cur := doc
	for _, tok := range strings.Split(ptr[1:], "/") {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		switch v := cur.(type) {
		case map[string]any:
			next, ok := v[tok]
			if !ok {
				return nil, false
			}
			cur = next
		case []any:
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(v) {
				return nil, false
			}
			cur = v[i]
		default:
			return nil, false
		}
	}
	return cur, true
}

// btAncestors maps each node id to the ids it can be reached from through edges.
func btAncestors(g *flow.Graph) map[string]map[string]bool {
	parents := map[string][]string{}
	for _, e := range g.Edges {
		src, _ := e["source"].(string)
		dst, _ := e["target"].(string)
		parents[dst] = append(parents[dst], src)
	}
	out := map[string]map[string]bool{}
	for _, n := range g.Nodes {
		id := flow.NodeID(n)
		seen := map[string]bool{}
		stack := append([]string(nil), parents[id]...)
		for len(stack) > 0 {
			p := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			if seen[p] {
				continue
			}
			seen[p] = true
			stack = append(stack, parents[p]...)
		}
		out[id] = seen
	}
	return out
}

// Every shipped template is one a user can start from (PRODUCT §5.5): it passes the structural
// checks, it is incomplete only at its placeholders, whose values are empty (never example URLs or
// fake ids), and every {{reference}} names a reserved root or a node upstream of its user.
func TestBuiltinTemplates(t *testing.T) {
	all := flow.BuiltinTemplates()
	if len(all) == 0 {
		t.Fatal("the catalogue is empty")
	}
	keys := map[string]bool{}
	for _, bt := range all {
		t.Run(bt.Key, func(t *testing.T) {
			if keys[bt.Key] {
				t.Fatalf("system key %q is used twice", bt.Key)
			}
			keys[bt.Key] = true
			if bt.Name == "" || len([]rune(bt.Name)) > 200 || bt.Description == "" || len([]rune(bt.Description)) > 2000 || bt.Icon == "" || bt.Category == "" {
				t.Fatalf("name, description, icon and category must be set within the API's limits: %+v", bt)
			}
			g, err := flow.Parse(bt.Graph)
			if err != nil {
				t.Fatal(err)
			}
			var compact bytes.Buffer
			if err := json.Compact(&compact, bt.Graph); err != nil {
				t.Fatal(err)
			}
			if issues := g.CheckStructure("", compact.Len(), btLimits); len(issues) > 0 {
				t.Fatalf("structural issues: %+v", issues)
			}
			// Validate also reports the upstream warnings of bad-reference: none is allowed.
			for _, is := range g.Validate("", compact.Len(), btLimits) {
				if !slices.Contains(bt.Placeholders, is.Pointer) {
					t.Errorf("issue outside the placeholders: %+v", is)
				}
			}
			if len(bt.Placeholders) == 0 {
				t.Error("no placeholders: a template whose every value is filled in is a flow")
			}
			var doc any
			if err := json.Unmarshal(bt.Graph, &doc); err != nil {
				t.Fatal(err)
			}
			missing := map[string]bool{}
			for _, is := range g.CheckCompleteness("") {
				missing[is.Pointer] = true
			}
			for _, ph := range bt.Placeholders {
				v, ok := btPointer(doc, ph)
				if ok && v != "" && v != nil {
					t.Errorf("placeholder %s holds %v; placeholders are left empty", ph, v)
				}
				if !missing[ph] {
					t.Errorf("placeholder %s is not a completeness issue: the user would not be asked for a value it does not need", ph)
				}
			}

			ancestors := btAncestors(g)
			ids := map[string]bool{}
			for _, n := range g.Nodes {
				ids[flow.NodeID(n)] = true
			}
			refs := 0
			for _, n := range g.Nodes {
				id := flow.NodeID(n)
				rs, err := expr.Refs(flow.NodeConfig(n))
				if err != nil {
					t.Fatalf("node %s: %v", id, err)
				}
				for _, r := range rs {
					refs++
					switch {
					case flow.ReservedRoots[r.Root]:
					case !ids[r.Root]:
						t.Errorf("node %s: {{%s}} names no node", id, r.Raw)
					case !ancestors[id][r.Root]:
						t.Errorf("node %s: {{%s}} names node %s, which does not run before it", id, r.Raw, r.Root)
					}
				}
			}
			if refs == 0 {
				t.Error("the template passes no data between its nodes")
			}
		})
	}
}

// The rest of the PRODUCT §5.5 catalogue waits for node types. Once every type a pending template
// needs is registered, this fails: write the template then.
func TestPendingTemplates(t *testing.T) {
	shipped := map[string]bool{}
	for _, bt := range flow.BuiltinTemplates() {
		shipped[bt.Key] = true
	}
	for _, pt := range flow.PendingTemplates() {
		if shipped[pt.Key] {
			t.Errorf("%s is both shipped and pending", pt.Key)
		}
		waiting := 0
		for _, typ := range pt.Needs {
			if _, ok := flow.LookupNodeType(typ); !ok {
				waiting++
			}
		}
		if waiting == 0 {
			t.Errorf("%s: every node type it needs (%v) is registered now: add it to the built-in catalogue", pt.Key, pt.Needs)
		}
	}
}

// BuiltinTemplates hands out copies: a caller cannot change the catalogue.
func TestBuiltinTemplatesAreCopies(t *testing.T) {
	a := flow.BuiltinTemplates()
	a[0].Graph[0] = 'X'
	a[0].Placeholders[0] = "/changed"
	b := flow.BuiltinTemplates()
	if b[0].Graph[0] == 'X' || b[0].Placeholders[0] == "/changed" {
		t.Fatal("the catalogue was changed through a returned value")
	}
}
