package rbac

// The ownership and visibility rules of PRODUCT §4.3, in one place. Permissions decide whether an
// action is allowed at all; these rules decide on which rows. store.ScopeVisible is the same rule as
// SQL, so lists and counts never filter after fetching.

// Visibilities of owner-scoped rows.
const (
	VisibilityPrivate = "private" // the owner and admins
	VisibilityTeam    = "team"    // also the members of the row's team
	VisibilityPublic  = "public"  // every holder of the resource's read permission
)

// Ownership is what the rules need to know about one row and the caller.
type Ownership struct {
	OwnerID    int64
	Visibility string
	TeamMember bool // the caller belongs to the row's team (meaningful for VisibilityTeam)
}

// BypassesOwnership reports whether a role sees and changes every row (the admin roles).
func BypassesOwnership(r Role) bool { return IsAdminRole(r) }

// CanSee: a row the caller may not see answers 404, never 403.
func CanSee(r Role, userID int64, o Ownership) bool {
	switch {
	case BypassesOwnership(r), o.OwnerID == userID, o.Visibility == VisibilityPublic:
		return true
	case o.Visibility == VisibilityTeam:
		return o.TeamMember
	}
	return false
}

// CanEdit: the owner, admins, and the members of a team row's team. A visible row the caller may
// not edit answers 403.
func CanEdit(r Role, userID int64, o Ownership) bool {
	return BypassesOwnership(r) || o.OwnerID == userID || (o.Visibility == VisibilityTeam && o.TeamMember)
}

// CanManage: deleting, archiving, and changing visibility or team are for the owner and admins only.
func CanManage(r Role, userID int64, o Ownership) bool {
	return BypassesOwnership(r) || o.OwnerID == userID
}
