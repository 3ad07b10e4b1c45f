package rbac

// Role is a user's role as stored on the user row and carried in tokens.
type Role string

const (
	SuperAdmin Role = "super_admin"
	Admin      Role = "admin"
	Manager    Role = "manager"
	Editor     Role = "editor"
	Viewer     Role = "viewer"
	User       Role = "user"
)

type roleInfo struct {
	display, description string
}

// allRoles is in rank order; it also fixes the column order of the matrix in
// catalogue.go.
var allRoles = [...]Role{SuperAdmin, Admin, Manager, Editor, Viewer, User}

var roleInfos = map[Role]roleInfo{
	SuperAdmin: {"Super Admin", "System administrator: every permission"},
	Admin:      {"Admin", "Organisation admin: every permission except user deletion (and, as in the reference, `integration:delete`)"},
	Manager:    {"Manager", "Campaign manager (the seed's word; there is no campaign resource): bots, channels, the inbox, knowledge bases and webhook subscriptions; no deletion of channels, webhooks, conversations or contacts"},
	Editor:     {"Editor", "Content editor: creates and edits content, flows, templates and knowledge; handles the inbox"},
	Viewer:     {"Viewer", "Read-only: views flows, templates, bots, channels, integrations, metadata, analytics, the inbox, contacts, executions, media, knowledge bases, webhooks and archives; not users, settings, the audit log or tokens"},
	User:       {"User", "Basic user: executes flows, views a limited set of resources, answers the conversations routed to them"},
}

// AllRoles returns every role, most powerful first.
func AllRoles() []Role {
	out := allRoles
	return out[:]
}

// ParseRole accepts only the exact stored spelling, so a typo in a token or a
// CLI flag is rejected rather than silently mapped to some role.
func ParseRole(s string) (Role, bool) {
	r := Role(s)
	return r, Rank(r) >= 0
}

// Rank orders roles for "may not grant above yourself" checks: higher is more
// powerful; an unknown role is -1 so it never outranks anything.
func Rank(r Role) int {
	for i, x := range allRoles {
		if x == r {
			return len(allRoles) - 1 - i
		}
	}
	return -1
}

// IsAdminRole reports whether r bypasses ownership rules (§4.3).
func IsAdminRole(r Role) bool { return r == SuperAdmin || r == Admin }

// DisplayName returns the human label, or "" for an unknown role.
func DisplayName(r Role) string { return roleInfos[r].display }

// Description returns the §4.1 description, or "" for an unknown role.
func Description(r Role) string { return roleInfos[r].description }
