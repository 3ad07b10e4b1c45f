package rbac

import "slices"

// Set is an effective permission set: a role's grants for a user, or
// scopes ∩ role for an API token. Every question in this file is answered
// from a Set, so tokens and users get the same answers from the same code.
//
// Sets built with [SetOf] or [RoleSet] hold catalogue permissions only, and
// [Set.Has] ignores any name outside the catalogue even in a hand-built Set.
// The zero (nil) Set holds nothing.
type Set map[string]bool

// SetOf builds a Set from permission names, dropping names that are not in
// the catalogue (so a typo can never grant anything).
func SetOf(perms []string) Set {
	s := make(Set, len(perms))
	for _, p := range perms {
		if IsKnown(p) {
			s[p] = true
		}
	}
	return s
}

// RoleSet returns the permissions r holds; empty for an unknown role.
func RoleSet(r Role) Set { return SetOf(granted[r]) }

// Has reports whether s holds the catalogue permission p.
func (s Set) Has(p string) bool { return s[p] && IsKnown(p) }

// Intersect returns the permissions held by both s and o, e.g.
// SetOf(token.Scopes).Intersect(RoleSet(owner.Role)).
func (s Set) Intersect(o Set) Set {
	out := make(Set)
	for p, ok := range s {
		if ok && o.Has(p) {
			out[p] = true
		}
	}
	return out
}

// sorted lists the catalogue permissions in s, sorted; never nil.
func (s Set) sorted() []string {
	out := []string{}
	for p, ok := range s {
		if ok && IsKnown(p) {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out
}

// Widget is one entry of the §4.4 widget table.
type Widget struct {
	ID       string   `json:"id"`
	Name     string   `json:"name"`
	Type     string   `json:"type"`
	Required []string `json:"required_permissions"`
}

// widgets transcribes the §4.4 table, in its order.
var widgets = []Widget{
	{"user_management", "User Management", "admin", []string{"user:create", "user:update"}},
	{"flow_builder", "Flow Builder", "editor", []string{"flow:create"}},
	{"flow_viewer", "Flow Viewer", "viewer", []string{"flow:read"}},
	{"template_editor", "Template Editor", "editor", []string{"template:create"}},
	{"template_viewer", "Template Viewer", "viewer", []string{"template:read"}},
	{"bot_manager", "Bot Manager", "manager", []string{"bot:create", "bot:update"}},
	{"bot_viewer", "Bot Viewer", "viewer", []string{"bot:read"}},
	{"channel_manager", "Channel Manager", "manager", []string{"channel:create"}},
	{"analytics_dashboard", "Analytics Dashboard", "viewer", []string{"analytics:read"}},
	{"settings_panel", "Settings", "admin", []string{"settings:update"}},
	{"integration_manager", "Integration Manager", "manager", []string{"integration:create"}},
	{"metadata_editor", "Metadata Editor", "editor", []string{"metadata:create"}},
}

// The permissions named by widgets, capabilityOnlyWidgets and features are
// checked against the catalogue by the tests rather than at init: this file's
// init would run before catalogue.go's (files initialise in name order).

// capabilityOnlyWidgets are the two extra keys of Capabilities.Widgets that
// GET /permissions/widgets does not list.
var capabilityOnlyWidgets = []struct{ id, perm string }{
	{"channel_viewer", "channel:read"},
	{"analytics_viewer", "analytics:read"},
}

// Widgets returns the 12 widgets of §4.4 in table order. The result is a
// deep copy.
func Widgets() []Widget {
	out := make([]Widget, len(widgets))
	for i, w := range widgets {
		w.Required = slices.Clone(w.Required)
		out[i] = w
	}
	return out
}

// WidgetState is a widget as seen by one permission set.
type WidgetState struct {
	Widget
	Visible bool `json:"visible"` // holds any required permission
	Enabled bool `json:"enabled"` // holds all required permissions
}

// WidgetStates evaluates every widget against s, in table order.
func WidgetStates(s Set) []WidgetState {
	ws := Widgets()
	out := make([]WidgetState, len(ws))
	for i, w := range ws {
		st := WidgetState{Widget: w, Enabled: len(w.Required) > 0}
		for _, p := range w.Required {
			if s.Has(p) {
				st.Visible = true
			} else {
				st.Enabled = false
			}
		}
		out[i] = st
	}
	return out
}

// features maps each permission-backed key of Capabilities.Features to the
// permission it reports. is_admin and is_super_admin depend on the role.
var features = []struct{ key, perm string }{
	{"can_export_analytics", "analytics:export"},
	{"can_manage_users", "user:create"},
	{"can_delete_flows", "flow:delete"},
	{"can_delete_templates", "template:delete"},
	{"can_delete_bots", "bot:delete"},
	{"can_manage_integrations", "integration:create"},
	{"can_update_settings", "settings:update"},
	{"can_use_ai", "ai:use"},
	{"can_view_audit_log", "audit:read"},
	{"can_send_messages", "message:send"},
}

// Capabilities is the body of GET /permissions/me/capabilities (§4.4).
type Capabilities struct {
	Role        string          `json:"role"`
	Permissions []string        `json:"permissions"` // sorted, never nil
	CanCreate   map[string]bool `json:"can_create"`  // every resource → "<res>:create"
	CanRead     map[string]bool `json:"can_read"`
	CanUpdate   map[string]bool `json:"can_update"`
	CanDelete   map[string]bool `json:"can_delete"`
	CanExecute  map[string]bool `json:"can_execute"` // {"flow": flow:execute}
	Widgets     map[string]bool `json:"widgets"`     // 14 keys → visible
	Features    map[string]bool `json:"features"`
}

// CapabilitiesOf builds the capabilities document for a caller with role
// whose effective permissions are s (the role's set for a user, scopes ∩ role
// for an API token). role only feeds Role, is_admin and is_super_admin.
func CapabilitiesOf(role Role, s Set) Capabilities {
	byAction := func(action string) map[string]bool {
		m := make(map[string]bool, len(resources))
		for _, res := range resources {
			m[res] = s.Has(res + ":" + action)
		}
		return m
	}
	c := Capabilities{
		Role:        string(role),
		Permissions: s.sorted(),
		CanCreate:   byAction("create"),
		CanRead:     byAction("read"),
		CanUpdate:   byAction("update"),
		CanDelete:   byAction("delete"),
		CanExecute:  map[string]bool{"flow": s.Has("flow:execute")},
		Widgets:     make(map[string]bool, len(widgets)+len(capabilityOnlyWidgets)),
		Features:    make(map[string]bool, len(features)+2),
	}
	for _, w := range WidgetStates(s) {
		c.Widgets[w.ID] = w.Visible
	}
	for _, w := range capabilityOnlyWidgets {
		c.Widgets[w.id] = s.Has(w.perm)
	}
	for _, f := range features {
		c.Features[f.key] = s.Has(f.perm)
	}
	c.Features["is_admin"] = IsAdminRole(role)
	c.Features["is_super_admin"] = role == SuperAdmin
	return c
}

// ResourceAccess is the body of GET /permissions/resources/{type} (§4.4).
type ResourceAccess struct {
	Resource  string          `json:"resource"`
	CanCreate bool            `json:"can_create"`
	CanRead   bool            `json:"can_read"`
	CanUpdate bool            `json:"can_update"`
	CanDelete bool            `json:"can_delete"`
	CanList   bool            `json:"can_list"`
	Actions   map[string]bool `json:"actions"` // exactly ActionsOf(resource)
}

// ResourceAccessOf reports what s allows on resource; ok is false for a
// resource not in the catalogue (the handler answers 404).
func ResourceAccessOf(resource string, s Set) (ResourceAccess, bool) {
	acts, ok := actionsOf[resource]
	if !ok {
		return ResourceAccess{}, false
	}
	ra := ResourceAccess{
		Resource:  resource,
		CanCreate: s.Has(resource + ":create"),
		CanRead:   s.Has(resource + ":read"),
		CanUpdate: s.Has(resource + ":update"),
		CanDelete: s.Has(resource + ":delete"),
		CanList:   s.Has(resource + ":list"),
		Actions:   make(map[string]bool, len(acts)),
	}
	for _, a := range acts {
		ra.Actions[a] = s.Has(resource + ":" + a)
	}
	return ra, true
}

// CheckPermissions backs POST /permissions/check. unknown holds the indexes
// of perms that are not in the catalogue (nil when all are known; the handler
// answers 422 pointing at the first). missing holds the known permissions s
// lacks, in input order without repeats, and is never nil.
func CheckPermissions(s Set, perms []string) (missing []string, unknown []int) {
	missing = []string{}
	for i, p := range perms {
		switch {
		case !IsKnown(p):
			unknown = append(unknown, i)
		case !s.Has(p) && !slices.Contains(missing, p):
			missing = append(missing, p)
		}
	}
	return missing, unknown
}
