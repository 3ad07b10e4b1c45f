package server

import (
	"context"

	"gorm.io/gorm"

	"github.com/wataomi/wataomi/server/httpx"
	"github.com/wataomi/wataomi/store"
)

// auditEntry is one change to record (PRODUCT §5.17). It is written with writeAudit in the same
// transaction as the change, so a change and its audit row commit or roll back together.
type auditEntry struct {
	Action       string
	ResourceType string
	ResourceID   int64
	Status       string         // default success
	Fields       []string       // names of the changed fields
	Before       map[string]any // values before, for the fields where showing them is safe
	After        map[string]any
	Actor        *httpx.Principal // default: the request's principal
	ActorUser    *store.User      // for unauthenticated actions (login): the user acting
}

func writeAudit(ctx context.Context, tx *gorm.DB, e auditEntry) error {
	row := &store.AuditLog{Action: e.Action, ResourceType: e.ResourceType, Status: e.Status, ActorType: store.ActorSystem, ActorDisplay: "system"}
	if e.ResourceID != 0 {
		id := e.ResourceID
		row.ResourceID = &id
	}
	p := e.Actor
	if p == nil {
		p = httpx.PrincipalFrom(ctx)
	}
	switch {
	case p != nil:
		uid := p.UserID
		row.ActorUserID, row.ActorType, row.ActorDisplay = &uid, store.ActorUser, displayOf(p.Name, p.Email)
		if p.Kind == httpx.KindAPIToken {
			tid := p.TokenID
			row.ActorType, row.APITokenID = store.ActorAPIToken, &tid
		}
	case e.ActorUser != nil:
		uid := e.ActorUser.ID
		row.ActorUserID, row.ActorType, row.ActorDisplay = &uid, store.ActorUser, displayOf(e.ActorUser.Name, e.ActorUser.Email)
	}
	if rid := httpx.RequestID(ctx); rid != "" {
		row.RequestID = &rid
	}
	if ip := httpx.ClientIP(ctx); ip != "" {
		row.IP = &ip
	}
	changes, err := store.AuditChanges(e.Fields, e.Before, e.After)
	if err != nil {
		return err
	}
	row.Changes = changes
	return store.InsertAudit(ctx, tx, row)
}

func displayOf(name, email string) string {
	if name != "" {
		return name
	}
	return email
}
