package server

import (
	"context"
	"fmt"

	"github.com/wataomi/wataomi/gen/api"
	"github.com/wataomi/wataomi/rbac"
	"github.com/wataomi/wataomi/server/httpx"
)

// effectiveSet is the permission set the caller acts with: its role's, narrowed to its scopes for an
// API token (PRODUCT §3.3).
func effectiveSet(p *httpx.Principal) rbac.Set { return rbac.SetOf(p.Permissions()) }

func (h *handlers) ListPermissions(ctx context.Context, req api.ListPermissionsRequestObject) (api.ListPermissionsResponseObject, error) {
	cat := rbac.Catalogue()
	out := api.PermissionList{Items: make([]api.PermissionInfo, 0, len(cat))}
	for _, p := range cat {
		out.Items = append(out.Items, api.PermissionInfo{Name: p.Name, Resource: p.Resource, Action: p.Action, Description: p.Description})
	}
	return api.ListPermissions200JSONResponse{Body: out}, nil
}

func (h *handlers) GetMyCapabilities(ctx context.Context, req api.GetMyCapabilitiesRequestObject) (api.GetMyCapabilitiesResponseObject, error) {
	p := httpx.PrincipalFrom(ctx)
	c := rbac.CapabilitiesOf(p.Role, effectiveSet(p))
	return api.GetMyCapabilities200JSONResponse{Body: api.Capabilities{
		Role: api.UserRole(c.Role), Permissions: c.Permissions, CanCreate: c.CanCreate, CanRead: c.CanRead, CanUpdate: c.CanUpdate,
		CanDelete: c.CanDelete, CanExecute: c.CanExecute, Widgets: c.Widgets, Features: c.Features,
	}}, nil
}

func (h *handlers) CheckPermissions(ctx context.Context, req api.CheckPermissionsRequestObject) (api.CheckPermissionsResponseObject, error) {
	missing, unknown := rbac.CheckPermissions(effectiveSet(httpx.PrincipalFrom(ctx)), req.Body.Permissions)
	if len(unknown) > 0 {
		errs := make([]FieldError, 0, len(unknown))
		for _, i := range unknown {
			errs = append(errs, FieldError{Pointer: fmt.Sprintf("/permissions/%d", i), Detail: "is not a known permission", Code: "unprocessable"})
		}
		return nil, unprocessable("unprocessable", "Some permissions are not in the catalogue.", errs...)
	}
	return api.CheckPermissions200JSONResponse{Body: api.PermissionCheckResult{HasPermission: len(missing) == 0, MissingPermissions: missing}}, nil
}

func (h *handlers) ListWidgets(ctx context.Context, req api.ListWidgetsRequestObject) (api.ListWidgetsResponseObject, error) {
	states := rbac.WidgetStates(effectiveSet(httpx.PrincipalFrom(ctx)))
	out := api.WidgetList{Items: make([]api.Widget, 0, len(states))}
	for _, w := range states {
		out.Items = append(out.Items, api.Widget{Id: w.ID, Name: w.Name, Type: w.Type, Visible: w.Visible, Enabled: w.Enabled,
			RequiredPermissions: w.Required})
	}
	return api.ListWidgets200JSONResponse{Body: out}, nil
}

func (h *handlers) GetResourcePermissions(ctx context.Context, req api.GetResourcePermissionsRequestObject) (api.GetResourcePermissionsResponseObject, error) {
	ra, ok := rbac.ResourceAccessOf(req.Type, effectiveSet(httpx.PrincipalFrom(ctx)))
	if !ok {
		return nil, notFound("Resource type")
	}
	return api.GetResourcePermissions200JSONResponse{Body: api.ResourcePermissions{Resource: ra.Resource, CanCreate: ra.CanCreate,
		CanRead: ra.CanRead, CanUpdate: ra.CanUpdate, CanDelete: ra.CanDelete, CanList: ra.CanList, Actions: ra.Actions}}, nil
}

func (h *handlers) ListRoles(ctx context.Context, req api.ListRolesRequestObject) (api.ListRolesResponseObject, error) {
	roles := rbac.AllRoles()
	out := api.RoleList{Items: make([]api.RoleInfo, 0, len(roles))}
	for _, r := range roles {
		perms := rbac.PermissionsOf(r)
		out.Items = append(out.Items, api.RoleInfo{Name: api.UserRole(r), DisplayName: rbac.DisplayName(r), Description: rbac.Description(r),
			Permissions: perms, PermissionCount: len(perms)})
	}
	return api.ListRoles200JSONResponse{Body: out}, nil
}
