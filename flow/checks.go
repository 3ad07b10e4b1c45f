package flow

import (
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/robfig/cron/v3"

	"github.com/wataomi/wataomi/ai"
	"github.com/wataomi/wataomi/flow/expr"
)

// This file holds the per-node checks of PRODUCT §6.2 that depend on the node-type registry:
// unknown-node-type, bad-config, bad-handle, bad-reference (CheckStructure) and missing-config
// (CheckCompleteness).

var (
	inputKeyPattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,63}$`)
	caseIDPattern   = regexp.MustCompile(`^[a-z0-9_-]{1,32}$`)
)

// Bounds of ai-classify categories (PRODUCT §6.3).
const (
	minCategories   = 2
	maxCategories   = 20
	maxCategoryRune = 50
)

// unknownTypeMessage names the replacement of a removed type.
func unknownTypeMessage(typ string) string {
	if typ == "" {
		return "the node has no data.type"
	}
	if hint, ok := RemovedNodeTypes[typ]; ok {
		return fmt.Sprintf("node type %q was removed: %s", typ, hint)
	}
	return fmt.Sprintf("unknown node type %q", typ)
}

// ---------------------------------------------------------------------------
// Cron

var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow)

// cronDescriptors are the named schedules trigger-schedule accepts, as their five-field equivalents.
var cronDescriptors = map[string]string{
	"@hourly":  "0 * * * *",
	"@daily":   "0 0 * * *",
	"@weekly":  "0 0 * * 0",
	"@monthly": "0 0 1 * *",
}

// ParseSchedule parses a trigger-schedule expression: five cron fields (minute, hour, day of month,
// month, day of week) or one of @hourly, @daily, @weekly and @monthly. The schedule runs in loc (UTC
// when nil). Time-zone prefixes (TZ=, CRON_TZ=) are refused: the time zone is its own config key.
func ParseSchedule(spec string, loc *time.Location) (cron.Schedule, error) {
	s := strings.TrimSpace(spec)
	if s == "" {
		return nil, fmt.Errorf("the schedule is empty")
	}
	if strings.HasPrefix(s, "TZ=") || strings.HasPrefix(s, "CRON_TZ=") {
		return nil, fmt.Errorf("put the time zone in the timezone key, not in the schedule")
	}
	if strings.HasPrefix(s, "@") {
		five, ok := cronDescriptors[s]
		if !ok {
			return nil, fmt.Errorf("%q is not one of @hourly, @daily, @weekly, @monthly", s)
		}
		s = five
	}
	if n := len(strings.Fields(s)); n != 5 {
		return nil, fmt.Errorf("a schedule has 5 fields (minute hour day-of-month month day-of-week), not %d", n)
	}
	sched, err := cronParser.Parse(s)
	if err != nil {
		return nil, err
	}
	if loc == nil {
		loc = time.UTC
	}
	if ss, ok := sched.(*cron.SpecSchedule); ok {
		ss.Location = loc
	}
	return sched, nil
}

// validTimezone reports whether name is an IANA time zone ("Local" and "" are not).
func validTimezone(name string) bool {
	if name == "" || name == "Local" {
		return false
	}
	_, err := time.LoadLocation(name)
	return err == nil
}

// ---------------------------------------------------------------------------
// Value helpers

// number reads a JSON number (json.Number from Parse, or a Go number from a built graph).
func number(v any) (float64, bool) {
	switch n := v.(type) {
	case json.Number:
		f, err := n.Float64()
		return f, err == nil && !math.IsInf(f, 0) && !math.IsNaN(f)
	case float64:
		return n, !math.IsInf(n, 0) && !math.IsNaN(n)
	case float32:
		return float64(n), true
	case int:
		return float64(n), true
	case int64:
		return float64(n), true
	case int32:
		return float64(n), true
	case uint:
		return float64(n), true
	case uint64:
		return float64(n), true
	}
	return 0, false
}

// integer reads a whole JSON number.
func integer(v any) (int64, bool) {
	f, ok := number(v)
	if !ok || f != math.Trunc(f) || math.Abs(f) > 1<<53 {
		return 0, false
	}
	return int64(f), true
}

// unset reports whether a config value counts as not given: absent, null or "".
func unset(v any) bool {
	if v == nil {
		return true
	}
	s, ok := v.(string)
	return ok && s == ""
}

// empty reports whether a required value is missing: unset, blank, or an empty list or object.
func empty(v any) bool {
	switch x := v.(type) {
	case nil:
		return true
	case string:
		return strings.TrimSpace(x) == ""
	case []any:
		return len(x) == 0
	case map[string]any:
		return len(x) == 0
	}
	return false
}

func fmtNum(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

// describe names a JSON value's kind for messages.
func describe(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case []any:
		return "a list"
	case map[string]any:
		return "an object"
	case json.Number:
		if _, ok := number(v); !ok {
			return "the out-of-range number " + string(x)
		}
	}
	if _, ok := number(v); ok {
		return "a number"
	}
	return fmt.Sprintf("%T", v)
}

// escape encodes a key as a JSON Pointer token (RFC 6901).
func escape(key string) string {
	if !strings.ContainsAny(key, "~/") {
		return key
	}
	return strings.ReplaceAll(strings.ReplaceAll(key, "~", "~0"), "/", "~1")
}

func optionValues(o []Option) string {
	vals := make([]string, len(o))
	for i, x := range o {
		vals[i] = x.Value
	}
	return strings.Join(vals, ", ")
}

func hasOption(o []Option, v string) bool {
	for _, x := range o {
		if x.Value == v {
			return true
		}
	}
	return false
}

// ---------------------------------------------------------------------------
// The config checker

// checker runs the registry-based checks over one graph. It is built once per CheckStructure call.
type checker struct {
	g        *Graph
	base     string
	warnings bool                // also report bad-reference warnings (non-upstream node ids)
	index    map[string]int      // node id → its index + 1 (first occurrence)
	adj      map[string][]string // node id → targets, over the edges that passed the edge checks
	radj     map[string][]string // the reverse of adj, built on first use
	issues   []Issue

	ids       []string       // node ids, for expr.Compile; built on first use
	ancestors map[int][]bool // node index → which node indexes are upstream of it; built on first use
}

func (c *checker) add(ptr, code, severity, format string, args ...any) {
	c.issues = append(c.issues, Issue{Pointer: c.base + ptr, Code: code, Message: fmt.Sprintf(format, args...), Severity: severity})
}

func (c *checker) bad(ptr, format string, args ...any) {
	c.add(ptr, "bad-config", SeverityError, format, args...)
}

func (c *checker) nodeIDs() []string {
	if c.ids == nil {
		c.ids = make([]string, 0, len(c.g.Nodes))
		for _, n := range c.g.Nodes {
			if id := str(n["id"]); id != "" && !slices.Contains(c.ids, id) {
				c.ids = append(c.ids, id)
			}
		}
	}
	return c.ids
}

// upstream reports whether node index anc is an ancestor of node index i through the graph's edges.
func (c *checker) upstream(anc, i int) bool {
	if c.ancestors == nil {
		c.ancestors = map[int][]bool{}
	}
	seen, ok := c.ancestors[i]
	if !ok {
		if c.radj == nil {
			c.radj = make(map[string][]string, len(c.adj))
			for src, targets := range c.adj {
				for _, dst := range targets {
					c.radj[dst] = append(c.radj[dst], src)
				}
			}
		}
		seen = make([]bool, len(c.g.Nodes))
		queue := []string{str(c.g.Nodes[i]["id"])}
		visited := map[string]bool{queue[0]: true}
		for len(queue) > 0 {
			id := queue[0]
			queue = queue[1:]
			for _, src := range c.radj[id] {
				if visited[src] {
					continue
				}
				visited[src] = true
				if j := c.index[src]; j > 0 {
					seen[j-1] = true
				}
				queue = append(queue, src)
			}
		}
		c.ancestors[i] = seen
	}
	return seen[anc]
}

// node checks one node of a registered type: data.on_error, data.retry and data.config.
func (c *checker) node(i int, n map[string]any, t *NodeType) {
	p := "/nodes/" + strconv.Itoa(i) + "/data"
	d := nodeData(n)
	if v, ok := d["on_error"]; ok && v != nil {
		s, _ := v.(string)
		switch s {
		case OnErrorStop, OnErrorBranch:
		case OnErrorContinue:
			if !t.hasOut() {
				c.bad(p+"/on_error", "on_error continue needs an out handle, which %s does not have; use stop or branch", t.ID)
			}
		default:
			c.bad(p+"/on_error", "on_error must be stop, continue or branch, not %s", quoteValue(v))
		}
	}
	if v, ok := d["retry"]; ok && v != nil {
		c.retry(p+"/retry", v)
	}
	raw, present := d["config"]
	cfg, isObj := raw.(map[string]any)
	if present && raw != nil && !isObj {
		c.bad(p+"/config", "config must be an object, not %s", describe(raw))
		return
	}
	cp := p + "/config"
	c.unknownKeys(cp, cfg, t.Properties, t.ID)
	for k := range t.Properties {
		prop := &t.Properties[k]
		v := cfg[prop.Name]
		if unset(v) {
			continue
		}
		c.value(i, cp+"/"+escape(prop.Name), prop, v)
	}
	c.special(i, cp, cfg, t)
}

func (c *checker) retry(ptr string, v any) {
	r, ok := v.(map[string]any)
	if !ok {
		c.bad(ptr, "retry must be an object {max_attempts, backoff_ms, exponential}, not %s", describe(v))
		return
	}
	if x, ok := r["max_attempts"]; ok && x != nil {
		if n, ok := integer(x); !ok || n < 1 || n > retryMaxAttempts {
			c.bad(ptr+"/max_attempts", "retry.max_attempts must be a whole number from 1 to %d, not %s", retryMaxAttempts, quoteValue(x))
		}
	}
	if x, ok := r["backoff_ms"]; ok && x != nil {
		if n, ok := integer(x); !ok || n < retryMinBackoff || n > retryMaxBackoff {
			c.bad(ptr+"/backoff_ms", "retry.backoff_ms must be a whole number from %d to %d, not %s", retryMinBackoff, retryMaxBackoff, quoteValue(x))
		}
	}
	if x, ok := r["exponential"]; ok && x != nil {
		if _, ok := x.(bool); !ok {
			c.bad(ptr+"/exponential", "retry.exponential must be true or false, not %s", quoteValue(x))
		}
	}
}

// unknownKeys reports the keys of obj (other than "_…") that no property declares, in key order.
func (c *checker) unknownKeys(ptr string, obj map[string]any, props []Property, owner string) {
	var unknown []string
	for k := range obj {
		if strings.HasPrefix(k, "_") || hasProperty(props, k) {
			continue
		}
		unknown = append(unknown, k)
	}
	if len(unknown) == 0 {
		return
	}
	slices.Sort(unknown)
	names := make([]string, len(props))
	for i, p := range props {
		names[i] = p.Name
	}
	for _, k := range unknown {
		c.bad(ptr+"/"+escape(k), "unknown config key %q for %s; the keys are %s (keys starting with _ are kept for the editor)", k, owner, strings.Join(names, ", "))
	}
}

func hasProperty(props []Property, name string) bool {
	for i := range props {
		if props[i].Name == name {
			return true
		}
	}
	return false
}

// quoteValue shows a short form of a config value in a message.
func quoteValue(v any) string {
	switch x := v.(type) {
	case string:
		if utf8.RuneCountInString(x) > 60 {
			x = string([]rune(x)[:60]) + "…"
		}
		return strconv.Quote(x)
	case bool:
		return strconv.FormatBool(x)
	}
	if f, ok := number(v); ok {
		return fmtNum(f)
	}
	return describe(v)
}

// value checks one set (non-null, non-"") value against its property.
func (c *checker) value(i int, ptr string, p *Property, v any) {
	name := p.Name
	switch p.Type {
	case "text", "textarea":
		s, ok := v.(string)
		if !ok {
			if _, isNum := number(v); p.scalar && (isNum || isBool(v)) {
				return
			}
			if p.scalar {
				c.bad(ptr, "%s must be a string, a number or a boolean, not %s", name, describe(v))
			} else {
				c.bad(ptr, "%s must be a string, not %s", name, describe(v))
			}
			return
		}
		if p.Templated {
			c.template(i, ptr, s)
		}
	case "expression":
		s, ok := v.(string)
		if !ok {
			c.bad(ptr, "%s must be a CEL expression (a string), not %s", name, describe(v))
			return
		}
		c.cel(ptr, name, s)
	case "select":
		s, ok := v.(string)
		if !ok {
			c.bad(ptr, "%s must be a string, not %s", name, describe(v))
			return
		}
		c.option(ptr, p, s)
	case "multi-select":
		list, ok := v.([]any)
		if !ok {
			c.bad(ptr, "%s must be a list of strings, not %s", name, describe(v))
			return
		}
		for k, item := range list {
			s, ok := item.(string)
			if !ok {
				c.bad(ptr+"/"+strconv.Itoa(k), "%s items must be strings, not %s", name, describe(item))
				continue
			}
			c.option(ptr+"/"+strconv.Itoa(k), p, s)
		}
	case "number":
		f, ok := number(v)
		if !ok {
			c.bad(ptr, "%s must be a number, not %s", name, describe(v))
			return
		}
		whole := f == math.Trunc(f)
		if (p.integer && !whole) || (p.Min != nil && f < *p.Min) || (p.Max != nil && f > *p.Max) {
			c.bad(ptr, "%s must be %s, not %s", name, p.rangeText(), fmtNum(f))
		}
	case "boolean":
		if !isBool(v) {
			c.bad(ptr, "%s must be true or false, not %s", name, quoteValue(v))
		}
	case "key-value":
		c.keyValue(i, ptr, p, v)
	case "json":
		if p.Templated {
			c.templates(i, ptr, v)
		}
	case "cron":
		s, ok := v.(string)
		if !ok {
			c.bad(ptr, "%s must be a cron expression (a string), not %s", name, describe(v))
			return
		}
		if _, err := ParseSchedule(s, nil); err != nil {
			c.bad(ptr, "%s %q is not a valid schedule: %v", name, s, err)
		}
	case "timezone":
		s, ok := v.(string)
		if !ok {
			c.bad(ptr, "%s must be an IANA time zone name (a string), not %s", name, describe(v))
			return
		}
		if !validTimezone(s) {
			c.bad(ptr, "%s %q is not an IANA time zone such as Europe/Paris or America/New_York", name, s)
		}
	case "string-list":
		if name == "categories" {
			return // ai-classify's own rules, in special
		}
		list, ok := v.([]any)
		if !ok {
			c.bad(ptr, "%s must be a list of strings, not %s", name, describe(v))
			return
		}
		c.count(ptr, p, len(list))
		for k, item := range list {
			if s, ok := item.(string); !ok {
				c.bad(ptr+"/"+strconv.Itoa(k), "%s items must be strings, not %s", name, describe(item))
			} else if p.Templated {
				c.template(i, ptr+"/"+strconv.Itoa(k), s)
			}
		}
	case "list":
		list, ok := v.([]any)
		if !ok {
			c.bad(ptr, "%s must be a list, not %s", name, describe(v))
			return
		}
		c.count(ptr, p, len(list))
		for k, item := range list {
			ip := ptr + "/" + strconv.Itoa(k)
			obj, ok := item.(map[string]any)
			if !ok {
				c.bad(ip, "%s items must be objects, not %s", name, describe(item))
				continue
			}
			c.unknownKeys(ip, obj, p.ItemProperties, name+" items")
			for j := range p.ItemProperties {
				sub := &p.ItemProperties[j]
				if sv := obj[sub.Name]; !unset(sv) {
					c.value(i, ip+"/"+escape(sub.Name), sub, sv)
				}
			}
		}
	}
}

func isBool(v any) bool {
	_, ok := v.(bool)
	return ok
}

// rangeText describes a number property's accepted values: "a whole number from 1 to 50".
func (p *Property) rangeText() string {
	kind := "a number"
	if p.integer {
		kind = "a whole number"
	}
	switch {
	case p.Min != nil && p.Max != nil:
		return fmt.Sprintf("%s from %s to %s", kind, fmtNum(*p.Min), fmtNum(*p.Max))
	case p.Min != nil:
		return fmt.Sprintf("%s of at least %s", kind, fmtNum(*p.Min))
	case p.Max != nil:
		return fmt.Sprintf("%s of at most %s", kind, fmtNum(*p.Max))
	}
	return kind
}

// count checks a list or object size against the property's item bounds.
func (c *checker) count(ptr string, p *Property, n int) {
	switch {
	case p.maxItems > 0 && n > p.maxItems:
		c.bad(ptr, "%s has %d entries; at most %d are allowed", p.Name, n, p.maxItems)
	case p.minItems > 0 && n < p.minItems:
		c.bad(ptr, "%s has %d entries; at least %d are needed", p.Name, n, p.minItems)
	}
}

// option checks a select value: one of the options, or for options_source ai-models[:provider] a
// chat model of the catalogue (of that provider).
func (c *checker) option(ptr string, p *Property, s string) {
	if len(p.Options) > 0 {
		if !hasOption(p.Options, s) {
			c.bad(ptr, "%s must be one of %s, not %q", p.Name, optionValues(p.Options), s)
		}
		return
	}
	provider, isModel := strings.CutPrefix(p.OptionsSource, "ai-models")
	if !isModel {
		return // channels, users, …: checked where they are used
	}
	provider = strings.TrimPrefix(provider, ":")
	m, ok := ai.LookupModel(s)
	switch {
	case !ok:
		c.bad(ptr, "%s %q is not in the AI model catalogue (GET /ai/models)", p.Name, s)
	case m.Kind != "chat":
		c.bad(ptr, "%s %q is an %s model; this node needs a chat model", p.Name, s, m.Kind)
	case provider != "" && m.Provider != provider:
		c.bad(ptr, "%s %q is a %s model; this node needs a %s model", p.Name, s, m.Provider, provider)
	}
}

// keyValue checks an object of string keys. CEL properties take expression strings; the others
// take strings, numbers or booleans (templated strings are checked as templates).
func (c *checker) keyValue(i int, ptr string, p *Property, v any) {
	obj, ok := v.(map[string]any)
	if !ok {
		c.bad(ptr, "%s must be an object of keys and values, not %s", p.Name, describe(v))
		return
	}
	c.count(ptr, p, len(obj))
	keys := slices.Sorted(maps.Keys(obj))
	for _, k := range keys {
		kp := ptr + "/" + escape(k)
		val := obj[k]
		if strings.TrimSpace(k) == "" {
			c.bad(kp, "%s has an empty key", p.Name)
			continue
		}
		if p.cel {
			s, ok := val.(string)
			switch {
			case val == nil || (ok && strings.TrimSpace(s) == ""):
				// a row still being written: a completeness issue (missing-config)
			case !ok:
				c.bad(kp, "%s.%s must be a CEL expression (a string), not %s", p.Name, k, describe(val))
			default:
				c.cel(kp, p.Name+"."+k, s)
			}
			continue
		}
		switch x := val.(type) {
		case string:
			if p.Templated {
				c.template(i, kp, x)
			}
		case bool:
		default:
			if _, ok := number(val); !ok {
				c.bad(kp, "%s.%s must be a string, a number or a boolean, not %s", p.Name, k, describe(val))
			}
		}
	}
}

// cel checks an expression's syntax against the graph's node ids.
func (c *checker) cel(ptr, what, src string) {
	if _, err := expr.Compile(src, c.nodeIDs()); err != nil {
		c.bad(ptr, "%s is not a valid CEL expression: %v", what, err)
	}
}

// templates checks every string leaf of v as a template.
func (c *checker) templates(i int, ptr string, v any) {
	switch x := v.(type) {
	case string:
		c.template(i, ptr, x)
	case []any:
		for k, item := range x {
			c.templates(i, ptr+"/"+strconv.Itoa(k), item)
		}
	case map[string]any:
		if len(x) == 1 {
			for k, item := range x {
				c.templates(i, ptr+"/"+escape(k), item)
			}
			return
		}
		for _, k := range slices.Sorted(maps.Keys(x)) {
			c.templates(i, ptr+"/"+escape(k), x[k])
		}
	}
}

// template checks one templated string: its syntax (bad-config) and its roots (bad-reference).
func (c *checker) template(i int, ptr, s string) {
	if !strings.Contains(s, "{{") {
		return // no template: nothing to parse or resolve
	}
	refs, err := expr.ParseTemplate(s)
	if err != nil {
		c.bad(ptr, "template syntax: %v", err)
		return
	}
	for _, r := range refs {
		c.reference(i, ptr, r)
	}
}

// reference checks that a template names a reserved root or a node id, upstream of node i.
// nodes["id"] (or nodes.id) names a node through the nodes root and is checked the same way.
func (c *checker) reference(i int, ptr string, r expr.Ref) {
	root := r.Root
	if root == "nodes" && len(r.Path) > 0 && !r.Path[0].IsIndex {
		root = r.Path[0].Key
		if j := c.index[root]; j == 0 {
			c.add(ptr, "bad-reference", SeverityError, "{{%s}} reads nodes[%q], but this flow has no node with that id", r.Raw, root)
			return
		}
	} else if ReservedRoots[root] {
		return
	}
	j := c.index[root]
	if j == 0 {
		c.add(ptr, "bad-reference", SeverityError,
			"{{%s}} refers to %q, which is neither a node id of this flow nor a reserved root (trigger, input, vars, conversation, contact, execution, flow, now, nodes)",
			r.Raw, root)
		return
	}
	if !c.warnings {
		return
	}
	if j-1 == i {
		c.add(ptr, "bad-reference", SeverityWarning, "{{%s}} refers to this node itself, whose output does not exist yet", r.Raw)
		return
	}
	if !c.upstream(j-1, i) {
		c.add(ptr, "bad-reference", SeverityWarning,
			"{{%s}} refers to node %q, which is not upstream of this node, so it may not have run; connect it before this node", r.Raw, root)
	}
}

// special runs the rules of one node type that span keys or go beyond the property declarations.
func (c *checker) special(i int, cp string, cfg map[string]any, t *NodeType) {
	switch t.ID {
	case "trigger-manual":
		c.inputFields(cp+"/inputFields", cfg["inputFields"])
	case "ai-classify":
		if v := cfg["categories"]; !empty(v) { // an empty value is missing-config
			c.categories(cp+"/categories", v)
		}
	case "logic-switch":
		c.cases(cp+"/cases", cfg["cases"])
	case "logic-delay":
		d, u := cfg["duration_seconds"], cfg["until"]
		if !unset(d) && !unset(u) {
			c.bad(cp+"/until", "give duration_seconds or until, not both")
		}
		if s, ok := u.(string); ok && s != "" && !strings.Contains(s, "{{") {
			if _, err := time.Parse(time.RFC3339, s); err != nil {
				c.bad(cp+"/until", "until %q is not an RFC 3339 time such as 2030-01-01T09:00:00Z", s)
			}
		}
	case "action-http":
		if s, ok := cfg["url"].(string); ok && s != "" && !strings.Contains(s, "{{") {
			if msg := checkURL(s); msg != "" {
				c.bad(cp+"/url", "url %s", msg)
			}
		}
	}
}

// checkURL checks a literal action-http URL: absolute, http or https, with a host.
func checkURL(s string) string {
	u, err := url.Parse(strings.TrimSpace(s))
	switch {
	case err != nil:
		return fmt.Sprintf("%q is not a valid URL", s)
	case u.Scheme != "http" && u.Scheme != "https":
		if u.Scheme == "" {
			return fmt.Sprintf("%q needs an http:// or https:// scheme", s)
		}
		return fmt.Sprintf("%q uses the scheme %q; only http and https are allowed", s, u.Scheme)
	case u.Host == "":
		return fmt.Sprintf("%q has no host", s)
	}
	return ""
}

// categories checks ai-classify categories: a list of (or a comma-separated string of) 2–20 unique
// names of 1–50 characters, none of them fallback or error.
func (c *checker) categories(ptr string, v any) {
	var names []string
	var ptrs []string // per-name pointers; nil for the string form
	switch x := v.(type) {
	case string:
		names = categoryList(x)
	case []any:
		names = make([]string, 0, len(x))
		ptrs = make([]string, 0, len(x))
		for k, item := range x {
			s, ok := item.(string)
			if !ok {
				c.bad(ptr+"/"+strconv.Itoa(k), "categories must be strings, not %s", describe(item))
				continue
			}
			names = append(names, s)
			ptrs = append(ptrs, ptr+"/"+strconv.Itoa(k))
		}
	default:
		c.bad(ptr, "categories must be a list of strings or a comma-separated string, not %s", describe(v))
		return
	}
	if n := len(names); n < minCategories || n > maxCategories {
		c.bad(ptr, "categories has %d entries; give %d to %d", n, minCategories, maxCategories)
	}
	at := func(k int) string {
		if ptrs == nil {
			return ptr
		}
		return ptrs[k]
	}
	for k, s := range names {
		switch n := utf8.RuneCountInString(s); {
		case strings.TrimSpace(s) == "":
			c.bad(at(k), "category %d is empty", k+1)
		case n > maxCategoryRune:
			c.bad(at(k), "category %q has %d characters; at most %d are allowed", s, n, maxCategoryRune)
		case s == HandleFallback || s == HandleError:
			c.bad(at(k), "category %q is reserved for the node's own %s output", s, s)
		case slices.Contains(names[:k], s):
			c.bad(at(k), "category %q is listed twice", s)
		}
	}
}

// cases checks logic-switch cases: ids unique and usable as handles, operators known.
func (c *checker) cases(ptr string, v any) {
	list, _ := v.([]any)
	seen := make(map[string]int, len(list))
	for k, item := range list {
		obj, _ := item.(map[string]any)
		if obj == nil {
			continue // reported by the list check
		}
		ip := ptr + "/" + strconv.Itoa(k)
		id, ok := obj["id"].(string)
		switch {
		case unset(obj["id"]):
			// missing: a completeness issue
		case !ok:
			// wrong type: reported by the item check
		case !caseIDPattern.MatchString(id):
			c.bad(ip+"/id", "case id %q must be 1 to 32 of a-z, 0-9, _ and -", id)
		case id == HandleDefault || id == HandleError:
			c.bad(ip+"/id", "case id %q is reserved for the node's own %s output", id, id)
		default:
			if j, dup := seen[id]; dup {
				c.bad(ip+"/id", "case id %q is already used by case %d", id, j)
			} else {
				seen[id] = k
			}
		}
	}
}

// inputFields checks trigger-manual's input fields: keys valid and unique, defaults of their type.
func (c *checker) inputFields(ptr string, v any) {
	list, _ := v.([]any)
	seen := make(map[string]int, len(list))
	for k, item := range list {
		obj, _ := item.(map[string]any)
		if obj == nil {
			continue
		}
		ip := ptr + "/" + strconv.Itoa(k)
		if key, ok := obj["key"].(string); ok && key != "" {
			if !inputKeyPattern.MatchString(key) {
				c.bad(ip+"/key", "input key %q must start with a letter or _ and hold only letters, digits and _ (at most 64)", key)
			} else if j, dup := seen[key]; dup {
				c.bad(ip+"/key", "input key %q is already used by field %d", key, j)
			} else {
				seen[key] = k
			}
		}
		def, hasDef := obj["default"]
		if !hasDef || def == nil {
			continue
		}
		typ, _ := obj["type"].(string)
		if typ == "" {
			typ = "text"
		}
		ok := true
		switch typ {
		case "text":
			_, ok = def.(string)
		case "number":
			_, ok = number(def)
		case "boolean":
			ok = isBool(def)
		}
		if !ok {
			c.bad(ip+"/default", "the default of a %s field must be a %s, not %s", typ, typ, describe(def))
		}
	}
}

// ---------------------------------------------------------------------------
// Completeness: missing-config

// missingConfig reports node i's required values that are absent or empty.
func missingConfig(base string, i int, n map[string]any, t *NodeType, issues []Issue) []Issue {
	raw := nodeData(n)["config"]
	cfg, ok := raw.(map[string]any)
	if raw != nil && !ok {
		return issues // bad-config already says the config is not an object
	}
	cp := base + "/nodes/" + strconv.Itoa(i) + "/data/config"
	id := str(n["id"])
	miss := func(ptr, format string, args ...any) {
		issues = append(issues, Issue{Pointer: ptr, Code: "missing-config", Message: fmt.Sprintf(format, args...), Severity: SeverityError})
	}
	for k := range t.Properties {
		p := &t.Properties[k]
		v := cfg[p.Name]
		if p.Required && empty(v) {
			miss(cp+"/"+escape(p.Name), "node %q (%s) needs a value for %s", id, t.Label, p.Name)
			continue
		}
		switch {
		case p.Type == "list" && len(p.ItemProperties) > 0:
			list, _ := v.([]any)
			for j, item := range list {
				obj, _ := item.(map[string]any)
				if obj == nil {
					continue
				}
				for _, sub := range p.ItemProperties {
					if sub.Required && empty(obj[sub.Name]) {
						miss(cp+"/"+escape(p.Name)+"/"+strconv.Itoa(j)+"/"+escape(sub.Name),
							"node %q (%s): %s %d needs a value for %s", id, t.Label, p.Name, j+1, sub.Name)
					}
				}
			}
		case p.cel:
			obj, _ := v.(map[string]any)
			for _, key := range slices.Sorted(maps.Keys(obj)) {
				if s, isStr := obj[key].(string); obj[key] == nil || (isStr && strings.TrimSpace(s) == "") {
					miss(cp+"/"+escape(p.Name)+"/"+escape(key), "node %q (%s): %s.%s needs an expression", id, t.Label, p.Name, key)
				}
			}
		}
	}
	switch t.ID {
	case "logic-condition":
		op, _ := cfg["condition_type"].(string)
		if op != "is_empty" && op != "is_not_empty" && empty(cfg["value2"]) {
			miss(cp+"/value2", "node %q (%s) needs a value for value2 (compare to) unless the operator is is_empty or is_not_empty", id, t.Label)
		}
	case "logic-delay":
		if unset(cfg["duration_seconds"]) && unset(cfg["until"]) {
			miss(cp+"/duration_seconds", "node %q (%s) needs duration_seconds or until", id, t.Label)
		}
	}
	return issues
}
