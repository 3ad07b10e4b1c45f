package rbac

import (
	"slices"
	"strings"
	"testing"
)

func TestRoles(t *testing.T) {
	want := []Role{SuperAdmin, Admin, Manager, Editor, Viewer, User}
	if got := AllRoles(); !slices.Equal(got, want) {
		t.Fatalf("AllRoles() = %v, want %v", got, want)
	}
	AllRoles()[0] = "mutated"
	if AllRoles()[0] != SuperAdmin {
		t.Fatal("AllRoles returned shared storage")
	}
	tests := []struct {
		in      string
		ok      bool
		rank    int
		admin   bool
		display string
	}{
		{"super_admin", true, 5, true, "Super Admin"},
		{"admin", true, 4, true, "Admin"},
		{"manager", true, 3, false, "Manager"},
		{"editor", true, 2, false, "Editor"},
		{"viewer", true, 1, false, "Viewer"},
		{"user", true, 0, false, "User"},
		{"Admin", false, -1, false, ""},
		{"", false, -1, false, ""},
		{"root", false, -1, false, ""},
	}
	for _, tt := range tests {
		r, ok := ParseRole(tt.in)
		if ok != tt.ok {
			t.Errorf("ParseRole(%q) ok = %v, want %v", tt.in, ok, tt.ok)
		}
		role := Role(tt.in)
		if ok && r != role {
			t.Errorf("ParseRole(%q) = %q", tt.in, r)
		}
		if got := Rank(role); got != tt.rank {
			t.Errorf("Rank(%q) = %d, want %d", tt.in, got, tt.rank)
		}
		if got := IsAdminRole(role); got != tt.admin {
			t.Errorf("IsAdminRole(%q) = %v, want %v", tt.in, got, tt.admin)
		}
		if got := DisplayName(role); got != tt.display {
			t.Errorf("DisplayName(%q) = %q, want %q", tt.in, got, tt.display)
		}
		if got := Description(role); (got != "") != tt.ok {
			t.Errorf("Description(%q) = %q", tt.in, got)
		}
	}
}

func TestCatalogue(t *testing.T) {
	cat := Catalogue()
	if len(cat) != 77 {
		t.Fatalf("catalogue has %d permissions, want 77", len(cat))
	}
	if !slices.IsSortedFunc(cat, func(a, b Permission) int { return strings.Compare(a.Name, b.Name) }) {
		t.Error("catalogue is not sorted by name")
	}
	seen := map[string]bool{}
	usedResources := map[string]bool{}
	for _, p := range cat {
		if seen[p.Name] {
			t.Errorf("duplicate permission %q", p.Name)
		}
		seen[p.Name] = true
		res, act, ok := strings.Cut(p.Name, ":")
		if !ok || res == "" || act == "" || strings.Contains(act, ":") {
			t.Errorf("%q is not resource:action", p.Name)
		}
		if res != p.Resource || act != p.Action {
			t.Errorf("%q has Resource %q Action %q", p.Name, p.Resource, p.Action)
		}
		if !slices.Contains(Resources(), res) {
			t.Errorf("%q has unknown resource", p.Name)
		}
		if p.Description == "" {
			t.Errorf("%q has no description", p.Name)
		}
		if got, ok := Lookup(p.Name); !ok || got != p {
			t.Errorf("Lookup(%q) = %v, %v", p.Name, got, ok)
		}
		if !IsKnown(p.Name) {
			t.Errorf("IsKnown(%q) = false", p.Name)
		}
		if !slices.Contains(ActionsOf(res), act) {
			t.Errorf("ActionsOf(%q) lacks %q", res, act)
		}
		usedResources[res] = true
	}
	for _, name := range []string{"", "flow", "flow:", ":read", "flow:fly", "campaign:read", "FLOW:READ"} {
		if IsKnown(name) {
			t.Errorf("IsKnown(%q) = true", name)
		}
		if _, ok := Lookup(name); ok {
			t.Errorf("Lookup(%q) found", name)
		}
	}
	wantRes := []string{"user", "flow", "template", "bot", "channel", "integration", "settings",
		"analytics", "metadata", "conversation", "message", "contact", "execution",
		"audit", "token", "media", "ai", "knowledge", "webhook", "archive"}
	if got := Resources(); !slices.Equal(got, wantRes) {
		t.Errorf("Resources() = %v, want %v", got, wantRes)
	}
	if len(usedResources) != len(wantRes) {
		t.Errorf("catalogue uses %d resources, want %d", len(usedResources), len(wantRes))
	}
}

func TestActionsOf(t *testing.T) {
	tests := map[string][]string{
		"flow":      {"create", "delete", "execute", "list", "read", "update"},
		"user":      {"create", "delete", "list", "read", "update"},
		"token":     {"create", "delete", "manage", "read"},
		"message":   {"send"},
		"ai":        {"use"},
		"archive":   {"delete", "list", "read", "restore"},
		"analytics": {"export", "read"},
		"campaign":  nil,
	}
	for res, want := range tests {
		if got := ActionsOf(res); !slices.Equal(got, want) {
			t.Errorf("ActionsOf(%q) = %v, want %v", res, got, want)
		}
	}
}

func TestRoleCounts(t *testing.T) {
	want := map[Role]int{SuperAdmin: 77, Admin: 75, Manager: 59, Editor: 46, Viewer: 26, User: 25, "root": 0}
	for r, n := range want {
		got := PermissionsOf(r)
		if len(got) != n {
			t.Errorf("%s holds %d permissions, want %d", r, len(got), n)
		}
		if !slices.IsSorted(got) {
			t.Errorf("PermissionsOf(%s) is not sorted", r)
		}
		for _, p := range got {
			if !Has(r, p) || !IsKnown(p) {
				t.Errorf("PermissionsOf(%s) lists %q but Has/IsKnown disagree", r, p)
			}
		}
	}
	if p := PermissionsOf(Admin); len(p) > 0 {
		p[0] = "mutated"
		if PermissionsOf(Admin)[0] == "mutated" {
			t.Error("PermissionsOf returned shared storage")
		}
	}
}

func TestAdminLacks(t *testing.T) {
	var missing []string
	for _, p := range PermissionsOf(SuperAdmin) {
		if !Has(Admin, p) {
			missing = append(missing, p)
		}
	}
	if want := []string{"integration:delete", "user:delete"}; !slices.Equal(missing, want) {
		t.Errorf("admin lacks %v, want %v", missing, want)
	}
}

func TestNesting(t *testing.T) {
	chain := []Role{SuperAdmin, Admin, Manager, Editor, User}
	for i := 1; i < len(chain); i++ {
		sup, sub := chain[i-1], chain[i]
		for _, p := range PermissionsOf(sub) {
			if !Has(sup, p) {
				t.Errorf("%s holds %q but %s does not", sub, p, sup)
			}
		}
	}
	for _, p := range PermissionsOf(Viewer) {
		if !Has(Admin, p) {
			t.Errorf("viewer holds %q but admin does not", p)
		}
	}
}

func TestViewerReadOnly(t *testing.T) {
	writes := []string{"create", "update", "delete", "execute", "send", "cancel", "restore", "manage", "use", "export"}
	for _, name := range PermissionsOf(Viewer) {
		p, _ := Lookup(name)
		if slices.Contains(writes, p.Action) {
			t.Errorf("viewer holds write permission %q", name)
		}
	}
}

func TestCells(t *testing.T) {
	tests := []struct {
		role Role
		perm string
		want bool
	}{
		{User, "flow:execute", true},
		{User, "flow:create", false},
		{Viewer, "flow:execute", false},
		{Viewer, "channel:read", true},
		{User, "channel:read", false},
		{Editor, "conversation:update", true},
		{Viewer, "conversation:update", false},
		{User, "message:send", true},
		{Editor, "flow:delete", false},
		{Manager, "flow:delete", true},
		{Manager, "template:delete", false},
		{Manager, "settings:read", true},
		{Manager, "settings:update", false},
		{Editor, "settings:read", false},
		{Manager, "contact:create", true},
		{Editor, "contact:create", false},
		{User, "contact:update", true},
		{Manager, "execution:delete", true},
		{Editor, "execution:delete", false},
		{Editor, "token:create", true},
		{User, "token:read", false},
		{Manager, "token:manage", false},
		{Admin, "token:manage", true},
		{Editor, "media:delete", true},
		{User, "media:delete", false},
		{User, "media:create", true},
		{Viewer, "webhook:list", true},
		{User, "webhook:list", false},
		{Manager, "webhook:delete", false},
		{Editor, "archive:restore", true},
		{Viewer, "archive:restore", false},
		{Viewer, "audit:read", false},
		{Manager, "audit:read", false},
		{Admin, "audit:read", true},
		{Admin, "user:delete", false},
		{SuperAdmin, "user:delete", true},
		{Admin, "integration:delete", false},
		{Manager, "integration:update", true},
		{Manager, "analytics:export", false},
		{User, "analytics:read", true},
		{User, "ai:use", true},
		{Viewer, "ai:use", false},
		{SuperAdmin, "flow:fly", false},
		{"root", "flow:read", false},
		{"", "flow:read", false},
	}
	for _, tt := range tests {
		if got := Has(tt.role, tt.perm); got != tt.want {
			t.Errorf("Has(%q, %q) = %v, want %v", tt.role, tt.perm, got, tt.want)
		}
	}
}

func TestHasAllocFree(t *testing.T) {
	if n := testing.AllocsPerRun(100, func() { Has(Editor, "flow:update") }); n != 0 {
		t.Errorf("Has allocates %v times per call", n)
	}
}

func BenchmarkHas(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		Has(Manager, "conversation:update")
	}
}
