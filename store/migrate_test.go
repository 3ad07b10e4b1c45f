package store_test

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"gorm.io/gorm"

	"github.com/wataomi/wataomi/store"
	"github.com/wataomi/wataomi/store/storetest"
)

var allModels = []any{&store.User{}, &store.Team{}, &store.TeamMember{}, &store.Flow{}, &store.FlowVersion{},
	&store.RefreshToken{}, &store.APIToken{}, &store.AuditLog{},
	&store.Execution{}, &store.NodeExecution{}, &store.ExecutionEvent{}, &store.FlowSchedule{},
	&store.Template{}, &store.AgentConfig{}, &store.Settings{}, &store.Integration{},
	&store.Tag{}, &store.Category{}, &store.Icon{}, &store.FlowTag{}, &store.TemplateTag{}, &store.Archive{}, &store.Media{}}

// emptyDatabases runs fn on an unmigrated database of each available dialect.
func emptyDatabases(t *testing.T, fn func(t *testing.T, db *store.DB)) {
	ctx := context.Background()
	t.Run(store.SQLite, func(t *testing.T) {
		db, err := store.Open(ctx, store.SQLite, filepath.Join(t.TempDir(), "sub", "m.db"), 8)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		fn(t, db)
	})
	if u := os.Getenv(storetest.EnvDatabaseURL); u != "" {
		t.Run(store.Postgres, func(t *testing.T) {
			db, err := store.Open(ctx, store.Postgres, storetest.EmptyPostgres(t, u), 4)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			fn(t, db)
		})
	}
}

func migrationCount(t *testing.T, dialect string) int {
	t.Helper()
	files, err := fs.Glob(store.MigrationFS(), dialect+"/*.sql")
	if err != nil || len(files) == 0 {
		t.Fatalf("no %s migrations: %v", dialect, err)
	}
	return len(files)
}

func TestMigrateUpDownUp(t *testing.T) {
	emptyDatabases(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		if db.Dialect == store.SQLite {
			var fk int
			if err := db.Raw("PRAGMA foreign_keys").Scan(&fk).Error; err != nil || fk != 1 {
				t.Fatalf("foreign_keys = %d, %v; want 1", fk, err)
			}
			if n := db.SQLDB().Stats().MaxOpenConnections; n != 1 {
				t.Fatalf("sqlite MaxOpenConnections = %d, want 1", n)
			}
		}
		want := migrationCount(t, db.Dialect)
		if n, err := store.PendingMigrations(ctx, db); err != nil || n != want {
			t.Fatalf("pending before up = %d, %v; want %d", n, err, want)
		}
		if err := store.MigrateUp(ctx, db); err != nil {
			t.Fatal(err)
		}
		if n, err := store.PendingMigrations(ctx, db); err != nil || n != 0 {
			t.Fatalf("pending after up = %d, %v; want 0", n, err)
		}
		var out bytes.Buffer
		if err := store.MigrationStatus(ctx, db, &out); err != nil {
			t.Fatal(err)
		}
		if s := out.String(); !strings.Contains(s, "00001_init.sql") || !strings.Contains(s, "applied") {
			t.Fatalf("status output:\n%s", s)
		}

		if err := store.MigrateDownAll(ctx, db); err != nil {
			t.Fatal(err)
		}
		for _, m := range allModels {
			if db.Migrator().HasTable(m) {
				t.Errorf("table of %T still exists after down all", m)
			}
		}
		if n, err := store.PendingMigrations(ctx, db); err != nil || n != want {
			t.Fatalf("pending after down = %d, %v; want %d", n, err, want)
		}
		out.Reset()
		if err := store.MigrationStatus(ctx, db, &out); err != nil || !strings.Contains(out.String(), "pending") {
			t.Fatalf("status after down: %v\n%s", err, out.String())
		}

		if err := store.MigrateUp(ctx, db); err != nil {
			t.Fatal(err)
		}
		// One step down and up again.
		if err := store.MigrateDown(ctx, db); err != nil {
			t.Fatal(err)
		}
		if n, err := store.PendingMigrations(ctx, db); err != nil || n != 1 {
			t.Fatalf("pending after one down = %d, %v; want 1", n, err)
		}
		if err := store.MigrateUp(ctx, db); err != nil {
			t.Fatal(err)
		}
		checkSchema(t, db)
	})
}

// checkSchema compares every model with its table: same columns, nullable
// exactly where the Go field is a pointer, the expected foreign keys with
// their ON DELETE rules, and the named indexes.
func checkSchema(t *testing.T, db *store.DB) {
	t.Helper()
	for _, m := range allModels {
		stmt := &gorm.Statement{DB: db.DB}
		if err := stmt.Parse(m); err != nil {
			t.Fatal(err)
		}
		sch := stmt.Schema
		cols, err := db.Migrator().ColumnTypes(m)
		if err != nil {
			t.Fatalf("%s: %v", sch.Table, err)
		}
		got := map[string]gorm.ColumnType{}
		for _, c := range cols {
			got[c.Name()] = c
		}
		fields := map[string]bool{}
		for _, f := range sch.Fields {
			if f.DBName == "" {
				continue
			}
			fields[f.DBName] = true
			c, ok := got[f.DBName]
			if !ok {
				t.Errorf("%s: field %s has no column %s", sch.Table, f.Name, f.DBName)
				continue
			}
			if f.PrimaryKey {
				continue
			}
			nullable, ok := c.Nullable()
			if !ok {
				t.Errorf("%s.%s: nullability unknown", sch.Table, f.DBName)
				continue
			}
			isPtr := f.FieldType.Kind() == reflect.Pointer
			if nullable != isPtr {
				t.Errorf("%s.%s: nullable=%v but Go field %s pointer=%v", sch.Table, f.DBName, nullable, f.Name, isPtr)
			}
		}
		for name := range got {
			if !fields[name] {
				t.Errorf("%s: column %s has no field in %T", sch.Table, name, m)
			}
		}
	}

	// audit_logs has no foreign key on purpose (PRODUCT §9.2).
	wantFKs := []string{
		"agent_configs.flow_id -> flows CASCADE",
		"api_tokens.owner_id -> users CASCADE",
		"archives.archived_by -> users SET NULL",
		"archives.owner_id -> users SET NULL",
		"archives.restored_by -> users SET NULL",
		"archives.team_id -> teams SET NULL",
		"categories.parent_id -> categories RESTRICT",
		"execution_events.execution_id -> executions CASCADE",
		"executions.api_token_id -> api_tokens SET NULL",
		"executions.flow_id -> flows CASCADE",
		"executions.retry_of -> executions SET NULL",
		"executions.triggered_by -> users SET NULL",
		"flow_schedules.flow_id -> flows CASCADE",
		"flow_tags.flow_id -> flows CASCADE",
		"flow_tags.tag_id -> tags CASCADE",
		"flow_versions.created_by -> users SET NULL",
		"flow_versions.flow_id -> flows CASCADE",
		"flows.category_id -> categories RESTRICT",
		"flows.owner_id -> users RESTRICT",
		"flows.team_id -> teams SET NULL",
		"flows.template_id -> templates SET NULL",
		"integrations.created_by -> users SET NULL",
		"media.uploaded_by -> users RESTRICT",
		"node_executions.execution_id -> executions CASCADE",
		"refresh_tokens.replaced_by_id -> refresh_tokens SET NULL",
		"refresh_tokens.user_id -> users CASCADE",
		"team_members.team_id -> teams CASCADE",
		"team_members.user_id -> users CASCADE",
		"template_tags.tag_id -> tags CASCADE",
		"template_tags.template_id -> templates CASCADE",
		"templates.category_id -> categories RESTRICT",
		"templates.created_by -> users SET NULL",
		"templates.source_flow_id -> flows SET NULL",
	}
	var gotFKs []string
	switch db.Dialect {
	case store.Postgres:
		rows, err := db.Raw(`
SELECT kcu.table_name, kcu.column_name, ccu.table_name, rc.delete_rule
FROM information_schema.referential_constraints rc
JOIN information_schema.key_column_usage kcu
  ON kcu.constraint_schema = rc.constraint_schema AND kcu.constraint_name = rc.constraint_name
JOIN information_schema.constraint_column_usage ccu
  ON ccu.constraint_schema = rc.constraint_schema AND ccu.constraint_name = rc.constraint_name
WHERE rc.constraint_schema = current_schema()`).Rows()
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var table, col, ref, rule string
			if err := rows.Scan(&table, &col, &ref, &rule); err != nil {
				t.Fatal(err)
			}
			gotFKs = append(gotFKs, table+"."+col+" -> "+ref+" "+rule)
		}
		if err := rows.Close(); err != nil {
			t.Fatal(err)
		}
	case store.SQLite:
		for _, table := range []string{"users", "teams", "team_members", "flows", "flow_versions", "refresh_tokens", "api_tokens", "audit_logs",
			"executions", "node_executions", "execution_events", "flow_schedules", "templates", "agent_configs", "settings", "integrations",
			"tags", "categories", "icons", "flow_tags", "template_tags", "archives", "media"} {
			var list []struct {
				Table    string `gorm:"column:table"`
				From     string `gorm:"column:from"`
				OnDelete string `gorm:"column:on_delete"`
			}
			if err := db.Raw("SELECT * FROM pragma_foreign_key_list(?)", table).Scan(&list).Error; err != nil {
				t.Fatal(err)
			}
			for _, fk := range list {
				gotFKs = append(gotFKs, table+"."+fk.From+" -> "+fk.Table+" "+fk.OnDelete)
			}
		}
	}
	sort.Strings(gotFKs)
	if !slices.Equal(gotFKs, wantFKs) {
		t.Errorf("foreign keys:\n got  %q\n want %q", gotFKs, wantFKs)
	}

	wantIndexes := map[string][]string{
		"users":        {"users_external_id", "users_email_lower"},
		"teams":        {"teams_name"},
		"team_members": {"team_members_user_id"},
		"flows": {"flows_owner_id", "flows_status", "flows_created_at_id", "flows_updated_at_id", "flows_team_id", "flows_template_id",
			"flows_category_id"},
		"flow_versions": {"flow_versions_flow_id_version", "flow_versions_created_by"},
		"refresh_tokens": {"refresh_tokens_token_hash", "refresh_tokens_family_id", "refresh_tokens_user_id",
			"refresh_tokens_replaced_by_id", "refresh_tokens_expires_at"},
		"api_tokens": {"api_tokens_token_hash", "api_tokens_owner_id_name"},
		"audit_logs": {"audit_logs_occurred_at", "audit_logs_resource", "audit_logs_actor_user_id_id", "audit_logs_api_token_id_id",
			"audit_logs_action"},
		"templates": {"templates_system_key", "templates_created_at_id", "templates_source_flow_id", "templates_created_by",
			"templates_category_id"},
		"tags":          {"tags_name_key"},
		"categories":    {"categories_entity_type_name_key", "categories_entity_type_slug", "categories_parent_id"},
		"icons":         {"icons_name"},
		"flow_tags":     {"flow_tags_tag_id"},
		"template_tags": {"template_tags_tag_id"},
		"agent_configs": {"agent_configs_flow_id"},
		"integrations": {"integrations_provider_name", "integrations_endpoint_key", "integrations_provider_default",
			"integrations_created_at", "integrations_created_by"},
		"media": {"media_storage_public_id", "media_file_key", "media_uploaded_by_created_at", "media_created_at"},
	}
	for table, names := range wantIndexes {
		for _, name := range names {
			if !db.Migrator().HasIndex(table, name) {
				t.Errorf("index %s on %s missing", name, table)
			}
		}
	}
}

func TestMigrationFoldersMatch(t *testing.T) {
	names := func(dialect string) []string {
		files, err := fs.Glob(store.MigrationFS(), dialect+"/*.sql")
		if err != nil {
			t.Fatal(err)
		}
		for i, f := range files {
			files[i] = filepath.Base(f)
		}
		return files
	}
	pg, lite := names(store.Postgres), names(store.SQLite)
	if !slices.Equal(pg, lite) || len(pg) == 0 {
		t.Fatalf("migration folders differ:\n postgres %q\n sqlite   %q", pg, lite)
	}
}

func TestCreateMigration(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{store.Postgres, store.SQLite} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, store.Postgres, "00001_init.sql"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, store.SQLite, "00003_x.sql"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	paths, err := store.CreateMigration(dir, "Add flow-tags, v2!")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		filepath.Join(dir, store.Postgres, "00004_add_flow_tags_v2.sql"),
		filepath.Join(dir, store.SQLite, "00004_add_flow_tags_v2.sql"),
	}
	if !slices.Equal(paths, want) {
		t.Fatalf("paths = %q, want %q", paths, want)
	}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		s := string(b)
		up, down := strings.Index(s, "-- +goose Up"), strings.Index(s, "-- +goose Down")
		if up != 0 || down < up {
			t.Errorf("%s:\n%s", p, s)
		}
	}
	if _, err := store.CreateMigration(dir, "  ---  "); err == nil {
		t.Error("a name without letters was accepted")
	}
	if _, err := store.CreateMigration(filepath.Join(dir, "missing"), "x"); err == nil {
		t.Error("a missing folder was accepted")
	}
}
