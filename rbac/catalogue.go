package rbac

import (
	"slices"
	"strings"
)

// Permission is one entry of the catalogue; Name is "Resource:Action".
type Permission struct {
	Name        string `json:"name"`
	Resource    string `json:"resource"`
	Action      string `json:"action"`
	Description string `json:"description"`
}

// matrix transcribes the §4.2 table row by row so it can be checked against
// the spec by eye. grants has one column per role in allRoles order
// (super_admin, admin, manager, editor, viewer, user): 'Y' granted, '.' not.
var matrix = []struct {
	resource string
	actions  string // "/"-separated, as in the table
	grants   string
}{
	{"user", "create/read/update/list", "YY...."},
	{"user", "delete", "Y....."},
	{"flow", "create", "YYYY.."},
	{"flow", "read", "YYYYYY"},
	{"flow", "update", "YYYY.."},
	{"flow", "delete", "YYY..."},
	{"flow", "execute", "YYYY.Y"},
	{"flow", "list", "YYYYYY"},
	{"template", "create", "YYYY.."},
	{"template", "read/list", "YYYYYY"},
	{"template", "update", "YYYY.."},
	{"template", "delete", "YY...."},
	{"bot", "create/update/delete", "YYY..."},
	{"bot", "read/list", "YYYYYY"},
	{"channel", "create/update", "YYY..."},
	{"channel", "read/list", "YYYYY."},
	{"channel", "delete", "YY...."},
	{"integration", "create", "YY...."},
	{"integration", "read/list", "YYYYY."},
	{"integration", "update", "YYY..."},
	{"integration", "delete", "Y....."},
	{"settings", "read", "YYY..."},
	{"settings", "update", "YY...."},
	{"analytics", "read", "YYYYYY"},
	{"analytics", "export", "YY...."},
	{"metadata", "create/update", "YYYY.."},
	{"metadata", "read", "YYYYYY"},
	{"metadata", "delete", "YY...."},
	{"conversation", "list/read", "YYYYYY"},
	{"conversation", "update", "YYYY.Y"},
	{"conversation", "delete", "YY...."},
	{"message", "send", "YYYY.Y"},
	{"contact", "read/list", "YYYYYY"},
	{"contact", "create", "YYY..."},
	{"contact", "update", "YYYY.Y"},
	{"contact", "delete", "YY...."},
	{"execution", "read/list", "YYYYYY"},
	{"execution", "cancel", "YYYY.Y"},
	{"execution", "delete", "YYY..."},
	{"audit", "read", "YY...."},
	{"token", "create/read/delete", "YYYY.."},
	{"token", "manage", "YY...."},
	{"media", "create", "YYYY.Y"},
	{"media", "read/list", "YYYYYY"},
	{"media", "delete", "YYYY.."},
	{"ai", "use", "YYYY.Y"},
	{"knowledge", "read/list", "YYYYYY"},
	{"knowledge", "create/update", "YYYY.."},
	{"knowledge", "delete", "YYY..."},
	{"webhook", "read/list", "YYYYY."},
	{"webhook", "create/update", "YYY..."},
	{"webhook", "delete", "YY...."},
	{"archive", "read/list", "YYYYY."},
	{"archive", "restore", "YYYY.."},
	{"archive", "delete", "YY...."},
}

// resources is the order the capabilities API (§4.4) lists resources in.
var resources = []string{
	"user", "flow", "template", "bot", "channel", "integration", "settings",
	"analytics", "metadata", "conversation", "message", "contact", "execution",
	"audit", "token", "media", "ai", "knowledge", "webhook", "archive",
}

var resourceNouns = map[string]string{
	"user": "users", "flow": "flows", "template": "templates", "bot": "bots",
	"channel": "channel connections", "integration": "integrations",
	"settings": "organisation settings", "analytics": "analytics",
	"metadata": "tags, categories and icons", "conversation": "conversations",
	"message": "messages", "contact": "contacts", "execution": "flow executions",
	"audit": "the audit log", "token": "own API tokens", "media": "media",
	"ai": "AI features", "knowledge": "knowledge bases",
	"webhook": "outbound webhook subscriptions", "archive": "archived entities",
}

var specialDescriptions = map[string]string{
	"token:manage":     "Manage other users' API tokens",
	"analytics:export": "Export analytics rows",
}

var (
	catalogue []Permission          // sorted by Name
	byName    map[string]Permission // catalogue index
	actionsOf map[string][]string   // resource -> sorted actions
	grants    map[Role]map[string]struct{}
	granted   map[Role][]string // sorted, for PermissionsOf
)

func init() {
	byName = make(map[string]Permission)
	actionsOf = make(map[string][]string)
	grants = make(map[Role]map[string]struct{}, len(allRoles))
	for _, r := range allRoles {
		grants[r] = make(map[string]struct{})
	}
	for _, row := range matrix {
		if _, ok := resourceNouns[row.resource]; !ok || len(row.grants) != len(allRoles) {
			panic("rbac: malformed matrix row for " + row.resource)
		}
		for action := range strings.SplitSeq(row.actions, "/") {
			name := row.resource + ":" + action
			if _, dup := byName[name]; dup {
				panic("rbac: duplicate permission " + name)
			}
			desc, ok := specialDescriptions[name]
			if !ok {
				desc = strings.ToUpper(action[:1]) + action[1:] + " " + resourceNouns[row.resource]
			}
			p := Permission{Name: name, Resource: row.resource, Action: action, Description: desc}
			byName[name] = p
			catalogue = append(catalogue, p)
			actionsOf[row.resource] = append(actionsOf[row.resource], action)
			for i, r := range allRoles {
				if row.grants[i] == 'Y' {
					grants[r][name] = struct{}{}
				}
			}
		}
	}
	slices.SortFunc(catalogue, func(a, b Permission) int { return strings.Compare(a.Name, b.Name) })
	for _, a := range actionsOf {
		slices.Sort(a)
	}
	granted = make(map[Role][]string, len(allRoles))
	for r, set := range grants {
		names := make([]string, 0, len(set))
		for n := range set {
			names = append(names, n)
		}
		slices.Sort(names)
		granted[r] = names
	}
}

// Catalogue returns every permission, sorted by name. The slice is a copy.
func Catalogue() []Permission { return slices.Clone(catalogue) }

// Lookup finds a permission by its "resource:action" name.
func Lookup(name string) (Permission, bool) {
	p, ok := byName[name]
	return p, ok
}

// IsKnown reports whether name is in the catalogue, so callers can reject
// typos (422) instead of treating them as "not held".
func IsKnown(name string) bool {
	_, ok := byName[name]
	return ok
}

// Resources returns every resource in the fixed §4.4 order. The slice is a copy.
func Resources() []string { return slices.Clone(resources) }

// ActionsOf returns the sorted actions the catalogue defines for resource,
// or nil for an unknown resource. The slice is a copy.
func ActionsOf(resource string) []string { return slices.Clone(actionsOf[resource]) }

// PermissionsOf returns the sorted permissions held by r (nil for an unknown
// role). The slice is a copy.
func PermissionsOf(r Role) []string { return slices.Clone(granted[r]) }

// Has reports whether r holds perm. Unknown roles and permissions yield false.
// It is allocation-free because it runs on every request.
func Has(r Role, perm string) bool {
	_, ok := grants[r][perm]
	return ok
}
