package server

import (
	"gorm.io/gorm"

	"context"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/oapi-codegen/nullable"

	"github.com/wataomi/wataomi/flow"
	"github.com/wataomi/wataomi/gen/api"
	"github.com/wataomi/wataomi/openapi/apitime"
	"github.com/wataomi/wataomi/store"
)

// handlers implements the generated strict interface; one file per contract tag.
type handlers struct{ s *Server }

var _ api.StrictServerInterface = (*handlers)(nil)

// NullableFrom fills a required nullable response field: nil becomes an explicit null, never the
// zero value.
func NullableFrom[T any](p *T) nullable.Nullable[T] {
	if p == nil {
		return nullable.NewNullNullable[T]()
	}
	return nullable.NewNullableWithValue(*p)
}

func etag(revision int) string { return `"r` + strconv.Itoa(revision) + `"` }

func flowLocation(id int64) string { return fmt.Sprintf("%s/flows/%d", BasePath, id) }

func flowSummary(f *store.Flow, tags []store.Tag) api.FlowSummary {
	return api.FlowSummary{
		CategoryId: NullableFrom(f.CategoryID), Tags: tagRefs(tags),
		Id: f.ID, Name: f.Name, Description: NullableFrom(f.Description), Status: api.FlowStatus(f.Status),
		Visibility: api.FlowVisibility(f.Visibility), TeamId: NullableFrom(f.TeamID), OwnerId: f.OwnerID,
		Revision: f.Revision, Version: f.Version, PublishedVersion: NullableFrom(f.PublishedVersion),
		HasUnpublishedChanges: hasUnpublishedChanges(f), NodeCount: f.NodeCount,
		ArchivedAt: NullableFrom(apitime.FromPtr(f.ArchivedAt)), TemplateId: NullableFrom(f.TemplateID),
		CreatedAt: apitime.From(f.CreatedAt), UpdatedAt: apitime.From(f.UpdatedAt),
	}
}

func hasUnpublishedChanges(f *store.Flow) bool {
	return f.Status == "published" && f.PublishedHash != nil && *f.PublishedHash != f.ContentHash
}

// flowFull maps a stored flow with its graph, tags and completeness report.
func (s *Server) flowFull(ctx context.Context, f *store.Flow) (api.Flow, error) {
	return s.flowFullIn(ctx, s.deps.DB.DB, f)
}

// flowFullIn is flowFull reading through db: inside a transaction pass the transaction (SQLite has one
// connection, which the transaction holds).
func (s *Server) flowFullIn(ctx context.Context, db *gorm.DB, f *store.Flow) (api.Flow, error) {
	tags, err := store.FlowTags(ctx, db, []int64{f.ID})
	if err != nil {
		return api.Flow{}, err
	}
	var g api.Graph
	if err := json.Unmarshal(f.Data, &g); err != nil {
		return api.Flow{}, fmt.Errorf("flow %d: stored graph: %w", f.ID, err)
	}
	issues, err := s.graphIssues(f.Data)
	if err != nil {
		return api.Flow{}, err
	}
	next := nullable.NewNullNullable[apitime.Time]()
	if f.Status == "published" {
		// Only a published flow can have an armed schedule: drafts cost no query.
		var fs store.FlowSchedule
		res := db.WithContext(ctx).Where("flow_id = ?", f.ID).Limit(1).Find(&fs)
		if res.Error != nil {
			return api.Flow{}, res.Error
		}
		if res.RowsAffected == 1 {
			next = nullable.NewNullableWithValue(apitime.From(fs.NextRunAt))
		}
	}
	sum := flowSummary(f, tags[f.ID])
	return api.Flow{
		Id: sum.Id, Name: sum.Name, Description: sum.Description, Status: sum.Status, Visibility: sum.Visibility,
		TeamId: sum.TeamId, OwnerId: sum.OwnerId, Revision: sum.Revision, Version: sum.Version,
		PublishedVersion: sum.PublishedVersion, HasUnpublishedChanges: sum.HasUnpublishedChanges,
		NodeCount: sum.NodeCount, ArchivedAt: sum.ArchivedAt, TemplateId: sum.TemplateId, CategoryId: sum.CategoryId, Tags: sum.Tags, CreatedAt: sum.CreatedAt, UpdatedAt: sum.UpdatedAt,
		Data: g, Validation: validationOf(issues), WebhookUrl: s.flowWebhookURL(f), NextRunAt: next,
	}, nil
}

func validationOf(issues []flow.Issue) api.FlowValidation {
	v := api.FlowValidation{Valid: true, Issues: make([]api.FlowValidationIssue, 0, len(issues))}
	for _, is := range issues {
		if is.Severity == flow.SeverityError {
			v.Valid = false
		}
		v.Issues = append(v.Issues, api.FlowValidationIssue{Pointer: is.Pointer, Code: is.Code, Message: is.Message,
			Severity: api.FlowValidationIssueSeverity(is.Severity)})
	}
	return v
}

func pageMeta(total int64, page, size int) (totalPages int, hasNext, hasPrev bool) {
	totalPages = int((total + int64(size) - 1) / int64(size))
	return totalPages, page < totalPages, page > 1 && total > 0
}

func pageParams(page, size *int) (int, int) {
	p, s := 1, 25
	if page != nil {
		p = *page
	}
	if size != nil {
		s = *size
	}
	return p, s
}

func (s *Server) flowWebhookURL(f *store.Flow) nullable.Nullable[string] {
	if f.WebhookKey == nil {
		return nullable.NewNullNullable[string]()
	}
	return nullable.NewNullableWithValue(s.webhookURL(*f.WebhookKey))
}

// sortKeys turns a list's validated sort parameter (an enum of signed keys) into the store's keys.
func sortKeys[K ~string](sort *[]K) []string {
	if sort == nil {
		return nil
	}
	out := make([]string, len(*sort))
	for i, k := range *sort {
		out[i] = string(k)
	}
	return out
}

// rowIDs lists the ids of a page of rows, for the one query that loads their related data.
func rowIDs[T any](rows []T, id func(*T) int64) []int64 {
	out := make([]int64, len(rows))
	for i := range rows {
		out[i] = id(&rows[i])
	}
	return out
}
