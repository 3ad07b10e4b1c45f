package config

import (
	"fmt"
	"io"
	"net/netip"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// KV is one effective setting, by env name, as printed by `config check`.
type KV struct {
	Key   string
	Value string
}

// Redacted returns every setting by env name, sorted, with secrets replaced:
// keys, secrets, certificates, passwords and tokens show only "(set)" or
// "(unset)", and URLs (any value holding "://", list items one by one) have
// their passwords replaced by xxxxx. The rules go by name and shape, so a
// field added later is redacted without anyone remembering to.
func (c *Config) Redacted() []KV {
	rv := reflect.ValueOf(c).Elem()
	out := make([]KV, 0, len(fields))
	for _, f := range fields {
		fv := rv.Field(f.index)
		val := format(fv)
		switch {
		case fv.Type() == typeBytes, isSecretKey(f.key):
			val = setOrUnset(val)
		case fv.Type() == typeStrings:
			// Item by item, so that one URL's '@' cannot hide another's password.
			items := slices.Clone(fv.Interface().([]string))
			for i, item := range items {
				items[i] = redactValue(f.key, item)
			}
			val = strings.Join(items, ",")
		default:
			val = redactValue(f.key, val)
		}
		out = append(out, KV{Key: f.key, Value: val})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

// WriteCheck prints Redacted as sorted KEY=value lines.
func (c *Config) WriteCheck(w io.Writer) error {
	esc := strings.NewReplacer("\n", `\n`, "\r", `\r`)
	for _, kv := range c.Redacted() {
		if _, err := fmt.Fprintf(w, "%s=%s\n", kv.Key, esc.Replace(kv.Value)); err != nil {
			return err
		}
	}
	return nil
}

func format(fv reflect.Value) string {
	switch v := fv.Interface().(type) {
	case []string:
		return strings.Join(v, ",")
	case []netip.Prefix:
		parts := make([]string, len(v))
		for i, p := range v {
			parts[i] = p.String()
		}
		return strings.Join(parts, ",")
	case []byte:
		return string(v)
	case string:
		return v
	case bool:
		return strconv.FormatBool(v)
	case int:
		return strconv.Itoa(v)
	case int64:
		return strconv.FormatInt(v, 10)
	}
	panic("config: unsupported field type " + fv.Type().String())
}

var secretSuffixes = []string{"_KEY", "_KEYS", "_KEYS_PREVIOUS", "_SECRET", "_CERTIFICATE", "_PASSWORD", "_TOKEN"}

func isSecretKey(key string) bool {
	for _, s := range secretSuffixes {
		if strings.HasSuffix(key, s) {
			return true
		}
	}
	return false
}

func setOrUnset(v string) string {
	if v == "" {
		return "(unset)"
	}
	return "(set)"
}

func redactValue(key, val string) string {
	switch {
	case isSecretKey(key):
		return setOrUnset(val)
	case strings.HasSuffix(key, "_URL"), strings.HasSuffix(key, "_ENDPOINT"), strings.Contains(val, "://"):
		// A database user name is not a secret; elsewhere a lone user-info
		// part is usually a token (and go-redis reads it as a password). Any
		// URL-shaped value is treated alike, so a value derived from a URL
		// (CASDOOR_ISSUER from CASDOOR_ENDPOINT) or a list of them
		// (CASDOOR_REDIRECT_URIS) cannot leak one.
		return redactURL(val, key != "DATABASE_URL")
	}
	return val
}

var passwordParam = regexp.MustCompile(`(?i)\b((?:ssl)?password\s*=\s*)('[^']*'|[^\s&]*)`)

// redactURL replaces the password in a URL's user info, and any password=
// parameter, by xxxxx. The user info is taken to end at the last '@', so an
// unescaped '@', '/' or '#' in a password over-redacts rather than leaks.
func redactURL(raw string, userOnlyIsSecret bool) string {
	out := raw
	if i := strings.Index(out, "://"); i >= 0 {
		rest := out[i+3:]
		if at := strings.LastIndex(rest, "@"); at >= 0 {
			userinfo := rest[:at]
			if c := strings.Index(userinfo, ":"); c >= 0 {
				userinfo = userinfo[:c+1] + "xxxxx"
			} else if userOnlyIsSecret && userinfo != "" {
				userinfo = "xxxxx"
			}
			out = out[:i+3] + userinfo + rest[at:]
		}
	}
	return passwordParam.ReplaceAllString(out, "${1}xxxxx")
}
