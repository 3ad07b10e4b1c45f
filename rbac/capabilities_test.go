package rbac

import (
	"encoding/json"
	"slices"
	"testing"
)

func TestSet(t *testing.T) {
	s := SetOf([]string{"flow:read", "flow:fly", "", "FLOW:READ", "bot:list"})
	if len(s) != 2 || !s.Has("flow:read") || !s.Has("bot:list") {
		t.Errorf("SetOf = %v, want {flow:read, bot:list}", s)
	}
	for _, p := range []string{"flow:fly", "", "FLOW:READ", "flow:update"} {
		if s.Has(p) {
			t.Errorf("Has(%q) = true", p)
		}
	}
	if (Set{"flow:fly": true}).Has("flow:fly") {
		t.Error("hand-built Set grants a non-catalogue permission")
	}
	if (Set{"flow:read": false}).Has("flow:read") {
		t.Error("false entry counts as held")
	}
	var zero Set
	if zero.Has("flow:read") {
		t.Error("nil Set holds flow:read")
	}
	for _, r := range append(AllRoles(), "root") {
		rs := RoleSet(r)
		if got := rs.sorted(); !slices.Equal(got, PermissionsOf(r)) && !(len(got) == 0 && PermissionsOf(r) == nil) {
			t.Errorf("RoleSet(%s) = %v, want %v", r, got, PermissionsOf(r))
		}
		for _, p := range Catalogue() {
			if rs.Has(p.Name) != Has(r, p.Name) {
				t.Errorf("RoleSet(%s).Has(%q) disagrees with Has", r, p.Name)
			}
		}
	}
	tok := SetOf([]string{"flow:read", "flow:update", "user:delete"}).Intersect(RoleSet(Editor))
	if got := tok.sorted(); !slices.Equal(got, []string{"flow:read", "flow:update"}) {
		t.Errorf("Intersect = %v", got)
	}
}

func TestWidgets(t *testing.T) {
	want := []Widget{
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
	got := Widgets()
	if len(got) != 12 {
		t.Fatalf("Widgets() has %d entries, want 12", len(got))
	}
	for i, w := range want {
		g := got[i]
		if g.ID != w.ID || g.Name != w.Name || g.Type != w.Type || !slices.Equal(g.Required, w.Required) {
			t.Errorf("widget %d = %+v, want %+v", i, g, w)
		}
		for _, p := range g.Required {
			if !IsKnown(p) {
				t.Errorf("widget %s requires unknown %q", g.ID, p)
			}
		}
	}
	got[0].Required[0] = "mutated"
	got[1].Name = "mutated"
	if w := Widgets(); w[0].Required[0] != "user:create" || w[1].Name != "Flow Builder" {
		t.Error("Widgets returned shared storage")
	}
	for _, w := range capabilityOnlyWidgets {
		if !IsKnown(w.perm) {
			t.Errorf("widget %s uses unknown %q", w.id, w.perm)
		}
	}
	for _, f := range features {
		if !IsKnown(f.perm) {
			t.Errorf("feature %s uses unknown %q", f.key, f.perm)
		}
	}
}

func TestWidgetStates(t *testing.T) {
	type vis struct{ visible, enabled bool }
	partial := SetOf([]string{"user:update", "bot:create"})
	tests := []struct {
		name string
		s    Set
		want map[string]vis
	}{
		{"viewer", RoleSet(Viewer), map[string]vis{
			"flow_viewer": {true, true}, "flow_builder": {false, false},
			"user_management": {false, false}, "bot_viewer": {true, true},
			"analytics_dashboard": {true, true}, "metadata_editor": {false, false},
		}},
		{"editor", RoleSet(Editor), map[string]vis{
			"bot_manager": {false, false}, "flow_builder": {true, true},
			"template_editor": {true, true}, "metadata_editor": {true, true},
			"channel_manager": {false, false}, "settings_panel": {false, false},
		}},
		{"manager", RoleSet(Manager), map[string]vis{
			"bot_manager": {true, true}, "channel_manager": {true, true},
			"integration_manager": {false, false}, "user_management": {false, false},
			"settings_panel": {false, false},
		}},
		{"admin", RoleSet(Admin), map[string]vis{
			"user_management": {true, true}, "settings_panel": {true, true},
			"integration_manager": {true, true},
		}},
		{"partial", partial, map[string]vis{
			"user_management": {true, false}, "bot_manager": {true, false},
			"flow_viewer": {false, false},
		}},
		{"empty", nil, map[string]vis{"flow_viewer": {false, false}}},
	}
	for _, tt := range tests {
		states := WidgetStates(tt.s)
		if len(states) != 12 {
			t.Fatalf("%s: %d states, want 12", tt.name, len(states))
		}
		byID := map[string]WidgetState{}
		for i, st := range states {
			if st.ID != widgets[i].ID {
				t.Errorf("%s: state %d is %s, want %s", tt.name, i, st.ID, widgets[i].ID)
			}
			if st.Enabled && !st.Visible {
				t.Errorf("%s: %s enabled but invisible", tt.name, st.ID)
			}
			byID[st.ID] = st
		}
		for id, w := range tt.want {
			st, ok := byID[id]
			if !ok {
				t.Errorf("%s: no widget %s", tt.name, id)
				continue
			}
			if st.Visible != w.visible || st.Enabled != w.enabled {
				t.Errorf("%s: %s visible=%v enabled=%v, want %v %v", tt.name, id, st.Visible, st.Enabled, w.visible, w.enabled)
			}
		}
	}
	b, err := json.Marshal(WidgetStates(RoleSet(Viewer))[2])
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"id":"flow_viewer","name":"Flow Viewer","type":"viewer","required_permissions":["flow:read"],"visible":true,"enabled":true}`; string(b) != want {
		t.Errorf("widget JSON = %s, want %s", b, want)
	}
}

func TestCapabilitiesShape(t *testing.T) {
	wantWidgets := []string{"user_management", "flow_builder", "flow_viewer", "template_editor",
		"template_viewer", "bot_manager", "bot_viewer", "channel_manager", "analytics_dashboard",
		"settings_panel", "integration_manager", "metadata_editor", "channel_viewer", "analytics_viewer"}
	wantFeatures := []string{"can_export_analytics", "can_manage_users", "can_delete_flows",
		"can_delete_templates", "can_delete_bots", "can_manage_integrations", "can_update_settings",
		"can_use_ai", "can_view_audit_log", "can_send_messages", "is_admin", "is_super_admin"}
	sets := map[string]struct {
		role Role
		s    Set
	}{
		"root":  {"root", nil},
		"token": {Admin, SetOf([]string{"flow:read"})},
	}
	for _, r := range AllRoles() {
		sets[string(r)] = struct {
			role Role
			s    Set
		}{r, RoleSet(r)}
	}
	for name, in := range sets {
		c := CapabilitiesOf(in.role, in.s)
		if c.Role != string(in.role) {
			t.Errorf("%s: Role = %q", name, c.Role)
		}
		if c.Permissions == nil || !slices.IsSorted(c.Permissions) {
			t.Errorf("%s: Permissions %v nil or unsorted", name, c.Permissions)
		}
		if len(c.Widgets) != 14 {
			t.Errorf("%s: %d widget keys, want 14", name, len(c.Widgets))
		}
		for _, k := range wantWidgets {
			if _, ok := c.Widgets[k]; !ok {
				t.Errorf("%s: widgets lacks %q", name, k)
			}
		}
		if len(c.Features) != len(wantFeatures) {
			t.Errorf("%s: %d features, want %d", name, len(c.Features), len(wantFeatures))
		}
		for _, k := range wantFeatures {
			if _, ok := c.Features[k]; !ok {
				t.Errorf("%s: features lacks %q", name, k)
			}
		}
		if len(c.CanExecute) != 1 || c.CanExecute["flow"] != in.s.Has("flow:execute") {
			t.Errorf("%s: CanExecute = %v", name, c.CanExecute)
		}
		for action, m := range map[string]map[string]bool{
			"create": c.CanCreate, "read": c.CanRead, "update": c.CanUpdate, "delete": c.CanDelete,
		} {
			if len(m) != 20 {
				t.Errorf("%s: can_%s has %d resources, want 20", name, action, len(m))
			}
			for _, res := range Resources() {
				v, ok := m[res]
				if !ok {
					t.Errorf("%s: can_%s lacks %q", name, action, res)
				}
				if want := in.s.Has(res + ":" + action); v != want {
					t.Errorf("%s: can_%s[%s] = %v, want %v", name, action, res, v, want)
				}
			}
		}
	}
}

func TestCapabilitiesOfRoles(t *testing.T) {
	type check struct {
		m    string // "widget", "feature", "create", "read", "update", "delete", "execute"
		key  string
		want bool
	}
	tests := []struct {
		role   Role
		checks []check
	}{
		{SuperAdmin, []check{
			{"feature", "is_admin", true}, {"feature", "is_super_admin", true},
			{"delete", "user", true}, {"delete", "integration", true}, {"widget", "user_management", true},
		}},
		{Admin, []check{
			{"feature", "is_admin", true}, {"feature", "is_super_admin", false},
			{"widget", "user_management", true}, {"widget", "settings_panel", true},
			{"feature", "can_manage_users", true}, {"feature", "can_view_audit_log", true},
			{"delete", "user", false}, {"delete", "integration", false}, {"delete", "template", true},
			{"feature", "can_export_analytics", true},
		}},
		{Manager, []check{
			{"widget", "bot_manager", true}, {"widget", "integration_manager", false},
			{"feature", "can_delete_bots", true}, {"feature", "can_delete_flows", true},
			{"feature", "can_delete_templates", false}, {"feature", "can_update_settings", false},
			{"feature", "is_admin", false}, {"read", "settings", true},
		}},
		{Editor, []check{
			{"widget", "bot_manager", false}, {"widget", "flow_builder", true},
			{"feature", "can_use_ai", true}, {"feature", "can_send_messages", true},
			{"feature", "can_delete_flows", false}, {"execute", "flow", true},
			{"create", "message", false}, {"read", "message", false},
		}},
		{Viewer, []check{
			{"widget", "flow_viewer", true}, {"widget", "flow_builder", false},
			{"widget", "channel_viewer", true}, {"widget", "analytics_viewer", true},
			{"execute", "flow", false}, {"feature", "can_use_ai", false},
			{"feature", "can_send_messages", false}, {"create", "flow", false}, {"read", "user", false},
		}},
		{User, []check{
			{"widget", "channel_viewer", false}, {"widget", "analytics_viewer", true},
			{"widget", "flow_viewer", true}, {"widget", "flow_builder", false},
			{"execute", "flow", true}, {"feature", "can_use_ai", true},
			{"feature", "can_send_messages", true}, {"read", "channel", false},
			{"update", "conversation", true}, {"create", "media", true},
		}},
	}
	for _, tt := range tests {
		c := CapabilitiesOf(tt.role, RoleSet(tt.role))
		if !slices.Equal(c.Permissions, PermissionsOf(tt.role)) {
			t.Errorf("%s: Permissions = %v", tt.role, c.Permissions)
		}
		maps := map[string]map[string]bool{
			"widget": c.Widgets, "feature": c.Features, "create": c.CanCreate, "read": c.CanRead,
			"update": c.CanUpdate, "delete": c.CanDelete, "execute": c.CanExecute,
		}
		for _, ch := range tt.checks {
			if got, ok := maps[ch.m][ch.key]; !ok || got != ch.want {
				t.Errorf("%s: %s[%s] = %v (present %v), want %v", tt.role, ch.m, ch.key, got, ok, ch.want)
			}
		}
	}
}

func TestCapabilitiesTokenScope(t *testing.T) {
	// An admin's API token scoped to {flow:read}: effective set = scopes ∩ role.
	s := SetOf([]string{"flow:read"}).Intersect(RoleSet(Admin))
	c := CapabilitiesOf(Admin, s)
	if !slices.Equal(c.Permissions, []string{"flow:read"}) {
		t.Errorf("Permissions = %v", c.Permissions)
	}
	trues := 0
	for name, m := range map[string]map[string]bool{
		"can_create": c.CanCreate, "can_read": c.CanRead, "can_update": c.CanUpdate,
		"can_delete": c.CanDelete, "can_execute": c.CanExecute, "widgets": c.Widgets,
	} {
		for k, v := range m {
			if !v {
				continue
			}
			trues++
			if !(name == "can_read" && k == "flow") && !(name == "widgets" && k == "flow_viewer") {
				t.Errorf("token: %s[%s] = true", name, k)
			}
		}
	}
	if trues != 2 || !c.CanRead["flow"] || !c.Widgets["flow_viewer"] {
		t.Errorf("token: want exactly can_read.flow and widgets.flow_viewer true, got %d trues", trues)
	}
	for k, v := range c.Features {
		if v != (k == "is_admin") {
			t.Errorf("token: features[%s] = %v", k, v)
		}
	}
	for _, st := range WidgetStates(s) {
		if (st.Visible || st.Enabled) != (st.ID == "flow_viewer") {
			t.Errorf("token: widget %s visible=%v enabled=%v", st.ID, st.Visible, st.Enabled)
		}
	}
	// A scope the role lacks is not granted.
	if SetOf([]string{"user:delete"}).Intersect(RoleSet(Admin)).Has("user:delete") {
		t.Error("token scope exceeds role")
	}
}

func TestCapabilitiesJSON(t *testing.T) {
	b, err := json.Marshal(CapabilitiesOf("root", nil))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"role", "permissions", "can_create", "can_read", "can_update",
		"can_delete", "can_execute", "widgets", "features"} {
		if _, ok := m[k]; !ok {
			t.Errorf("JSON lacks %q: %s", k, b)
		}
	}
	if string(m["permissions"]) != "[]" {
		t.Errorf("permissions = %s, want []", m["permissions"])
	}
}

func TestResourceAccessOf(t *testing.T) {
	tests := []struct {
		res                            string
		s                              Set
		ok                             bool
		create, read, update, del, lst bool
		actions                        map[string]bool
	}{
		{"flow", RoleSet(User), true, false, true, false, false, true,
			map[string]bool{"create": false, "delete": false, "execute": true, "list": true, "read": true, "update": false}},
		{"flow", SetOf([]string{"flow:read"}), true, false, true, false, false, false,
			map[string]bool{"create": false, "delete": false, "execute": false, "list": false, "read": true, "update": false}},
		{"message", RoleSet(Editor), true, false, false, false, false, false, map[string]bool{"send": true}},
		{"analytics", RoleSet(Admin), true, false, true, false, false, false, map[string]bool{"export": true, "read": true}},
		{"token", RoleSet(Manager), true, true, true, false, true, false,
			map[string]bool{"create": true, "delete": true, "manage": false, "read": true}},
		{"archive", RoleSet(Viewer), true, false, true, false, false, true,
			map[string]bool{"delete": false, "list": true, "read": true, "restore": false}},
		{"user", RoleSet(SuperAdmin), true, true, true, true, true, true,
			map[string]bool{"create": true, "delete": true, "list": true, "read": true, "update": true}},
		{"campaign", RoleSet(SuperAdmin), false, false, false, false, false, false, nil},
		{"", RoleSet(SuperAdmin), false, false, false, false, false, false, nil},
		{"Flow", RoleSet(SuperAdmin), false, false, false, false, false, false, nil},
	}
	for _, tt := range tests {
		ra, ok := ResourceAccessOf(tt.res, tt.s)
		if ok != tt.ok {
			t.Errorf("ResourceAccessOf(%q) ok = %v, want %v", tt.res, ok, tt.ok)
			continue
		}
		if !ok {
			continue
		}
		if ra.Resource != tt.res || ra.CanCreate != tt.create || ra.CanRead != tt.read ||
			ra.CanUpdate != tt.update || ra.CanDelete != tt.del || ra.CanList != tt.lst {
			t.Errorf("ResourceAccessOf(%q) = %+v", tt.res, ra)
		}
		if len(ra.Actions) != len(ActionsOf(tt.res)) || len(ra.Actions) != len(tt.actions) {
			t.Errorf("ResourceAccessOf(%q).Actions = %v, want keys %v", tt.res, ra.Actions, ActionsOf(tt.res))
		}
		for a, want := range tt.actions {
			if got, present := ra.Actions[a]; !present || got != want {
				t.Errorf("ResourceAccessOf(%q).Actions[%s] = %v (present %v), want %v", tt.res, a, got, present, want)
			}
		}
	}
	for _, res := range Resources() {
		ra, ok := ResourceAccessOf(res, RoleSet(SuperAdmin))
		if !ok || len(ra.Actions) != len(ActionsOf(res)) {
			t.Errorf("ResourceAccessOf(%q) = %v, %v", res, ra, ok)
		}
		for a, v := range ra.Actions {
			if !v {
				t.Errorf("super_admin lacks %s:%s", res, a)
			}
		}
	}
}

func TestCheckPermissions(t *testing.T) {
	tests := []struct {
		name    string
		s       Set
		perms   []string
		missing []string
		unknown []int
	}{
		{"all held", RoleSet(Editor), []string{"flow:read", "flow:create"}, []string{}, nil},
		{"missing", RoleSet(Editor), []string{"flow:read", "user:delete", "bot:create", "flow:create"},
			[]string{"user:delete", "bot:create"}, nil},
		{"unknown and missing", RoleSet(Viewer),
			[]string{"flow:fly", "flow:read", "flow:update", "campaign:read", "FLOW:READ", "bot:update"},
			[]string{"flow:update", "bot:update"}, []int{0, 3, 4}},
		{"repeats", RoleSet(Viewer), []string{"flow:update", "flow:update", "flow:read"}, []string{"flow:update"}, nil},
		{"token", SetOf([]string{"flow:read"}), []string{"flow:read", "flow:list", ""},
			[]string{"flow:list"}, []int{2}},
		{"empty set", nil, []string{"analytics:read"}, []string{"analytics:read"}, nil},
	}
	for _, tt := range tests {
		missing, unknown := CheckPermissions(tt.s, tt.perms)
		if missing == nil || !slices.Equal(missing, tt.missing) {
			t.Errorf("%s: missing = %#v, want %#v", tt.name, missing, tt.missing)
		}
		if !slices.Equal(unknown, tt.unknown) {
			t.Errorf("%s: unknown = %v, want %v", tt.name, unknown, tt.unknown)
		}
	}
}
