package config

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/viper"

	"github.com/wataomi/wataomi/netguard"
)

// The values APP_ENV accepts.
const (
	EnvDevelopment = "development"
	EnvTest        = "test"
	EnvProduction  = "production"
)

// The values DatabaseDialect returns.
const (
	DialectPostgres = "postgres"
	DialectSQLite   = "sqlite"
)

// The values CasdoorRoleClaim accepts: which Casdoor claim carries the role.
const (
	RoleClaimTag   = "tag"
	RoleClaimRoles = "roles"
)

// The values CasdoorRoleSync accepts: when the Casdoor role is written to
// the user.
const (
	RoleSyncCreate = "create"
	RoleSyncLogin  = "login"
)

// DefaultConfigFile is read when CONFIG_FILE is unset; unlike an explicit
// CONFIG_FILE, it may be missing.
const DefaultConfigFile = "./config.yaml"

// DefaultListenAddr is used when neither HTTP_ADDR nor PORT is set.
const DefaultListenAddr = ":8000"

// MinSecretKeyBytes is the shortest HS256 key production accepts.
const MinSecretKeyBytes = 32

// knownExampleSecrets are values copied from READMEs and .env.example files;
// a production server signing with one of them would accept forged tokens.
var knownExampleSecrets = []string{"your-secret-key", "your-secret-key-here", "changeme", "secret"}

// Config is the effective configuration. Each field's env tag is the variable
// it is read from; the yaml key is the same name in lower case. Fields without
// a default tag are empty when unset, or get a derived default in Load.
type Config struct {
	ProjectName string `env:"PROJECT_NAME" default:"WataOmi"`
	APIV1Str    string `env:"API_V1_STR" default:"/api/v1"`
	Debug       bool   `env:"DEBUG" default:"false"`
	AppEnv      string `env:"APP_ENV" default:"development"`

	// DatabaseURL is the raw value; use DatabaseDialect and DatabaseDSN.
	DatabaseURL string `env:"DATABASE_URL"`
	RedisURL    string `env:"REDIS_URL"`

	// SecretKey is the HS256 signing key. Outside production, when unset, it
	// is the 32 random bytes persisted in ./data/secret.key.
	SecretKey                []byte `env:"SECRET_KEY"`
	Algorithm                string `env:"ALGORITHM" default:"HS256"`
	AccessTokenExpireMinutes int    `env:"ACCESS_TOKEN_EXPIRE_MINUTES" default:"30"`
	RefreshTokenExpireDays   int    `env:"REFRESH_TOKEN_EXPIRE_DAYS" default:"7"`
	JWTIssuer                string `env:"JWT_ISSUER" default:"wataomi-api"`
	JWTAudience              string `env:"JWT_AUDIENCE" default:"wataomi-web"`

	// CasdoorEndpoint is the Casdoor base URL, without trailing slashes (they
	// are removed so that "{endpoint}/login/oauth/authorize" has one slash).
	CasdoorEndpoint     string `env:"CASDOOR_ENDPOINT"`
	CasdoorClientID     string `env:"CASDOOR_CLIENT_ID"`
	CasdoorClientSecret string `env:"CASDOOR_CLIENT_SECRET"`
	CasdoorAppName      string `env:"CASDOOR_APP_NAME" default:"wataomi-app"`
	CasdoorOrgName      string `env:"CASDOOR_ORG_NAME" default:"wataomi"`
	// CasdoorCertificate is the raw PEM text; use CasdoorCertificates for the
	// certificates Load parsed from it.
	CasdoorCertificate string `env:"CASDOOR_CERTIFICATE"`
	// CasdoorIssuer is the iss Casdoor tokens must carry; it defaults to
	// CASDOOR_ENDPOINT.
	CasdoorIssuer string `env:"CASDOOR_ISSUER"`
	// CasdoorRedirectURIs are the allowed redirect_uri values, compared
	// exactly; they default to {FRONTEND_URL}/auth/callback.
	CasdoorRedirectURIs []string `env:"CASDOOR_REDIRECT_URIS"`
	// CasdoorRoleClaim is RoleClaimTag or RoleClaimRoles (PRODUCT §3.2.1).
	CasdoorRoleClaim string `env:"CASDOOR_ROLE_CLAIM" default:"tag"`
	// CasdoorRoleSync is RoleSyncCreate or RoleSyncLogin (PRODUCT §3.2.1).
	CasdoorRoleSync string `env:"CASDOOR_ROLE_SYNC" default:"create"`
	// OAuthStateTTLSeconds (30–3600) is the lifetime of the SSO and channel
	// OAuth state; see OAuthStateTTL.
	OAuthStateTTLSeconds int `env:"OAUTH_STATE_TTL_SECONDS" default:"600"`
	// APITokenMaxTTLDays (1–3650) caps API-token lifetimes; see APITokenMaxTTL.
	APITokenMaxTTLDays int `env:"API_TOKEN_MAX_TTL_DAYS" default:"365"`
	// IdempotencyTTLHours is how long Idempotency-Key results are kept; see
	// IdempotencyTTL.
	IdempotencyTTLHours int `env:"IDEMPOTENCY_TTL_HOURS" default:"24"`
	// RefreshReuseGraceSeconds (0–300) is the window after a rotation in which
	// reusing the old refresh token answers refresh-superseded instead of
	// revoking the family; see RefreshReuseGrace.
	RefreshReuseGraceSeconds int `env:"REFRESH_REUSE_GRACE_SECONDS" default:"10"`
	// The rate limits, in requests per minute: per principal, per IP on
	// public operations, and per principal on x-rate-limit: ai operations.
	RateLimitPerMinute       int `env:"RATE_LIMIT_PER_MINUTE" default:"600"`
	RateLimitPublicPerMinute int `env:"RATE_LIMIT_PUBLIC_PER_MINUTE" default:"60"`
	RateLimitAIPerMinute     int `env:"RATE_LIMIT_AI_PER_MINUTE" default:"30"`

	FrontendURL   string `env:"FRONTEND_URL" default:"http://localhost:3000"`
	HTTPAddr      string `env:"HTTP_ADDR"`
	Port          string `env:"PORT"`
	PublicBaseURL string `env:"PUBLIC_BASE_URL" default:"http://localhost:8000"`
	// CORSOrigins defaults to FRONTEND_URL. Trailing slashes are removed
	// because browsers never send one in Origin.
	CORSOrigins []string `env:"CORS_ORIGINS"`
	// TrustedProxies accepts CIDRs; a bare address means that one host.
	TrustedProxies []netip.Prefix `env:"TRUSTED_PROXIES"`

	// ConfigFile is the config.yaml path that was consulted (it may not exist
	// when it is the default).
	ConfigFile string `env:"CONFIG_FILE"`
	// LogLevel defaults to debug when DEBUG is true, else info.
	LogLevel  string `env:"LOG_LEVEL"`
	LogFormat string `env:"LOG_FORMAT" default:"json"`

	APIMaxBodyBytes int64 `env:"API_MAX_BODY_BYTES" default:"1048576"`
	FlowMaxNodes    int   `env:"FLOW_MAX_NODES" default:"200"`
	FlowMaxEdges    int   `env:"FLOW_MAX_EDGES" default:"500"`
	FlowMaxBytes    int64 `env:"FLOW_MAX_BYTES" default:"1048576"`
	// DBMaxConns is forced to 1 on SQLite (River's SQLite driver needs one
	// connection).
	DBMaxConns int `env:"DB_MAX_CONNS" default:"20"`
	// RunMigrationsOnStart defaults to true, except in production.
	RunMigrationsOnStart   bool   `env:"RUN_MIGRATIONS_ON_START"`
	SeedOnStart            bool   `env:"SEED_ON_START" default:"true"`
	ShutdownTimeoutSeconds int    `env:"SHUTDOWN_TIMEOUT_SECONDS" default:"30"`
	MetricsAddr            string `env:"METRICS_ADDR" default:":9090"`

	// GoogleAPIKey is also read from GEMINI_API_KEY; GOOGLE_API_KEY wins when
	// a layer sets both.
	GoogleAPIKey        string `env:"GOOGLE_API_KEY"`
	OpenAIAPIKey        string `env:"OPENAI_API_KEY"`
	SupabaseURL         string `env:"SUPABASE_URL"`
	SupabaseKey         string `env:"SUPABASE_KEY"`
	N8NURL              string `env:"N8N_URL" default:"http://localhost:5678"`
	CloudinaryCloudName string `env:"CLOUDINARY_CLOUD_NAME"`
	CloudinaryAPIKey    string `env:"CLOUDINARY_API_KEY"`
	CloudinaryAPISecret string `env:"CLOUDINARY_API_SECRET"`
	QdrantURL           string `env:"QDRANT_URL"`
	QdrantAPIKey        string `env:"QDRANT_API_KEY"`

	// Flow engine and AI providers (PRODUCT §6.3, §6.5, §8).
	GeminiBaseURL                 string `env:"GEMINI_BASE_URL" default:"https://generativelanguage.googleapis.com"`
	OpenAIBaseURL                 string `env:"OPENAI_BASE_URL" default:"https://api.openai.com/v1"`
	AIDefaultModel                string `env:"AI_DEFAULT_MODEL" default:"gemini-2.5-flash"`
	AIRequestTimeoutSeconds       int    `env:"AI_REQUEST_TIMEOUT_SECONDS" default:"120"`
	WorkerConcurrency             int    `env:"WORKER_CONCURRENCY" default:"8"`
	WorkerConcurrencyMaintenance  int    `env:"WORKER_CONCURRENCY_MAINTENANCE" default:"1"`
	SchedulerEnabled              bool   `env:"SCHEDULER_ENABLED" default:"true"`
	ExecutionMaxSteps             int    `env:"EXECUTION_MAX_STEPS" default:"1000"`
	ExecutionMaxRunSeconds        int    `env:"EXECUTION_MAX_RUN_SECONDS" default:"300"`
	ExecutionMaxLifetimeSeconds   int    `env:"EXECUTION_MAX_LIFETIME_SECONDS" default:"604800"`
	NodeTimeoutSeconds            int    `env:"NODE_TIMEOUT_SECONDS" default:"60"`
	ExecutionMaxConcurrentPerUser int    `env:"EXECUTION_MAX_CONCURRENT_PER_USER" default:"10"`
	ScheduleMisfireGraceSeconds   int    `env:"SCHEDULE_MISFIRE_GRACE_SECONDS" default:"300"`
	ExecutionRetentionDays        int    `env:"EXECUTION_RETENTION_DAYS" default:"30"`
	ExecutionEventsRetentionHours int    `env:"EXECUTION_EVENTS_RETENTION_HOURS" default:"24"`
	// HTTPAllowedHosts exempts exact hosts or CIDRs from the outbound guard (test fakes).
	HTTPAllowedHosts         []string `env:"HTTP_ALLOWED_HOSTS"`
	HTTPBlockPrivateNetworks bool     `env:"HTTP_BLOCK_PRIVATE_NETWORKS" default:"true"`

	// Audit log retention (PRODUCT §5.17, §9.2): entries older than this many days are purged
	// (`wataomi audit purge`, and the maintenance.purge job).
	AuditRetentionDays int `env:"AUDIT_RETENTION_DAYS" default:"365"`
	// Secrets at rest and the endpoints integrations are verified against (PRODUCT §5.11, §8).
	// EncryptionKey is 32 bytes in base64 (AES-256-GCM). Unset outside production, a key is derived
	// from SECRET_KEY (HKDF-SHA256, info "wataomi-encryption") with a warning; production refuses to
	// start without it. EncryptionKeysPrevious (base64, comma-separated) still open the ciphertexts of
	// a rotation in progress. Use EncryptionKeys for the decoded keys.
	EncryptionKey          string   `env:"ENCRYPTION_KEY"`
	EncryptionKeysPrevious []string `env:"ENCRYPTION_KEYS_PREVIOUS"`
	AnthropicBaseURL       string   `env:"ANTHROPIC_BASE_URL" default:"https://api.anthropic.com"`
	MetaGraphBaseURL       string   `env:"META_GRAPH_BASE_URL" default:"https://graph.facebook.com"`
	MetaGraphAPIVersion    string   `env:"META_GRAPH_API_VERSION" default:"v21.0"`

	// Media uploads (PRODUCT §5.15, §8). MediaStorage is "cloudinary" or "local"; left unset it is
	// cloudinary when the three CLOUDINARY_* are set, else local outside production (production refuses
	// to start then). MediaLocalDir (relative to the working directory) holds the local driver's files.
	// The caps are the largest accepted file, in bytes. CloudinaryBaseURL is the upload and admin API
	// (a fake in tests).
	MediaStorage       string `env:"MEDIA_STORAGE"`
	MediaLocalDir      string `env:"MEDIA_LOCAL_DIR" default:"./data/media"`
	MediaMaxImageBytes int64  `env:"MEDIA_MAX_IMAGE_BYTES" default:"5242880"`
	MediaMaxFileBytes  int64  `env:"MEDIA_MAX_FILE_BYTES" default:"10485760"`
	CloudinaryBaseURL  string `env:"CLOUDINARY_BASE_URL" default:"https://api.cloudinary.com"`

	dbDialect    string
	dbDSN        string
	casdoorCerts []*x509.Certificate
	encKey       []byte
	encPrevious  [][]byte
	warnings     []string
}

// aliases maps an accepted alternative name to its canonical variable.
var aliases = map[string]string{"GEMINI_API_KEY": "GOOGLE_API_KEY"}

// LoadOptions lets callers (tests above all) replace the process environment
// and working directory.
type LoadOptions struct {
	// Env replaces os.Environ when non-nil; an empty non-nil map is an empty
	// environment.
	Env map[string]string
	// WorkDir is where .env, a relative CONFIG_FILE, relative SQLite paths and
	// ./data (secret.key) are resolved; "" means the process's directory.
	WorkDir string
}

// ValidationError lists every problem Load found.
type ValidationError struct {
	Problems []error
}

func (e *ValidationError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "invalid configuration (%d problem", len(e.Problems))
	if len(e.Problems) != 1 {
		b.WriteByte('s')
	}
	b.WriteString("):")
	for _, p := range e.Problems {
		b.WriteString("\n  ")
		b.WriteString(p.Error())
	}
	return b.String()
}

func (e *ValidationError) Unwrap() []error { return e.Problems }

// field describes one Config field.
type field struct {
	index  int
	key    string // the env name
	lower  string // the viper and yaml key
	def    string
	hasDef bool
}

var fields = buildFields()

func buildFields() []field {
	t := reflect.TypeFor[Config]()
	var out []field
	for i := range t.NumField() {
		sf := t.Field(i)
		if !sf.IsExported() {
			continue
		}
		key := sf.Tag.Get("env")
		if key == "" {
			panic("config: field " + sf.Name + " has no env tag")
		}
		def, hasDef := sf.Tag.Lookup("default")
		out = append(out, field{index: i, key: key, lower: strings.ToLower(key), def: def, hasDef: hasDef})
	}
	return out
}

func isKnownKey(key string) bool {
	if _, ok := aliases[key]; ok {
		return true
	}
	return slices.ContainsFunc(fields, func(f field) bool { return f.key == key })
}

// Load reads the configuration: defaults < config.yaml < .env (not in
// production) < environment, then validates it.
//
// When the only failures are validation problems, Load returns the config it
// built together with a *ValidationError, so `wataomi config check` can show
// both; a server must not start with it. Unreadable or malformed files return
// a nil config.
func Load(opts LoadOptions) (*Config, error) {
	env := opts.Env
	if env == nil {
		env = environ()
	}
	workDir := opts.WorkDir
	if workDir == "" {
		workDir = "."
	}
	var warnings []string

	v := viper.New()
	for _, f := range fields {
		if f.hasDef {
			v.SetDefault(f.lower, f.def)
		}
	}

	// config.yaml
	cfgFile, explicit := strings.TrimSpace(env["CONFIG_FILE"]), true
	if cfgFile == "" {
		cfgFile, explicit = DefaultConfigFile, false
	}
	fileSettings, err := readConfigFile(resolvePath(workDir, cfgFile), explicit)
	if err != nil {
		return nil, err
	}
	fileLayer := map[string]any{}
	for k, val := range fileSettings {
		key := strings.ToUpper(k)
		switch {
		case key == "CONFIG_FILE":
			warnings = append(warnings, fmt.Sprintf("%s: config_file is ignored here; set CONFIG_FILE in the environment", cfgFile))
		case !isKnownKey(key):
			warnings = append(warnings, fmt.Sprintf("%s: unknown key %q ignored", cfgFile, k))
		default:
			fileLayer[key] = val
		}
	}
	resolveAliases(fileLayer)
	fileMap := make(map[string]any, len(fileLayer))
	for k, val := range fileLayer {
		fileMap[strings.ToLower(k)] = val
	}
	if err := v.MergeConfigMap(fileMap); err != nil {
		return nil, fmt.Errorf("config: %s: %w", cfgFile, err)
	}

	// The environment and .env share viper's override layer: .env values go
	// in only where the environment has none.
	envLayer := knownValues(env)
	for k, val := range envLayer {
		v.Set(strings.ToLower(k), val)
	}
	dotenvPath := filepath.Join(workDir, ".env")
	if normalizeWord(v.GetString("app_env")) != EnvProduction {
		dot, err := readDotenv(dotenvPath)
		if err != nil {
			return nil, err
		}
		for k, val := range knownValues(dot) {
			if _, ok := envLayer[k]; ok {
				continue
			}
			if s, _ := val.(string); k == "APP_ENV" && normalizeWord(s) == EnvProduction {
				return nil, errors.New("config: .env sets APP_ENV=production, but .env is ignored in production; set APP_ENV in the environment or config.yaml")
			}
			v.Set(strings.ToLower(k), val)
		}
	} else if _, err := os.Stat(dotenvPath); err == nil {
		warnings = append(warnings, ".env is present but ignored because APP_ENV=production")
	}

	c, problems := decode(v)
	c.ConfigFile = cfgFile
	c.finish(v, workDir, &problems, &warnings)
	c.warnings = warnings
	if len(problems) > 0 {
		return c, &ValidationError{Problems: problems}
	}
	return c, nil
}

// environ returns the process environment as a map.
func environ() map[string]string {
	m := map[string]string{}
	for _, kv := range os.Environ() {
		if k, val, ok := strings.Cut(kv, "="); ok {
			m[k] = val
		}
	}
	return m
}

// knownValues keeps the configuration variables with a non-empty value and
// folds aliases into their canonical names.
func knownValues(src map[string]string) map[string]any {
	out := map[string]any{}
	for k, val := range src {
		if isKnownKey(k) && strings.TrimSpace(val) != "" {
			out[k] = val
		}
	}
	resolveAliases(out)
	return out
}

// resolveAliases applies aliases within one layer, so that a higher layer's
// alias still beats a lower layer's canonical name.
func resolveAliases(layer map[string]any) {
	for alias, canonical := range aliases {
		val, ok := layer[alias]
		if !ok {
			continue
		}
		delete(layer, alias)
		if _, has := layer[canonical]; !has && !isEmpty(val) {
			layer[canonical] = val
		}
	}
}

func resolvePath(workDir, p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(workDir, p)
}

// readConfigFile returns the file's settings with lower-case keys. A missing
// file is an error only when its path was given explicitly.
func readConfigFile(path string, explicit bool) (map[string]any, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) && !explicit {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("config: reading CONFIG_FILE: %w", err)
	}
	fv := viper.New()
	fv.SetConfigType("yaml")
	if err := fv.ReadConfig(bytes.NewReader(data)); err != nil {
		return nil, fmt.Errorf("config: parsing %s: %w", path, err)
	}
	return fv.AllSettings(), nil
}

func isEmpty(raw any) bool {
	switch x := raw.(type) {
	case nil:
		return true
	case string:
		return strings.TrimSpace(x) == ""
	}
	return false
}

// scalar turns a layer's value (a string from the environment, or any YAML
// scalar) into trimmed text.
func scalar(raw any) (string, error) {
	switch x := raw.(type) {
	case nil:
		return "", nil
	case string:
		return strings.TrimSpace(x), nil
	case []any, []string, map[string]any:
		return "", errors.New("must be a single value, not a list or map")
	default:
		return strings.TrimSpace(fmt.Sprint(x)), nil
	}
}

// list accepts a comma-separated string or a YAML sequence; items are
// trimmed and empty ones dropped.
func list(raw any) ([]string, error) {
	var parts []string
	switch x := raw.(type) {
	case nil:
		return nil, nil
	case []string:
		parts = x
	case []any:
		for _, item := range x {
			s, err := scalar(item)
			if err != nil {
				return nil, errors.New("list items must be single values")
			}
			parts = append(parts, s)
		}
	default:
		s, err := scalar(x)
		if err != nil {
			return nil, err
		}
		parts = strings.Split(s, ",")
	}
	var out []string
	for _, p := range parts {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out, nil
}

func parseBool(s string) (bool, error) {
	switch strings.ToLower(s) {
	case "1", "t", "true", "yes", "y", "on":
		return true, nil
	case "0", "f", "false", "no", "n", "off":
		return false, nil
	}
	return false, fmt.Errorf("must be true or false, got %q", s)
}

// decode copies viper's effective values into a Config.
func decode(v *viper.Viper) (*Config, []error) {
	c := &Config{}
	rv := reflect.ValueOf(c).Elem()
	var problems []error
	for _, f := range fields {
		raw := v.Get(f.lower)
		if isEmpty(raw) && f.hasDef {
			raw = f.def // an empty YAML value falls through, as an empty env var does
		}
		if err := decodeField(rv.Field(f.index), raw); err != nil {
			problems = append(problems, fmt.Errorf("%s: %w", f.key, err))
		}
	}
	return c, problems
}

var (
	typeStrings  = reflect.TypeFor[[]string]()
	typeBytes    = reflect.TypeFor[[]byte]()
	typePrefixes = reflect.TypeFor[[]netip.Prefix]()
)

func decodeField(fv reflect.Value, raw any) error {
	switch fv.Type() {
	case typeStrings:
		items, err := list(raw)
		if err != nil {
			return err
		}
		fv.Set(reflect.ValueOf(items))
		return nil
	case typePrefixes:
		items, err := list(raw)
		if err != nil {
			return err
		}
		var prefixes []netip.Prefix
		var bad []string
		for _, item := range items {
			p, err := parsePrefix(item)
			if err != nil {
				bad = append(bad, strconv.Quote(item))
				continue
			}
			prefixes = append(prefixes, p)
		}
		if len(bad) > 0 {
			return fmt.Errorf("not a CIDR or IP address: %s", strings.Join(bad, ", "))
		}
		fv.Set(reflect.ValueOf(prefixes))
		return nil
	}
	s, err := scalar(raw)
	if err != nil {
		return err
	}
	if fv.Type() == typeBytes {
		if s != "" {
			fv.SetBytes([]byte(s))
		}
		return nil
	}
	switch fv.Kind() {
	case reflect.String:
		fv.SetString(s)
	case reflect.Bool:
		if s == "" {
			return nil
		}
		b, err := parseBool(s)
		if err != nil {
			return err
		}
		fv.SetBool(b)
	case reflect.Int, reflect.Int64:
		if s == "" {
			return nil
		}
		n, err := strconv.ParseInt(s, 10, fv.Type().Bits())
		if err != nil {
			return fmt.Errorf("must be an integer, got %q", s)
		}
		fv.SetInt(n)
	default:
		panic("config: unsupported field type " + fv.Type().String())
	}
	return nil
}

func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		return p.Masked(), err
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

func normalizeWord(s string) string { return strings.ToLower(strings.TrimSpace(s)) }

// finish derives defaults, validates, and applies the production refusals.
func (c *Config) finish(v *viper.Viper, workDir string, problems *[]error, warnings *[]string) {
	bad := func(key, format string, args ...any) {
		*problems = append(*problems, fmt.Errorf("%s: "+format, append([]any{key}, args...)...))
	}
	warn := func(format string, args ...any) { *warnings = append(*warnings, fmt.Sprintf(format, args...)) }

	c.AppEnv = normalizeWord(c.AppEnv)
	c.LogLevel = normalizeWord(c.LogLevel)
	c.LogFormat = normalizeWord(c.LogFormat)
	c.CasdoorRoleClaim = normalizeWord(c.CasdoorRoleClaim)
	c.CasdoorRoleSync = normalizeWord(c.CasdoorRoleSync)
	if c.LogLevel == "" {
		c.LogLevel = "info"
		if c.Debug {
			c.LogLevel = "debug"
		}
	}
	if isEmpty(v.Get("run_migrations_on_start")) {
		c.RunMigrationsOnStart = c.AppEnv != EnvProduction
	}
	if len(c.CORSOrigins) == 0 && c.FrontendURL != "" {
		c.CORSOrigins = []string{c.FrontendURL}
	}
	for i, o := range c.CORSOrigins {
		c.CORSOrigins[i] = strings.TrimRight(o, "/")
	}
	c.CasdoorEndpoint = strings.TrimRight(c.CasdoorEndpoint, "/")
	if c.CasdoorIssuer == "" {
		c.CasdoorIssuer = c.CasdoorEndpoint
	}
	if len(c.CasdoorRedirectURIs) == 0 && isHTTPURL(c.FrontendURL) {
		c.CasdoorRedirectURIs = []string{strings.TrimRight(c.FrontendURL, "/") + "/auth/callback"}
	}
	prod := c.AppEnv == EnvProduction

	if c.APIV1Str != "/api/v1" {
		bad("API_V1_STR", "must be /api/v1, got %q", c.APIV1Str)
	}
	if c.Algorithm != "HS256" {
		bad("ALGORITHM", "only HS256 is supported, got %q", c.Algorithm)
	}
	for _, r := range []struct {
		key         string
		n, min, max int
	}{
		{"ACCESS_TOKEN_EXPIRE_MINUTES", c.AccessTokenExpireMinutes, 5, 1440},
		{"REFRESH_TOKEN_EXPIRE_DAYS", c.RefreshTokenExpireDays, 1, 90},
		{"OAUTH_STATE_TTL_SECONDS", c.OAuthStateTTLSeconds, 30, 3600},
		{"API_TOKEN_MAX_TTL_DAYS", c.APITokenMaxTTLDays, 1, 3650},
		{"REFRESH_REUSE_GRACE_SECONDS", c.RefreshReuseGraceSeconds, 0, 300},
	} {
		if r.n < r.min || r.n > r.max {
			bad(r.key, "must be between %d and %d, got %d", r.min, r.max, r.n)
		}
	}
	if !slices.Contains([]string{EnvDevelopment, EnvTest, EnvProduction}, c.AppEnv) {
		bad("APP_ENV", "must be development, test or production, got %q", c.AppEnv)
	}
	if !slices.Contains([]string{"debug", "info", "warn", "error"}, c.LogLevel) {
		bad("LOG_LEVEL", "must be debug, info, warn or error, got %q", c.LogLevel)
	}
	if !slices.Contains([]string{"json", "text"}, c.LogFormat) {
		bad("LOG_FORMAT", "must be json or text, got %q", c.LogFormat)
	}
	for _, p := range []struct {
		key string
		n   int64
	}{
		{"API_MAX_BODY_BYTES", c.APIMaxBodyBytes},
		{"FLOW_MAX_NODES", int64(c.FlowMaxNodes)},
		{"FLOW_MAX_EDGES", int64(c.FlowMaxEdges)},
		{"FLOW_MAX_BYTES", c.FlowMaxBytes},
		{"DB_MAX_CONNS", int64(c.DBMaxConns)},
		{"SHUTDOWN_TIMEOUT_SECONDS", int64(c.ShutdownTimeoutSeconds)},
		{"IDEMPOTENCY_TTL_HOURS", int64(c.IdempotencyTTLHours)},
		{"RATE_LIMIT_PER_MINUTE", int64(c.RateLimitPerMinute)},
		{"RATE_LIMIT_PUBLIC_PER_MINUTE", int64(c.RateLimitPublicPerMinute)},
		{"RATE_LIMIT_AI_PER_MINUTE", int64(c.RateLimitAIPerMinute)},
		{"AI_REQUEST_TIMEOUT_SECONDS", int64(c.AIRequestTimeoutSeconds)},
		{"WORKER_CONCURRENCY", int64(c.WorkerConcurrency)},
		{"WORKER_CONCURRENCY_MAINTENANCE", int64(c.WorkerConcurrencyMaintenance)},
		{"EXECUTION_MAX_STEPS", int64(c.ExecutionMaxSteps)},
		{"EXECUTION_MAX_RUN_SECONDS", int64(c.ExecutionMaxRunSeconds)},
		{"EXECUTION_MAX_LIFETIME_SECONDS", int64(c.ExecutionMaxLifetimeSeconds)},
		{"NODE_TIMEOUT_SECONDS", int64(c.NodeTimeoutSeconds)},
		{"EXECUTION_MAX_CONCURRENT_PER_USER", int64(c.ExecutionMaxConcurrentPerUser)},
		{"SCHEDULE_MISFIRE_GRACE_SECONDS", int64(c.ScheduleMisfireGraceSeconds)},
		{"EXECUTION_RETENTION_DAYS", int64(c.ExecutionRetentionDays)},
		{"EXECUTION_EVENTS_RETENTION_HOURS", int64(c.ExecutionEventsRetentionHours)},
		{"AUDIT_RETENTION_DAYS", int64(c.AuditRetentionDays)},
	} {
		if p.n <= 0 {
			bad(p.key, "must be positive, got %d", p.n)
		}
	}
	if c.Port != "" {
		if n, err := strconv.Atoi(c.Port); err != nil || n < 0 || n > 65535 {
			bad("PORT", "must be a port number, got %q", c.Port)
		}
	}
	for _, a := range []struct{ key, val string }{{"HTTP_ADDR", c.HTTPAddr}, {"METRICS_ADDR", c.MetricsAddr}} {
		if a.val == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(a.val); err != nil {
			bad(a.key, "must be host:port or :port, got %q", a.val)
		}
	}
	for _, u := range []struct {
		key, val string
		required bool
	}{
		{"FRONTEND_URL", c.FrontendURL, true},
		{"PUBLIC_BASE_URL", c.PublicBaseURL, true},
		{"N8N_URL", c.N8NURL, false},
		{"QDRANT_URL", c.QdrantURL, false},
		{"GEMINI_BASE_URL", c.GeminiBaseURL, true},
		{"OPENAI_BASE_URL", c.OpenAIBaseURL, true},
		{"ANTHROPIC_BASE_URL", c.AnthropicBaseURL, true},
		{"META_GRAPH_BASE_URL", c.MetaGraphBaseURL, true},
	} {
		if u.val == "" && !u.required {
			continue
		}
		if !isHTTPURL(u.val) {
			bad(u.key, "must be an absolute http(s) URL, got %q", redactURL(u.val, true))
		}
	}
	for _, o := range c.CORSOrigins {
		if o == "*" {
			if prod {
				bad("CORS_ORIGINS", "* is refused in production; list the allowed origins")
			}
			continue
		}
		if !isOrigin(o) {
			bad("CORS_ORIGINS", "%q is not an origin (scheme://host[:port], no path)", redactURL(o, true))
		}
	}
	c.checkCasdoor(prod, bad, warn)
	if prod && !c.HTTPBlockPrivateNetworks {
		bad("HTTP_BLOCK_PRIVATE_NETWORKS", "false is refused in production")
	}
	for _, h := range c.HTTPAllowedHosts {
		if netguard.CheckAllowedHost(h) != nil {
			bad("HTTP_ALLOWED_HOSTS", "%q is neither a host name, an address nor a CIDR", h)
		}
	}
	if c.RedisURL != "" {
		scheme, _, _ := strings.Cut(c.RedisURL, "://")
		// The URL itself is never echoed: it usually carries a password.
		if !slices.Contains([]string{"redis", "rediss", "unix"}, strings.ToLower(scheme)) || !strings.Contains(c.RedisURL, "://") {
			bad("REDIS_URL", "must be a redis://, rediss:// or unix:// URL")
		}
	} else if prod {
		bad("REDIS_URL", "is required in production (revocation, rate limits and events must be shared by all replicas)")
	}

	dialect, dsn, err := parseDatabaseURL(c.DatabaseURL, workDir)
	if err != nil {
		*problems = append(*problems, err)
	} else {
		c.dbDialect, c.dbDSN = dialect, dsn
		if dialect == DialectSQLite {
			if prod {
				bad("DATABASE_URL", "production requires PostgreSQL; SQLite (also the default when unset) is refused")
			}
			c.DBMaxConns = 1
		}
	}

	// The signing key.
	if weak := secretKeyProblem(c.SecretKey); weak != "" {
		if prod {
			bad("SECRET_KEY", "%s", weak)
		} else {
			warn("SECRET_KEY %s; production would refuse it", weak)
		}
	} else if len(c.SecretKey) == 0 && (c.AppEnv == EnvDevelopment || c.AppEnv == EnvTest) {
		key, note, err := loadOrCreateSecretKey(filepath.Join(workDir, "data"))
		if err != nil {
			bad("SECRET_KEY", "unset, and the development key could not be loaded: %v", err)
		} else {
			c.SecretKey = key
			if note != "" {
				warn("%s", note)
			}
		}
	} else if len(c.SecretKey) == 0 && prod {
		bad("SECRET_KEY", "is required in production (at least %d bytes)", MinSecretKeyBytes)
	}

	c.finishEncryption(prod, bad, warn)

	if prod && c.Debug {
		warn("DEBUG=true in production: debug logging is on (SQL parameters, tokens and secrets are still never logged)")
	}
	if prod && isHTTPURL(c.PublicBaseURL) && !strings.HasPrefix(strings.ToLower(c.PublicBaseURL), "https://") {
		bad("PUBLIC_BASE_URL", "must be https in production (webhook, OAuth and media URLs are built from it)")
	}
	if c.SupabaseURL != "" || c.SupabaseKey != "" {
		warn("SUPABASE_URL/SUPABASE_KEY are reserved, unused: the values are ignored")
	}
	c.finishMedia(workDir, prod, bad)
}

// finishMedia picks the media driver and checks the upload settings (PRODUCT §5.15, §8).
func (c *Config) finishMedia(workDir string, prod bool, bad func(key, format string, args ...any)) {
	c.MediaStorage = normalizeWord(c.MediaStorage)
	cloudinarySet := c.CloudinaryCloudName != "" && c.CloudinaryAPIKey != "" && c.CloudinaryAPISecret != ""
	switch c.MediaStorage {
	case "":
		switch {
		case cloudinarySet:
			c.MediaStorage = "cloudinary"
		case prod:
			bad("MEDIA_STORAGE", "is unset and CLOUDINARY_CLOUD_NAME, CLOUDINARY_API_KEY and CLOUDINARY_API_SECRET are not all set; production needs one of them")
		default:
			c.MediaStorage = "local"
		}
	case "cloudinary":
		if !cloudinarySet {
			bad("MEDIA_STORAGE", "cloudinary needs CLOUDINARY_CLOUD_NAME, CLOUDINARY_API_KEY and CLOUDINARY_API_SECRET")
		}
	case "local":
	default:
		bad("MEDIA_STORAGE", "must be cloudinary or local, got %q", c.MediaStorage)
	}
	if strings.TrimSpace(c.MediaLocalDir) == "" {
		bad("MEDIA_LOCAL_DIR", "must not be empty")
	} else {
		c.MediaLocalDir = filepath.Clean(resolvePath(workDir, c.MediaLocalDir))
	}
	if c.MediaMaxImageBytes < 1 {
		bad("MEDIA_MAX_IMAGE_BYTES", "must be at least 1, got %d", c.MediaMaxImageBytes)
	}
	if c.MediaMaxFileBytes < 1 {
		bad("MEDIA_MAX_FILE_BYTES", "must be at least 1, got %d", c.MediaMaxFileBytes)
	}
	c.CloudinaryBaseURL = strings.TrimRight(c.CloudinaryBaseURL, "/")
	if !isHTTPURL(c.CloudinaryBaseURL) {
		bad("CLOUDINARY_BASE_URL", "must be an absolute http(s) URL, got %q", redactURL(c.CloudinaryBaseURL, true))
	}
}

// secretKeyProblem explains why a set key is unacceptable in production, or
// returns "".
func secretKeyProblem(key []byte) string {
	if len(key) == 0 {
		return ""
	}
	for _, ex := range knownExampleSecrets {
		if strings.EqualFold(string(key), ex) {
			return "is a published example value"
		}
	}
	if len(key) < MinSecretKeyBytes {
		return fmt.Sprintf("is %d bytes; at least %d are required", len(key), MinSecretKeyBytes)
	}
	return ""
}

func isHTTPURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

func isOrigin(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" &&
		u.User == nil && u.Path == "" && u.RawQuery == "" && u.Fragment == "" && !u.ForceQuery
}

// IsProduction reports whether APP_ENV is production.
func (c *Config) IsProduction() bool { return c.AppEnv == EnvProduction }

// ListenAddr is HTTP_ADDR, else ":"+PORT, else ":8000".
func (c *Config) ListenAddr() string {
	switch {
	case c.HTTPAddr != "":
		return c.HTTPAddr
	case c.Port != "":
		return ":" + c.Port
	}
	return DefaultListenAddr
}

// AccessTokenTTL is ACCESS_TOKEN_EXPIRE_MINUTES as a duration.
func (c *Config) AccessTokenTTL() time.Duration {
	return time.Duration(c.AccessTokenExpireMinutes) * time.Minute
}

// RefreshTokenTTL is REFRESH_TOKEN_EXPIRE_DAYS as a duration.
func (c *Config) RefreshTokenTTL() time.Duration {
	return time.Duration(c.RefreshTokenExpireDays) * 24 * time.Hour
}

// OAuthStateTTL is OAUTH_STATE_TTL_SECONDS as a duration.
func (c *Config) OAuthStateTTL() time.Duration {
	return time.Duration(c.OAuthStateTTLSeconds) * time.Second
}

// RefreshReuseGrace is REFRESH_REUSE_GRACE_SECONDS as a duration.
func (c *Config) RefreshReuseGrace() time.Duration {
	return time.Duration(c.RefreshReuseGraceSeconds) * time.Second
}

// APITokenMaxTTL is API_TOKEN_MAX_TTL_DAYS as a duration.
func (c *Config) APITokenMaxTTL() time.Duration {
	return time.Duration(c.APITokenMaxTTLDays) * 24 * time.Hour
}

// AuditRetention is how long audit entries are kept (AUDIT_RETENTION_DAYS).
func (c *Config) AuditRetention() time.Duration {
	return time.Duration(c.AuditRetentionDays) * 24 * time.Hour
}

// IdempotencyTTL is IDEMPOTENCY_TTL_HOURS as a duration.
func (c *Config) IdempotencyTTL() time.Duration {
	return time.Duration(c.IdempotencyTTLHours) * time.Hour
}

// ShutdownTimeout is SHUTDOWN_TIMEOUT_SECONDS as a duration.
func (c *Config) ShutdownTimeout() time.Duration {
	return time.Duration(c.ShutdownTimeoutSeconds) * time.Second
}

// DatabaseDialect is DialectPostgres or DialectSQLite.
func (c *Config) DatabaseDialect() string { return c.dbDialect }

// DatabaseDSN is a pgx connection URL (driver suffix removed) for PostgreSQL,
// or the database file path for SQLite.
func (c *Config) DatabaseDSN() string { return c.dbDSN }

// Warnings are the non-fatal findings of Load, for the server to log.
func (c *Config) Warnings() []string { return slices.Clone(c.warnings) }

// AIRequestTimeout is AI_REQUEST_TIMEOUT_SECONDS.
func (c *Config) AIRequestTimeout() time.Duration {
	return time.Duration(c.AIRequestTimeoutSeconds) * time.Second
}

// NodeTimeout is NODE_TIMEOUT_SECONDS.
func (c *Config) NodeTimeout() time.Duration {
	return time.Duration(c.NodeTimeoutSeconds) * time.Second
}
