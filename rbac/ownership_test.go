package rbac

import "testing"

func TestOwnershipRules(t *testing.T) {
	const me, other = 1, 2
	for _, tc := range []struct {
		name              string
		role              Role
		o                 Ownership
		see, edit, manage bool
	}{
		{"own private", Editor, Ownership{OwnerID: me, Visibility: VisibilityPrivate}, true, true, true},
		{"other's private", Editor, Ownership{OwnerID: other, Visibility: VisibilityPrivate}, false, false, false},
		{"other's private, admin", Admin, Ownership{OwnerID: other, Visibility: VisibilityPrivate}, true, true, true},
		{"other's private, super_admin", SuperAdmin, Ownership{OwnerID: other, Visibility: VisibilityPrivate}, true, true, true},
		{"other's public", Viewer, Ownership{OwnerID: other, Visibility: VisibilityPublic}, true, false, false},
		{"other's team flow, member", Editor, Ownership{OwnerID: other, Visibility: VisibilityTeam, TeamMember: true}, true, true, false},
		{"other's team flow, not a member", Manager, Ownership{OwnerID: other, Visibility: VisibilityTeam}, false, false, false},
		{"membership alone does not open a private row", User, Ownership{OwnerID: other, Visibility: VisibilityPrivate, TeamMember: true}, false, false, false},
	} {
		if got := CanSee(tc.role, me, tc.o); got != tc.see {
			t.Errorf("%s: CanSee = %v, want %v", tc.name, got, tc.see)
		}
		if got := CanEdit(tc.role, me, tc.o); got != tc.edit {
			t.Errorf("%s: CanEdit = %v, want %v", tc.name, got, tc.edit)
		}
		if got := CanManage(tc.role, me, tc.o); got != tc.manage {
			t.Errorf("%s: CanManage = %v, want %v", tc.name, got, tc.manage)
		}
	}
}
