package config

import (
	"bytes"
	"errors"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

const strongKey = "0123456789abcdef0123456789abcdef-strong"

// load runs Load in a fresh directory holding files (relative path → content).
func load(t *testing.T, env map[string]string, files map[string]string) (*Config, string, error) {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if env == nil {
		env = map[string]string{}
	}
	c, err := Load(LoadOptions{Env: env, WorkDir: dir})
	return c, dir, err
}

func mustLoad(t *testing.T, env map[string]string, files map[string]string) (*Config, string) {
	t.Helper()
	c, dir, err := load(t, env, files)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return c, dir
}

func prodEnv(overrides map[string]string) map[string]string {
	env := map[string]string{
		"APP_ENV":               "production",
		"DATABASE_URL":          "postgres://app:pw@db:5432/wataomi",
		"REDIS_URL":             "redis://:pw@redis:6379/0",
		"SECRET_KEY":            strongKey,
		"CORS_ORIGINS":          "https://app.example.com",
		"PUBLIC_BASE_URL":       "https://api.example.com",
		"CASDOOR_ENDPOINT":      "https://sso.example.com",
		"CASDOOR_CLIENT_ID":     "client-id",
		"CASDOOR_CLIENT_SECRET": "prod-casdoor-client-secret",
		"CASDOOR_CERTIFICATE":   testCerts().pem1,
		"ENCRYPTION_KEY":        testEncryptionKey,
		"CLOUDINARY_CLOUD_NAME": "demo",
		"CLOUDINARY_API_KEY":    "123456789012345",
		"CLOUDINARY_API_SECRET": "prod-cloudinary-secret",
	}
	for k, v := range overrides {
		if v == "" {
			delete(env, k)
		} else {
			env[k] = v
		}
	}
	return env
}

func TestFieldsAreTheDocumentedVariables(t *testing.T) {
	want := []string{
		"PROJECT_NAME", "API_V1_STR", "DEBUG", "APP_ENV", "DATABASE_URL", "REDIS_URL", "SECRET_KEY", "ALGORITHM",
		"ACCESS_TOKEN_EXPIRE_MINUTES", "REFRESH_TOKEN_EXPIRE_DAYS", "JWT_ISSUER", "JWT_AUDIENCE",
		"CASDOOR_ENDPOINT", "CASDOOR_CLIENT_ID", "CASDOOR_CLIENT_SECRET", "CASDOOR_APP_NAME", "CASDOOR_ORG_NAME",
		"CASDOOR_CERTIFICATE", "FRONTEND_URL", "HTTP_ADDR", "PORT", "PUBLIC_BASE_URL", "CORS_ORIGINS",
		"TRUSTED_PROXIES", "CONFIG_FILE", "LOG_LEVEL", "LOG_FORMAT", "API_MAX_BODY_BYTES", "FLOW_MAX_NODES",
		"FLOW_MAX_EDGES", "FLOW_MAX_BYTES", "DB_MAX_CONNS", "RUN_MIGRATIONS_ON_START", "SEED_ON_START",
		"SHUTDOWN_TIMEOUT_SECONDS", "METRICS_ADDR", "GOOGLE_API_KEY", "OPENAI_API_KEY", "SUPABASE_URL",
		"SUPABASE_KEY", "N8N_URL", "CLOUDINARY_CLOUD_NAME", "CLOUDINARY_API_KEY", "CLOUDINARY_API_SECRET",
		"QDRANT_URL", "QDRANT_API_KEY",
		"CASDOOR_ISSUER", "CASDOOR_REDIRECT_URIS", "CASDOOR_ROLE_CLAIM", "CASDOOR_ROLE_SYNC",
		"OAUTH_STATE_TTL_SECONDS", "API_TOKEN_MAX_TTL_DAYS", "IDEMPOTENCY_TTL_HOURS", "REFRESH_REUSE_GRACE_SECONDS",
		"RATE_LIMIT_PER_MINUTE", "RATE_LIMIT_PUBLIC_PER_MINUTE", "RATE_LIMIT_AI_PER_MINUTE",
		"GEMINI_BASE_URL", "OPENAI_BASE_URL", "AI_DEFAULT_MODEL", "AI_REQUEST_TIMEOUT_SECONDS",
		"WORKER_CONCURRENCY", "WORKER_CONCURRENCY_MAINTENANCE", "SCHEDULER_ENABLED", "EXECUTION_MAX_STEPS",
		"EXECUTION_MAX_RUN_SECONDS", "EXECUTION_MAX_LIFETIME_SECONDS", "NODE_TIMEOUT_SECONDS",
		"EXECUTION_MAX_CONCURRENT_PER_USER", "SCHEDULE_MISFIRE_GRACE_SECONDS", "EXECUTION_RETENTION_DAYS",
		"EXECUTION_EVENTS_RETENTION_HOURS", "HTTP_ALLOWED_HOSTS", "HTTP_BLOCK_PRIVATE_NETWORKS",
		"AUDIT_RETENTION_DAYS",
		"ENCRYPTION_KEY", "ENCRYPTION_KEYS_PREVIOUS", "ANTHROPIC_BASE_URL", "META_GRAPH_BASE_URL", "META_GRAPH_API_VERSION",
		"MEDIA_STORAGE", "MEDIA_LOCAL_DIR", "MEDIA_MAX_IMAGE_BYTES", "MEDIA_MAX_FILE_BYTES", "CLOUDINARY_BASE_URL",
	}
	var got []string
	for _, f := range fields {
		got = append(got, f.key)
	}
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("fields\n got %v\nwant %v", got, want)
	}
}

func TestDefaults(t *testing.T) {
	c, dir := mustLoad(t, nil, nil)
	checks := []struct {
		name      string
		got, want any
	}{
		{"ProjectName", c.ProjectName, "WataOmi"},
		{"APIV1Str", c.APIV1Str, "/api/v1"},
		{"Debug", c.Debug, false},
		{"AppEnv", c.AppEnv, "development"},
		{"Algorithm", c.Algorithm, "HS256"},
		{"AccessTokenTTL", c.AccessTokenTTL(), 30 * time.Minute},
		{"RefreshTokenTTL", c.RefreshTokenTTL(), 7 * 24 * time.Hour},
		{"ShutdownTimeout", c.ShutdownTimeout(), 30 * time.Second},
		{"JWTIssuer", c.JWTIssuer, "wataomi-api"},
		{"JWTAudience", c.JWTAudience, "wataomi-web"},
		{"CasdoorAppName", c.CasdoorAppName, "wataomi-app"},
		{"CasdoorOrgName", c.CasdoorOrgName, "wataomi"},
		{"CasdoorEndpoint", c.CasdoorEndpoint, ""},
		{"CasdoorIssuer", c.CasdoorIssuer, ""},
		{"CasdoorRedirectURIs", c.CasdoorRedirectURIs, []string{"http://localhost:3000/auth/callback"}},
		{"CasdoorRoleClaim", c.CasdoorRoleClaim, RoleClaimTag},
		{"CasdoorRoleSync", c.CasdoorRoleSync, RoleSyncCreate},
		{"CasdoorConfigured", c.CasdoorConfigured(), false},
		{"CasdoorCertificates", len(c.CasdoorCertificates()), 0},
		{"OAuthStateTTLSeconds", c.OAuthStateTTLSeconds, 600},
		{"OAuthStateTTL", c.OAuthStateTTL(), 10 * time.Minute},
		{"APITokenMaxTTLDays", c.APITokenMaxTTLDays, 365},
		{"APITokenMaxTTL", c.APITokenMaxTTL(), 365 * 24 * time.Hour},
		{"AuditRetentionDays", c.AuditRetentionDays, 365},
		{"AuditRetention", c.AuditRetention(), 365 * 24 * time.Hour},
		{"IdempotencyTTLHours", c.IdempotencyTTLHours, 24},
		{"IdempotencyTTL", c.IdempotencyTTL(), 24 * time.Hour},
		{"RefreshReuseGraceSeconds", c.RefreshReuseGraceSeconds, 10},
		{"RefreshReuseGrace", c.RefreshReuseGrace(), 10 * time.Second},
		{"RateLimitPerMinute", c.RateLimitPerMinute, 600},
		{"RateLimitPublicPerMinute", c.RateLimitPublicPerMinute, 60},
		{"RateLimitAIPerMinute", c.RateLimitAIPerMinute, 30},
		{"FrontendURL", c.FrontendURL, "http://localhost:3000"},
		{"PublicBaseURL", c.PublicBaseURL, "http://localhost:8000"},
		{"CORSOrigins", c.CORSOrigins, []string{"http://localhost:3000"}},
		{"TrustedProxies", len(c.TrustedProxies), 0},
		{"ConfigFile", c.ConfigFile, DefaultConfigFile},
		{"LogLevel", c.LogLevel, "info"},
		{"LogFormat", c.LogFormat, "json"},
		{"APIMaxBodyBytes", c.APIMaxBodyBytes, int64(1048576)},
		{"FlowMaxNodes", c.FlowMaxNodes, 200},
		{"FlowMaxEdges", c.FlowMaxEdges, 500},
		{"FlowMaxBytes", c.FlowMaxBytes, int64(1048576)},
		{"DBMaxConns (forced on SQLite)", c.DBMaxConns, 1},
		{"RunMigrationsOnStart", c.RunMigrationsOnStart, true},
		{"SeedOnStart", c.SeedOnStart, true},
		{"MetricsAddr", c.MetricsAddr, ":9090"},
		{"N8NURL", c.N8NURL, "http://localhost:5678"},
		{"ListenAddr", c.ListenAddr(), ":8000"},
		{"DatabaseDialect", c.DatabaseDialect(), DialectSQLite},
		{"DatabaseDSN", c.DatabaseDSN(), filepath.Join(dir, "data", "wataomi.db")},
		{"MediaStorage", c.MediaStorage, "local"},
		{"MediaLocalDir", c.MediaLocalDir, filepath.Join(dir, "data", "media")},
		{"MediaMaxImageBytes", c.MediaMaxImageBytes, int64(5242880)},
		{"MediaMaxFileBytes", c.MediaMaxFileBytes, int64(10485760)},
		{"CloudinaryBaseURL", c.CloudinaryBaseURL, "https://api.cloudinary.com"},
		{"IsProduction", c.IsProduction(), false},
		{"SecretKey length", len(c.SecretKey), 32},
		// Only the derived encryption key (PRODUCT §8: ENCRYPTION_KEY unset in development warns).
		{"Warnings", c.Warnings(), []string{"ENCRYPTION_KEY is unset: secrets at rest are encrypted with a key derived from SECRET_KEY; production requires ENCRYPTION_KEY"}},
	}
	for _, ch := range checks {
		if !reflect.DeepEqual(ch.got, ch.want) {
			t.Errorf("%s = %#v, want %#v", ch.name, ch.got, ch.want)
		}
	}
}

func TestPrecedence(t *testing.T) {
	const (
		yaml   = "project_name: from-yaml\naccess_token_expire_minutes: 60\n"
		dotenv = "PROJECT_NAME=from-dotenv\n"
	)
	tests := []struct {
		name        string
		env         map[string]string
		files       map[string]string
		wantName    string
		wantMinutes int
	}{
		{"default", nil, nil, "WataOmi", 30},
		{"yaml over default", nil, map[string]string{"config.yaml": yaml}, "from-yaml", 60},
		{"dotenv over yaml", nil, map[string]string{"config.yaml": yaml, ".env": dotenv}, "from-dotenv", 60},
		{"env over dotenv", map[string]string{"PROJECT_NAME": "from-env"},
			map[string]string{"config.yaml": yaml, ".env": dotenv}, "from-env", 60},
		{"env over yaml, int", map[string]string{"ACCESS_TOKEN_EXPIRE_MINUTES": "15"},
			map[string]string{"config.yaml": yaml}, "from-yaml", 15},
		{"dotenv over default", nil, map[string]string{".env": dotenv}, "from-dotenv", 30},
		{"empty env value falls through", map[string]string{"PROJECT_NAME": ""},
			map[string]string{".env": dotenv}, "from-dotenv", 30},
		{"empty yaml value falls through", nil,
			map[string]string{"config.yaml": "project_name: \"\"\naccess_token_expire_minutes:\n"}, "WataOmi", 30},
		{"CONFIG_FILE chooses the file", map[string]string{"CONFIG_FILE": "conf/other.yaml"},
			map[string]string{"config.yaml": yaml, "conf/other.yaml": "project_name: other\n"}, "other", 30},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := mustLoad(t, tt.env, tt.files)
			if c.ProjectName != tt.wantName {
				t.Errorf("PROJECT_NAME = %q, want %q", c.ProjectName, tt.wantName)
			}
			if c.AccessTokenExpireMinutes != tt.wantMinutes {
				t.Errorf("ACCESS_TOKEN_EXPIRE_MINUTES = %d, want %d", c.AccessTokenExpireMinutes, tt.wantMinutes)
			}
		})
	}
}

func TestDotenvIgnoredInProduction(t *testing.T) {
	dotenv := ".env"
	tests := []struct {
		name  string
		env   map[string]string
		files map[string]string
	}{
		{"APP_ENV from the environment", prodEnv(nil),
			map[string]string{dotenv: "PROJECT_NAME=from-dotenv\nREDIS_URL=redis://other\n"}},
		{"APP_ENV from config.yaml", prodEnv(map[string]string{"APP_ENV": ""}),
			map[string]string{"config.yaml": "app_env: production\n", dotenv: "PROJECT_NAME=from-dotenv\n"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := mustLoad(t, tt.env, tt.files)
			if !c.IsProduction() {
				t.Fatalf("AppEnv = %q", c.AppEnv)
			}
			if c.ProjectName != "WataOmi" {
				t.Errorf("PROJECT_NAME = %q: .env was read in production", c.ProjectName)
			}
			if c.RedisURL != "redis://:pw@redis:6379/0" {
				t.Errorf("REDIS_URL = %q: .env was read in production", c.RedisURL)
			}
			if !slices.ContainsFunc(c.Warnings(), func(w string) bool { return strings.Contains(w, ".env") }) {
				t.Errorf("no warning about the ignored .env: %q", c.Warnings())
			}
		})
	}

	t.Run(".env cannot switch to production", func(t *testing.T) {
		_, _, err := load(t, nil, map[string]string{dotenv: "APP_ENV=production\n"})
		if err == nil || !strings.Contains(err.Error(), ".env") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run(".env may choose test", func(t *testing.T) {
		c, _ := mustLoad(t, nil, map[string]string{dotenv: "APP_ENV=test\n"})
		if c.AppEnv != EnvTest {
			t.Fatalf("AppEnv = %q", c.AppEnv)
		}
	})
}

func TestProductionRefusals(t *testing.T) {
	t.Run("a complete production config loads", func(t *testing.T) {
		c, dir := mustLoad(t, prodEnv(nil), nil)
		if !c.CasdoorConfigured() || len(c.CasdoorCertificates()) != 1 {
			t.Errorf("CasdoorConfigured %v, %d certificates", c.CasdoorConfigured(), len(c.CasdoorCertificates()))
		}
		if c.DatabaseDialect() != DialectPostgres || c.RunMigrationsOnStart {
			t.Errorf("dialect %q, RunMigrationsOnStart %v", c.DatabaseDialect(), c.RunMigrationsOnStart)
		}
		if string(c.SecretKey) != strongKey {
			t.Errorf("SecretKey not taken from SECRET_KEY")
		}
		if _, err := os.Stat(filepath.Join(dir, "data", "secret.key")); !os.IsNotExist(err) {
			t.Errorf("production created a development key file (stat err %v)", err)
		}
	})
	tests := []struct {
		name      string
		overrides map[string]string
		want      string
	}{
		{"no DATABASE_URL (SQLite default)", map[string]string{"DATABASE_URL": ""}, "DATABASE_URL: production requires PostgreSQL"},
		{"sqlite DATABASE_URL", map[string]string{"DATABASE_URL": "sqlite:///var/lib/w.db"}, "DATABASE_URL: production requires PostgreSQL"},
		{"no SECRET_KEY", map[string]string{"SECRET_KEY": ""}, "SECRET_KEY: is required in production"},
		{"short SECRET_KEY", map[string]string{"SECRET_KEY": "too-short-but-not-an-example"}, "SECRET_KEY: is 28 bytes"},
		{"31-byte SECRET_KEY", map[string]string{"SECRET_KEY": strings.Repeat("k", 31)}, "SECRET_KEY: is 31 bytes"},
		{"example your-secret-key", map[string]string{"SECRET_KEY": "your-secret-key"}, "SECRET_KEY: is a published example"},
		{"example your-secret-key-here", map[string]string{"SECRET_KEY": "your-secret-key-here"}, "SECRET_KEY: is a published example"},
		{"example changeme", map[string]string{"SECRET_KEY": "changeme"}, "SECRET_KEY: is a published example"},
		{"example secret", map[string]string{"SECRET_KEY": "secret"}, "SECRET_KEY: is a published example"},
		{"CORS *", map[string]string{"CORS_ORIGINS": "*"}, "CORS_ORIGINS: * is refused in production"},
		{"CORS * among others", map[string]string{"CORS_ORIGINS": "https://a.example.com, *"}, "CORS_ORIGINS: * is refused in production"},
		{"no REDIS_URL", map[string]string{"REDIS_URL": ""}, "REDIS_URL: is required in production"},
		{"no CASDOOR_ENDPOINT", map[string]string{"CASDOOR_ENDPOINT": ""}, "CASDOOR_ENDPOINT: is required in production"},
		{"no CASDOOR_CLIENT_ID", map[string]string{"CASDOOR_CLIENT_ID": ""}, "CASDOOR_CLIENT_ID: is required in production"},
		{"no CASDOOR_CLIENT_SECRET", map[string]string{"CASDOOR_CLIENT_SECRET": ""}, "CASDOOR_CLIENT_SECRET: is required in production"},
		{"no CASDOOR_CERTIFICATE", map[string]string{"CASDOOR_CERTIFICATE": ""}, "CASDOOR_CERTIFICATE: is required in production"},
		{"http PUBLIC_BASE_URL", map[string]string{"PUBLIC_BASE_URL": "http://api.example.com"}, "PUBLIC_BASE_URL: must be https in production"},
		{"default PUBLIC_BASE_URL", map[string]string{"PUBLIC_BASE_URL": ""}, "PUBLIC_BASE_URL: must be https in production"},
		{"no media storage", map[string]string{"CLOUDINARY_API_SECRET": ""}, "MEDIA_STORAGE: is unset"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, dir, err := load(t, prodEnv(tt.overrides), nil)
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("err = %v, want a *ValidationError", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v\nwant it to contain %q", err, tt.want)
			}
			if _, err := os.Stat(filepath.Join(dir, "data", "secret.key")); !os.IsNotExist(err) {
				t.Errorf("production created a development key file")
			}
		})
		t.Run(tt.name+" is accepted in development", func(t *testing.T) {
			env := prodEnv(tt.overrides)
			env["APP_ENV"] = "development"
			if _, _, err := load(t, env, nil); err != nil {
				t.Fatalf("development refused it: %v", err)
			}
		})
	}
}

func TestValidation(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want string // "" means valid
	}{
		{"API_V1_STR other", map[string]string{"API_V1_STR": "/api/v2"}, "API_V1_STR: must be /api/v1"},
		{"ALGORITHM RS256", map[string]string{"ALGORITHM": "RS256"}, "ALGORITHM: only HS256"},
		{"MEDIA_STORAGE unknown", map[string]string{"MEDIA_STORAGE": "s3"}, "MEDIA_STORAGE: must be cloudinary or local"},
		{"MEDIA_STORAGE cloudinary without keys", map[string]string{"MEDIA_STORAGE": "cloudinary"}, "MEDIA_STORAGE: cloudinary needs"},
		{"MEDIA_MAX_IMAGE_BYTES zero", map[string]string{"MEDIA_MAX_IMAGE_BYTES": "0"}, "MEDIA_MAX_IMAGE_BYTES: must be at least 1"},
		{"CLOUDINARY_BASE_URL relative", map[string]string{"CLOUDINARY_BASE_URL": "api.cloudinary.com"}, "CLOUDINARY_BASE_URL: must be an absolute"},
		{"MEDIA_STORAGE local", map[string]string{"MEDIA_STORAGE": "Local"}, ""},
		{"access 4", map[string]string{"ACCESS_TOKEN_EXPIRE_MINUTES": "4"}, "ACCESS_TOKEN_EXPIRE_MINUTES: must be between 5 and 1440"},
		{"access 5", map[string]string{"ACCESS_TOKEN_EXPIRE_MINUTES": "5"}, ""},
		{"access 1440", map[string]string{"ACCESS_TOKEN_EXPIRE_MINUTES": "1440"}, ""},
		{"access 1441", map[string]string{"ACCESS_TOKEN_EXPIRE_MINUTES": "1441"}, "ACCESS_TOKEN_EXPIRE_MINUTES: must be between"},
		{"access not a number", map[string]string{"ACCESS_TOKEN_EXPIRE_MINUTES": "30m"}, "ACCESS_TOKEN_EXPIRE_MINUTES: must be an integer"},
		{"refresh 0", map[string]string{"REFRESH_TOKEN_EXPIRE_DAYS": "0"}, "REFRESH_TOKEN_EXPIRE_DAYS: must be between 1 and 90"},
		{"refresh 1", map[string]string{"REFRESH_TOKEN_EXPIRE_DAYS": "1"}, ""},
		{"refresh 90", map[string]string{"REFRESH_TOKEN_EXPIRE_DAYS": "90"}, ""},
		{"refresh 91", map[string]string{"REFRESH_TOKEN_EXPIRE_DAYS": "91"}, "REFRESH_TOKEN_EXPIRE_DAYS: must be between"},
		{"APP_ENV staging", map[string]string{"APP_ENV": "staging"}, "APP_ENV: must be development, test or production"},
		{"APP_ENV test", map[string]string{"APP_ENV": "test"}, ""},
		{"LOG_LEVEL trace", map[string]string{"LOG_LEVEL": "trace"}, "LOG_LEVEL: must be"},
		{"LOG_LEVEL WARN", map[string]string{"LOG_LEVEL": "WARN"}, ""},
		{"LOG_FORMAT xml", map[string]string{"LOG_FORMAT": "xml"}, "LOG_FORMAT: must be json or text"},
		{"LOG_FORMAT text", map[string]string{"LOG_FORMAT": "text"}, ""},
		{"API_MAX_BODY_BYTES 0", map[string]string{"API_MAX_BODY_BYTES": "0"}, "API_MAX_BODY_BYTES: must be positive"},
		{"FLOW_MAX_NODES -1", map[string]string{"FLOW_MAX_NODES": "-1"}, "FLOW_MAX_NODES: must be positive"},
		{"FLOW_MAX_EDGES 0", map[string]string{"FLOW_MAX_EDGES": "0"}, "FLOW_MAX_EDGES: must be positive"},
		{"FLOW_MAX_BYTES 0", map[string]string{"FLOW_MAX_BYTES": "0"}, "FLOW_MAX_BYTES: must be positive"},
		{"DB_MAX_CONNS 0", map[string]string{"DB_MAX_CONNS": "0"}, "DB_MAX_CONNS: must be positive"},
		{"SHUTDOWN_TIMEOUT_SECONDS 0", map[string]string{"SHUTDOWN_TIMEOUT_SECONDS": "0"}, "SHUTDOWN_TIMEOUT_SECONDS: must be positive"},
		{"DEBUG maybe", map[string]string{"DEBUG": "maybe"}, "DEBUG: must be true or false"},
		{"PORT abc", map[string]string{"PORT": "abc"}, "PORT: must be a port number"},
		{"PORT 70000", map[string]string{"PORT": "70000"}, "PORT: must be a port number"},
		{"HTTP_ADDR without port", map[string]string{"HTTP_ADDR": "localhost"}, "HTTP_ADDR: must be host:port"},
		{"TRUSTED_PROXIES bogus", map[string]string{"TRUSTED_PROXIES": "10.0.0.0/8,bogus"}, `TRUSTED_PROXIES: not a CIDR or IP address: "bogus"`},
		{"FRONTEND_URL relative", map[string]string{"FRONTEND_URL": "localhost:3000"}, "FRONTEND_URL: must be an absolute http(s) URL"},
		{"CORS origin with a path", map[string]string{"CORS_ORIGINS": "https://a.example.com/app"}, "CORS_ORIGINS:"},
		{"REDIS_URL http", map[string]string{"REDIS_URL": "http://redis:6379"}, "REDIS_URL: must be a redis://"},
		{"DATABASE_URL mysql", map[string]string{"DATABASE_URL": "mysql://u:p@h/db"}, `DATABASE_URL: unsupported scheme "mysql"`},
		{"oauth state 29", map[string]string{"OAUTH_STATE_TTL_SECONDS": "29"}, "OAUTH_STATE_TTL_SECONDS: must be between 30 and 3600, got 29"},
		{"oauth state 30", map[string]string{"OAUTH_STATE_TTL_SECONDS": "30"}, ""},
		{"oauth state 3600", map[string]string{"OAUTH_STATE_TTL_SECONDS": "3600"}, ""},
		{"oauth state 3601", map[string]string{"OAUTH_STATE_TTL_SECONDS": "3601"}, "OAUTH_STATE_TTL_SECONDS: must be between"},
		{"api token max 0", map[string]string{"API_TOKEN_MAX_TTL_DAYS": "0"}, "API_TOKEN_MAX_TTL_DAYS: must be between 1 and 3650, got 0"},
		{"api token max 1", map[string]string{"API_TOKEN_MAX_TTL_DAYS": "1"}, ""},
		{"api token max 3650", map[string]string{"API_TOKEN_MAX_TTL_DAYS": "3650"}, ""},
		{"api token max 3651", map[string]string{"API_TOKEN_MAX_TTL_DAYS": "3651"}, "API_TOKEN_MAX_TTL_DAYS: must be between"},
		{"reuse grace -1", map[string]string{"REFRESH_REUSE_GRACE_SECONDS": "-1"}, "REFRESH_REUSE_GRACE_SECONDS: must be between 0 and 300, got -1"},
		{"reuse grace 0", map[string]string{"REFRESH_REUSE_GRACE_SECONDS": "0"}, ""},
		{"reuse grace 300", map[string]string{"REFRESH_REUSE_GRACE_SECONDS": "300"}, ""},
		{"reuse grace 301", map[string]string{"REFRESH_REUSE_GRACE_SECONDS": "301"}, "REFRESH_REUSE_GRACE_SECONDS: must be between"},
		{"idempotency 0", map[string]string{"IDEMPOTENCY_TTL_HOURS": "0"}, "IDEMPOTENCY_TTL_HOURS: must be positive"},
		{"idempotency 1", map[string]string{"IDEMPOTENCY_TTL_HOURS": "1"}, ""},
		{"rate limit 0", map[string]string{"RATE_LIMIT_PER_MINUTE": "0"}, "RATE_LIMIT_PER_MINUTE: must be positive"},
		{"public rate limit -5", map[string]string{"RATE_LIMIT_PUBLIC_PER_MINUTE": "-5"}, "RATE_LIMIT_PUBLIC_PER_MINUTE: must be positive"},
		{"ai rate limit 0", map[string]string{"RATE_LIMIT_AI_PER_MINUTE": "0"}, "RATE_LIMIT_AI_PER_MINUTE: must be positive"},
		{"rate limits 1", map[string]string{"RATE_LIMIT_PER_MINUTE": "1", "RATE_LIMIT_PUBLIC_PER_MINUTE": "1", "RATE_LIMIT_AI_PER_MINUTE": "1"}, ""},
		{"rate limit not a number", map[string]string{"RATE_LIMIT_PER_MINUTE": "lots"}, "RATE_LIMIT_PER_MINUTE: must be an integer"},
		{"role claim roles", map[string]string{"CASDOOR_ROLE_CLAIM": "roles"}, ""},
		{"role claim Tag", map[string]string{"CASDOOR_ROLE_CLAIM": " Tag "}, ""},
		{"role claim groups", map[string]string{"CASDOOR_ROLE_CLAIM": "groups"}, `CASDOOR_ROLE_CLAIM: must be tag or roles, got "groups"`},
		{"role sync login", map[string]string{"CASDOOR_ROLE_SYNC": "login"}, ""},
		{"role sync always", map[string]string{"CASDOOR_ROLE_SYNC": "always"}, `CASDOOR_ROLE_SYNC: must be create or login, got "always"`},
		{"casdoor endpoint http", map[string]string{"CASDOOR_ENDPOINT": "http://localhost:8030"}, ""},
		{"casdoor endpoint with path", map[string]string{"CASDOOR_ENDPOINT": "https://example.com/casdoor/"}, ""},
		{"casdoor endpoint no scheme", map[string]string{"CASDOOR_ENDPOINT": "localhost:8030"}, "CASDOOR_ENDPOINT: must be an absolute http(s) URL"},
		{"casdoor endpoint ftp", map[string]string{"CASDOOR_ENDPOINT": "ftp://sso.example.com"}, "CASDOOR_ENDPOINT: must be an absolute http(s) URL"},
		{"casdoor endpoint with credentials", map[string]string{"CASDOOR_ENDPOINT": "https://u:pw@sso.example.com"}, "CASDOOR_ENDPOINT: must not contain credentials"},
		{"casdoor endpoint with query", map[string]string{"CASDOOR_ENDPOINT": "https://sso.example.com?x=1"}, "CASDOOR_ENDPOINT: must not have a query or fragment"},
		{"redirect uris", map[string]string{"CASDOOR_REDIRECT_URIS": "https://app.example.com/auth/callback, http://localhost:3000/cb?x=1"}, ""},
		{"redirect uri relative", map[string]string{"CASDOOR_REDIRECT_URIS": "https://app.example.com/cb,/auth/callback"}, `CASDOOR_REDIRECT_URIS: "/auth/callback" is not an absolute http(s) URL`},
		{"redirect uri custom scheme", map[string]string{"CASDOOR_REDIRECT_URIS": "myapp://callback"}, `CASDOOR_REDIRECT_URIS: "myapp://callback" is not an absolute`},
		{"redirect uri fragment", map[string]string{"CASDOOR_REDIRECT_URIS": "https://app.example.com/cb#x"}, "CASDOOR_REDIRECT_URIS: \"https://app.example.com/cb#x\" must not have a fragment"},
		{"redirect uri credentials", map[string]string{"CASDOOR_REDIRECT_URIS": "https://u:pw@app.example.com/cb"}, "must not contain credentials"},
		{"certificate", map[string]string{"CASDOOR_CERTIFICATE": testCerts().pem1}, ""},
		{"certificate not PEM", map[string]string{"CASDOOR_CERTIFICATE": "not a certificate"}, "CASDOOR_CERTIFICATE: contains no PEM CERTIFICATE block"},
		{"PUBLIC_BASE_URL http outside production", map[string]string{"PUBLIC_BASE_URL": "http://api.example.com"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := load(t, tt.env, nil)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v\nwant it to contain %q", err, tt.want)
			}
		})
	}
}

func TestEveryProblemIsReported(t *testing.T) {
	env := prodEnv(map[string]string{
		"API_V1_STR": "/v1", "ALGORITHM": "none", "SECRET_KEY": "changeme", "REDIS_URL": "", "CORS_ORIGINS": "*",
		"DATABASE_URL": "sqlite:x.db",
	})
	c, _, err := load(t, env, nil)
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("err = %v", err)
	}
	for _, want := range []string{"API_V1_STR", "ALGORITHM", "SECRET_KEY", "REDIS_URL", "CORS_ORIGINS", "DATABASE_URL"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %s:\n%v", want, err)
		}
	}
	if len(ve.Problems) != 6 {
		t.Errorf("%d problems, want 6:\n%v", len(ve.Problems), err)
	}
	if c == nil {
		t.Fatal("validation failure returned no config for `config check`")
	}
	if strings.Contains(err.Error(), "changeme") {
		t.Errorf("the error quotes the secret key")
	}
}

func TestDatabaseURL(t *testing.T) {
	tests := []struct {
		url         string
		wantDialect string
		wantDSN     string // "{dir}" is replaced by the working directory
		wantErr     string
	}{
		{"", DialectSQLite, "{dir}/data/wataomi.db", ""},
		{"postgres://u:p@h:5432/db?sslmode=disable", DialectPostgres, "postgres://u:p@h:5432/db?sslmode=disable", ""},
		{"postgresql://u:p@h/db", DialectPostgres, "postgresql://u:p@h/db", ""},
		{"postgresql+asyncpg://u:p@h/db", DialectPostgres, "postgresql://u:p@h/db", ""},
		{"postgresql+psycopg://u:p@h/db", DialectPostgres, "postgresql://u:p@h/db", ""},
		{"postgresql+psycopg2://u:p@h/db", DialectPostgres, "postgresql://u:p@h/db", ""},
		{"postgres+asyncpg://u:p@h/db", DialectPostgres, "postgres://u:p@h/db", ""},
		{"PostgreSQL+AsyncPG://u:p@h/db", DialectPostgres, "postgresql://u:p@h/db", ""},
		{"sqlite:data/app.db", DialectSQLite, "{dir}/data/app.db", ""},
		{"sqlite:/abs/app.db", DialectSQLite, "/abs/app.db", ""},
		{"sqlite://rel/path.db", DialectSQLite, "{dir}/rel/path.db", ""},
		{"sqlite:///abs/path.db", DialectSQLite, "/abs/path.db", ""},
		{"sqlite+aiosqlite:///abs/path.db", DialectSQLite, "/abs/path.db", ""},
		{"sqlite:", DialectSQLite, "{dir}/data/wataomi.db", ""},
		{"sqlite://", DialectSQLite, "{dir}/data/wataomi.db", ""},
		{"sqlite::memory:", DialectSQLite, ":memory:", ""},
		{"postgresql+pg8000://u:p@h/db", "", "", "unsupported driver suffix"},
		{"postgres:u:p@h/db", "", "", "expected postgres://"},
		{"mysql://u:secretpw@h/db", "", "", "unsupported scheme"},
		{"host=h user=u password=secretpw", "", "", "expected postgres://"},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			c, dir, err := load(t, map[string]string{"DATABASE_URL": tt.url}, nil)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "secretpw") {
					t.Fatalf("the error leaks the password: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := strings.ReplaceAll(tt.wantDSN, "{dir}", dir)
			if c.DatabaseDialect() != tt.wantDialect || c.DatabaseDSN() != want {
				t.Errorf("got (%q, %q), want (%q, %q)", c.DatabaseDialect(), c.DatabaseDSN(), tt.wantDialect, want)
			}
			wantConns := 20
			if tt.wantDialect == DialectSQLite {
				wantConns = 1
			}
			if c.DBMaxConns != wantConns {
				t.Errorf("DBMaxConns = %d, want %d", c.DBMaxConns, wantConns)
			}
		})
	}
}

func TestSecretKeyFile(t *testing.T) {
	dir := t.TempDir()
	opts := LoadOptions{Env: map[string]string{}, WorkDir: dir}
	first, err := Load(opts)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "data", "secret.key")
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatalf("secret.key not created: %v", err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("secret.key mode %04o, want 0600", fi.Mode().Perm())
	}
	di, err := os.Stat(filepath.Join(dir, "data"))
	if err != nil || di.Mode().Perm()&0o077 != 0 {
		t.Errorf("data dir mode %v (err %v), want 0700", di.Mode().Perm(), err)
	}
	onDisk, _ := os.ReadFile(path)
	if len(first.SecretKey) != 32 || !bytes.Equal(onDisk, first.SecretKey) {
		t.Fatalf("key %d bytes, file %d bytes, equal %v", len(first.SecretKey), len(onDisk), bytes.Equal(onDisk, first.SecretKey))
	}
	if bytes.Equal(first.SecretKey, make([]byte, 32)) {
		t.Fatal("key is all zeros")
	}
	second, err := Load(opts)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(first.SecretKey, second.SecretKey) {
		t.Fatal("the second load generated a different key")
	}
	if entries, _ := os.ReadDir(filepath.Join(dir, "data")); len(entries) != 1 {
		t.Errorf("data dir holds %d entries, want only secret.key", len(entries))
	}

	other, err := Load(LoadOptions{Env: map[string]string{}, WorkDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(other.SecretKey, first.SecretKey) {
		t.Fatal("two directories got the same key")
	}

	explicit, err := Load(LoadOptions{Env: map[string]string{"SECRET_KEY": strongKey}, WorkDir: dir})
	if err != nil || string(explicit.SecretKey) != strongKey {
		t.Fatalf("SECRET_KEY did not win over the file: %v", err)
	}

	t.Run("a truncated file is an error, not a weak key", func(t *testing.T) {
		_, dir, err := load(t, nil, map[string]string{"data/secret.key": "short"})
		if err == nil || !strings.Contains(err.Error(), "SECRET_KEY") {
			t.Fatalf("err = %v", err)
		}
		if b, _ := os.ReadFile(filepath.Join(dir, "data", "secret.key")); string(b) != "short" {
			t.Fatal("the existing file was overwritten")
		}
	})
}

func TestRedaction(t *testing.T) {
	secrets := map[string]string{
		"SECRET_KEY":            "plain-signing-key-0123456789abcdef-XYZ",
		"CASDOOR_CLIENT_SECRET": "plain-casdoor-client-secret",
		"CASDOOR_CERTIFICATE":   testCerts().pem1,
		"GOOGLE_API_KEY":        "plain-google-key",
		"OPENAI_API_KEY":        "plain-openai-key",
		"SUPABASE_KEY":          "plain-supabase-key",
		"CLOUDINARY_API_KEY":    "plain-cloudinary-key",
		"CLOUDINARY_API_SECRET": "plain-cloudinary-secret",
		"QDRANT_API_KEY":        "plain-qdrant-key",
		"ENCRYPTION_KEY":        testEncryptionKey,
		// Two previous keys: each item is redacted, not only the first.
		"ENCRYPTION_KEYS_PREVIOUS": testPreviousKey + "," + testPreviousKey2,
	}
	env := maps.Clone(secrets)
	env["DATABASE_URL"] = "postgresql+asyncpg://dbuser:plain-db-pw@db:5432/wataomi?sslpassword=plain-ssl-pw"
	env["REDIS_URL"] = "redis://:plain-redis-pw@redis:6379/0"
	env["QDRANT_URL"] = "https://plain-qdrant-token@qdrant.example.com"
	env["SUPABASE_URL"] = "https://sb.example.com"
	c, _ := mustLoad(t, env, nil)

	var out bytes.Buffer
	if err := c.WriteCheck(&out); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	plaintexts := []string{"plain-db-pw", "plain-ssl-pw", "plain-redis-pw", "plain-qdrant-token", pemBodyLine(t, testCerts().pem1),
		testPreviousKey, testPreviousKey2}
	for _, v := range secrets {
		plaintexts = append(plaintexts, v)
	}
	for _, p := range plaintexts {
		if strings.Contains(text, p) {
			t.Errorf("config check prints the secret %q:\n%s", p, text)
		}
	}
	for _, line := range []string{
		"SECRET_KEY=(set)",
		"CASDOOR_CLIENT_SECRET=(set)",
		"CASDOOR_CERTIFICATE=(set)",
		"GOOGLE_API_KEY=(set)",
		"SUPABASE_KEY=(set)",
		"CLOUDINARY_API_SECRET=(set)",
		"QDRANT_API_KEY=(set)",
		"ENCRYPTION_KEY=(set)",
		"ENCRYPTION_KEYS_PREVIOUS=(set)",
		"CASDOOR_CLIENT_ID=",
		"DATABASE_URL=postgresql+asyncpg://dbuser:xxxxx@db:5432/wataomi?sslpassword=xxxxx",
		"REDIS_URL=redis://:xxxxx@redis:6379/0",
		"QDRANT_URL=https://xxxxx@qdrant.example.com",
		"SUPABASE_URL=https://sb.example.com",
		"PROJECT_NAME=WataOmi",
		"CORS_ORIGINS=http://localhost:3000",
	} {
		if !strings.Contains(text, line+"\n") {
			t.Errorf("output lacks the line %q:\n%s", line, text)
		}
	}
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	if !slices.IsSorted(lines) {
		t.Errorf("lines are not sorted:\n%s", text)
	}
	if len(lines) != len(fields) {
		t.Errorf("%d lines, want one per variable (%d)", len(lines), len(fields))
	}

	unset, _ := mustLoad(t, map[string]string{"SECRET_KEY": strongKey}, nil)
	for _, kv := range unset.Redacted() {
		if kv.Key == "OPENAI_API_KEY" && kv.Value != "(unset)" {
			t.Errorf("OPENAI_API_KEY = %q, want (unset)", kv.Value)
		}
	}
}

func TestRedactURL(t *testing.T) {
	tests := []struct {
		in, want, secret string
		userOnly         bool
	}{
		{"postgres://u:pw@h/db", "postgres://u:xxxxx@h/db", "pw@", false},
		{"postgres://u@h/db", "postgres://u@h/db", "", false},
		{"postgres://u:p@ss/w#rd@h/db", "postgres://u:xxxxx@h/db", "ss/w#rd", false},
		{"postgres://h/db?password=topsecret&sslmode=require", "postgres://h/db?password=xxxxx&sslmode=require", "topsecret", false},
		{"host=h password='top secret' dbname=x", "host=h password=xxxxx dbname=x", "top secret", false},
		{"redis://:pw1@r:6379", "redis://:xxxxx@r:6379", "pw1", true},
		{"redis://tokenonly@r:6379", "redis://xxxxx@r:6379", "tokenonly", true},
		{"http://localhost:3000", "http://localhost:3000", "", true},
	}
	for _, tt := range tests {
		got := redactURL(tt.in, tt.userOnly)
		if got != tt.want {
			t.Errorf("redactURL(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if tt.secret != "" && strings.Contains(got, tt.secret) {
			t.Errorf("redactURL(%q) leaks %q", tt.in, tt.secret)
		}
	}
}

func TestLists(t *testing.T) {
	tests := []struct {
		name        string
		env         map[string]string
		files       map[string]string
		wantOrigins []string
		wantProxies []string
	}{
		{"comma list with spaces and empties",
			map[string]string{"CORS_ORIGINS": " https://a.example.com , ,https://b.example.com/,", "TRUSTED_PROXIES": "10.0.0.0/8, 192.168.1.7 ,,::1, 172.16.5.4/12"},
			nil,
			[]string{"https://a.example.com", "https://b.example.com"},
			[]string{"10.0.0.0/8", "192.168.1.7/32", "::1/128", "172.16.0.0/12"}},
		{"yaml sequences", nil,
			map[string]string{"config.yaml": "cors_origins:\n  - https://y.example.com\n  - ''\ntrusted_proxies: [127.0.0.1/32]\n"},
			[]string{"https://y.example.com"}, []string{"127.0.0.1/32"}},
		{"yaml comma string", nil,
			map[string]string{"config.yaml": "cors_origins: https://p.example.com,https://q.example.com\n"},
			[]string{"https://p.example.com", "https://q.example.com"}, nil},
		{"CORS defaults to FRONTEND_URL", map[string]string{"FRONTEND_URL": "https://app.example.com"}, nil,
			[]string{"https://app.example.com"}, nil},
		{"only separators falls back to FRONTEND_URL", map[string]string{"CORS_ORIGINS": " , "}, nil,
			[]string{"http://localhost:3000"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := mustLoad(t, tt.env, tt.files)
			if !slices.Equal(c.CORSOrigins, tt.wantOrigins) {
				t.Errorf("CORSOrigins = %q, want %q", c.CORSOrigins, tt.wantOrigins)
			}
			var got []string
			for _, p := range c.TrustedProxies {
				got = append(got, p.String())
			}
			if !slices.Equal(got, tt.wantProxies) {
				t.Errorf("TrustedProxies = %q, want %q", got, tt.wantProxies)
			}
		})
	}
	c, _ := mustLoad(t, map[string]string{"TRUSTED_PROXIES": "10.0.0.0/8"}, nil)
	if !c.TrustedProxies[0].Contains(netip.MustParseAddr("10.1.2.3")) {
		t.Error("the parsed prefix does not contain 10.1.2.3")
	}
}

func TestListenAddr(t *testing.T) {
	tests := []struct {
		env  map[string]string
		want string
	}{
		{nil, ":8000"},
		{map[string]string{"PORT": "9000"}, ":9000"},
		{map[string]string{"HTTP_ADDR": "127.0.0.1:8080"}, "127.0.0.1:8080"},
		{map[string]string{"HTTP_ADDR": ":7000", "PORT": "9000"}, ":7000"},
		{map[string]string{"HTTP_ADDR": "", "PORT": "9001"}, ":9001"},
	}
	for _, tt := range tests {
		c, _ := mustLoad(t, tt.env, nil)
		if got := c.ListenAddr(); got != tt.want {
			t.Errorf("env %v: ListenAddr = %q, want %q", tt.env, got, tt.want)
		}
	}
}

func TestGeminiAlias(t *testing.T) {
	tests := []struct {
		name  string
		env   map[string]string
		files map[string]string
		want  string
	}{
		{"GEMINI_API_KEY alone", map[string]string{"GEMINI_API_KEY": "g1"}, nil, "g1"},
		{"GOOGLE_API_KEY wins in the same layer", map[string]string{"GEMINI_API_KEY": "g1", "GOOGLE_API_KEY": "g2"}, nil, "g2"},
		{"env alias beats yaml canonical", map[string]string{"GEMINI_API_KEY": "env"},
			map[string]string{"config.yaml": "google_api_key: yaml\n"}, "env"},
		{"env alias beats .env canonical", map[string]string{"GEMINI_API_KEY": "env"},
			map[string]string{".env": "GOOGLE_API_KEY=dot\n"}, "env"},
		{".env alias", nil, map[string]string{".env": "GEMINI_API_KEY=dot\n"}, "dot"},
		{"yaml alias", nil, map[string]string{"config.yaml": "gemini_api_key: yaml\n"}, "yaml"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := mustLoad(t, tt.env, tt.files)
			if c.GoogleAPIKey != tt.want {
				t.Errorf("GoogleAPIKey = %q, want %q", c.GoogleAPIKey, tt.want)
			}
		})
	}
}

func TestDerivedDefaults(t *testing.T) {
	tests := []struct {
		name           string
		env            map[string]string
		wantLevel      string
		wantMigrations bool
	}{
		{"plain", nil, "info", true},
		{"DEBUG turns on debug logs", map[string]string{"DEBUG": "true"}, "debug", true},
		{"LOG_LEVEL beats DEBUG", map[string]string{"DEBUG": "1", "LOG_LEVEL": "warn"}, "warn", true},
		{"no migrations by default in production", prodEnv(nil), "info", false},
		{"explicit migrations in production", prodEnv(map[string]string{"RUN_MIGRATIONS_ON_START": "true"}), "info", true},
		{"explicit no migrations in dev", map[string]string{"RUN_MIGRATIONS_ON_START": "false"}, "info", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := mustLoad(t, tt.env, nil)
			if c.LogLevel != tt.wantLevel || c.RunMigrationsOnStart != tt.wantMigrations {
				t.Errorf("LogLevel %q, RunMigrationsOnStart %v; want %q, %v", c.LogLevel, c.RunMigrationsOnStart, tt.wantLevel, tt.wantMigrations)
			}
		})
	}
}

func TestWarnings(t *testing.T) {
	tests := []struct {
		name  string
		env   map[string]string
		files map[string]string
		want  string // "" means no warnings
	}{
		{"clean production", prodEnv(nil), nil, ""},
		{"DEBUG in production", prodEnv(map[string]string{"DEBUG": "true"}), nil, "DEBUG=true in production"},
		{"SUPABASE_URL", map[string]string{"SUPABASE_URL": "https://x.supabase.co"}, nil, "reserved, unused"},
		{"SUPABASE_KEY", map[string]string{"SUPABASE_KEY": "k"}, nil, "reserved, unused"},
		{"weak key in dev", map[string]string{"SECRET_KEY": "changeme"}, nil, "production would refuse it"},
		{"partial Casdoor in dev", map[string]string{"CASDOOR_ENDPOINT": "http://localhost:8030", "CASDOOR_CLIENT_ID": "id"}, nil,
			"Casdoor SSO is partly configured (CASDOOR_CLIENT_SECRET, CASDOOR_CERTIFICATE unset)"},
		{"complete Casdoor in dev", map[string]string{"CASDOOR_ENDPOINT": "http://localhost:8030", "CASDOOR_CLIENT_ID": "id",
			"CASDOOR_CLIENT_SECRET": "s", "CASDOOR_CERTIFICATE": testCerts().pem1, "ENCRYPTION_KEY": testEncryptionKey}, nil, ""},
		{"derived encryption key in dev", map[string]string{"SECRET_KEY": strongKey}, nil, "ENCRYPTION_KEY is unset"},
		{"unknown yaml key", nil, map[string]string{"config.yaml": "databse_url: x\n"}, `unknown key "databse_url"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := mustLoad(t, tt.env, tt.files)
			w := c.Warnings()
			if tt.want == "" {
				if len(w) != 0 {
					t.Fatalf("warnings %q, want none", w)
				}
				return
			}
			if !slices.ContainsFunc(w, func(s string) bool { return strings.Contains(s, tt.want) }) {
				t.Fatalf("warnings %q lack %q", w, tt.want)
			}
			for _, s := range w {
				if strings.Contains(s, "changeme") {
					t.Errorf("a warning quotes the secret: %q", s)
				}
			}
		})
	}
}

func TestConfigFileErrors(t *testing.T) {
	if _, _, err := load(t, map[string]string{"CONFIG_FILE": "missing.yaml"}, nil); err == nil {
		t.Error("an explicit CONFIG_FILE that does not exist was accepted")
	}
	if _, _, err := load(t, nil, map[string]string{"config.yaml": "project_name: [unclosed\n"}); err == nil {
		t.Error("malformed YAML was accepted")
	}
	if _, _, err := load(t, nil, map[string]string{"config.yaml": "project_name: [a, b]\n"}); err == nil ||
		!strings.Contains(err.Error(), "PROJECT_NAME: must be a single value") {
		t.Errorf("a list for a scalar: err = %v", err)
	}
	if _, _, err := load(t, nil, map[string]string{".env": "NOT AN ASSIGNMENT\n"}); err == nil {
		t.Error("a malformed .env was accepted")
	}
	abs := filepath.Join(t.TempDir(), "abs.yaml")
	if err := os.WriteFile(abs, []byte("project_name: abs\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, _ := mustLoad(t, map[string]string{"CONFIG_FILE": abs}, nil)
	if c.ProjectName != "abs" || c.ConfigFile != abs {
		t.Errorf("absolute CONFIG_FILE: ProjectName %q, ConfigFile %q", c.ProjectName, c.ConfigFile)
	}
}

func TestParseDotenv(t *testing.T) {
	tests := []struct {
		name    string
		src     string
		want    map[string]string
		wantErr string
	}{
		{"basics", "# comment\n\nA=1\nB = two words \nexport C=3\n", map[string]string{"A": "1", "B": "two words", "C": "3"}, ""},
		{"inline comment", "A=value # note\nB=a#b\n", map[string]string{"A": "value", "B": "a#b"}, ""},
		{"double quotes", `A="x # not a comment"` + "\n" + `B="line1\nline2 \"q\" \\"`, map[string]string{"A": "x # not a comment", "B": "line1\nline2 \"q\" \\"}, ""},
		{"single quotes are literal", `A='a\nb "c"' # c`, map[string]string{"A": `a\nb "c"`}, ""},
		{"multi-line quoted", "CERT=\"-----BEGIN-----\nabc\n-----END-----\"\nNEXT=1\n", map[string]string{"CERT": "-----BEGIN-----\nabc\n-----END-----", "NEXT": "1"}, ""},
		{"empty values", "A=\nB=\"\"\nC=''", map[string]string{"A": "", "B": "", "C": ""}, ""},
		{"CRLF and BOM", "\uFEFFA=1\r\nB=\"2\"\r\n", map[string]string{"A": "1", "B": "2"}, ""},
		{"later wins", "A=1\nA=2\n", map[string]string{"A": "2"}, ""},
		{"equals in value", "URL=postgres://h/db?a=b\n", map[string]string{"URL": "postgres://h/db?a=b"}, ""},
		{"no equals", "A=1\nJUSTTEXT\n", nil, "line 2: expected KEY=VALUE"},
		{"bad name", "1A=x\n", nil, "line 1: invalid variable name"},
		{"unterminated", "A=1\nB=\"open\n", nil, "line 2: unterminated"},
		{"text after quote", "A=\"x\" y\n", nil, "line 1: unexpected text"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseDotenv(tt.src)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !maps.Equal(got, tt.want) {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestValidationErrorMessage(t *testing.T) {
	err := &ValidationError{Problems: []error{errors.New("A: bad"), errors.New("B: bad")}}
	want := "invalid configuration (2 problems):\n  A: bad\n  B: bad"
	if err.Error() != want {
		t.Fatalf("got %q", err.Error())
	}
	if !errors.Is(err, err.Problems[1]) {
		t.Fatal("Unwrap does not expose the problems")
	}
}
