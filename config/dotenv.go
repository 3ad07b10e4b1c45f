package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
)

// readDotenv parses the .env file at path; a missing file is an empty one.
func readDotenv(path string) (map[string]string, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("config: reading .env: %w", err)
	}
	m, err := parseDotenv(string(data))
	if err != nil {
		return nil, fmt.Errorf("config: .env: %w", err)
	}
	return m, nil
}

// parseDotenv reads KEY=VALUE lines. It supports blank lines, # comments
// (whole-line, or after whitespace in an unquoted value), an optional
// "export " prefix, 'single' quotes (literal) and "double" quotes (with \n,
// \r, \t, \", \\ escapes). Quoted values may span lines, so a PEM
// certificate fits. Later assignments win. There is no ${VAR} expansion.
func parseDotenv(src string) (map[string]string, error) {
	src = strings.TrimPrefix(src, "\uFEFF")
	src = strings.ReplaceAll(src, "\r\n", "\n")
	out := map[string]string{}
	p := &dotenvParser{src: src, line: 1}
	for {
		p.skipBlank()
		if p.eof() {
			return out, nil
		}
		if p.peek() == '#' {
			p.skipLine()
			continue
		}
		key, val, err := p.assignment()
		if err != nil {
			return nil, err
		}
		out[key] = val
	}
}

type dotenvParser struct {
	src  string
	pos  int
	line int
}

func (p *dotenvParser) eof() bool  { return p.pos >= len(p.src) }
func (p *dotenvParser) peek() byte { return p.src[p.pos] }

func (p *dotenvParser) next() byte {
	c := p.src[p.pos]
	p.pos++
	if c == '\n' {
		p.line++
	}
	return c
}

func (p *dotenvParser) skipBlank() {
	for !p.eof() && strings.IndexByte(" \t\n\r", p.peek()) >= 0 {
		p.next()
	}
}

func (p *dotenvParser) skipSpaces() {
	for !p.eof() && (p.peek() == ' ' || p.peek() == '\t') {
		p.next()
	}
}

// restOfLine consumes up to and including the next newline.
func (p *dotenvParser) restOfLine() string {
	start := p.pos
	for !p.eof() && p.peek() != '\n' {
		p.next()
	}
	s := p.src[start:p.pos]
	if !p.eof() {
		p.next()
	}
	return s
}

func (p *dotenvParser) skipLine() { p.restOfLine() }

func (p *dotenvParser) errorf(line int, format string, args ...any) error {
	return fmt.Errorf("line %d: "+format, append([]any{line}, args...)...)
}

func (p *dotenvParser) assignment() (string, string, error) {
	line := p.line
	start := p.pos
	for !p.eof() && p.peek() != '=' && p.peek() != '\n' {
		p.next()
	}
	if p.eof() || p.peek() != '=' {
		return "", "", p.errorf(line, "expected KEY=VALUE")
	}
	key := strings.TrimSpace(p.src[start:p.pos])
	if k, ok := strings.CutPrefix(key, "export"); ok && k != "" && (k[0] == ' ' || k[0] == '\t') {
		key = strings.TrimSpace(k)
	}
	if !validEnvName(key) {
		// The key is not echoed in case a value was pasted without its key.
		return "", "", p.errorf(line, "invalid variable name")
	}
	p.next() // '='
	p.skipSpaces()
	if p.eof() {
		return key, "", nil
	}
	switch q := p.peek(); q {
	case '"', '\'':
		p.next()
		var b strings.Builder
		for {
			if p.eof() {
				return "", "", p.errorf(line, "unterminated %c quote in %s", q, key)
			}
			c := p.next()
			if c == q {
				break
			}
			if c == '\\' && q == '"' && !p.eof() {
				e := p.next()
				switch e {
				case 'n':
					b.WriteByte('\n')
				case 'r':
					b.WriteByte('\r')
				case 't':
					b.WriteByte('\t')
				case '"', '\\', '$':
					b.WriteByte(e)
				default:
					b.WriteByte('\\')
					b.WriteByte(e)
				}
				continue
			}
			b.WriteByte(c)
		}
		trailing := strings.TrimSpace(p.restOfLine())
		if trailing != "" && trailing[0] != '#' {
			return "", "", p.errorf(line, "unexpected text after the closing quote of %s", key)
		}
		return key, b.String(), nil
	default:
		val := p.restOfLine()
		for i := 1; i < len(val); i++ {
			if val[i] == '#' && (val[i-1] == ' ' || val[i-1] == '\t') {
				val = val[:i]
				break
			}
		}
		return key, strings.TrimSpace(val), nil
	}
}

func validEnvName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '_', c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z':
		case c >= '0' && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}
