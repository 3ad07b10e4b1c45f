package store_test

import (
	"slices"
	"testing"

	"github.com/wataomi/wataomi/store"
	"github.com/wataomi/wataomi/store/storetest"
)

func TestSearchText(t *testing.T) {
	for _, tc := range []struct {
		in   []string
		want string
	}{
		{[]string{"Hello", "", "  ", "World"}, "hello world"},
		{[]string{"ÇA", "C\u0327a"}, "ça ça"}, // precomposed and decomposed both become U+00E7
		{[]string{" Straße "}, "straße"},
		{nil, ""},
	} {
		if got := store.SearchText(tc.in...); got != tc.want {
			t.Errorf("SearchText(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestLikeContains(t *testing.T) {
	for in, want := range map[string]string{
		"abc":     `%abc%`,
		"100%":    `%100\%%`,
		"a_b":     `%a\_b%`,
		`back\s`:  `%back\\s%`,
		"ÇA":      "%ça%",
		"C\u0327": "%ç%",
		"":        "%%",
	} {
		if got := store.LikeContains(in); got != want {
			t.Errorf("LikeContains(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSearchRows(t *testing.T) {
	storetest.ForEachDialect(t, func(t *testing.T, db *store.DB) {
		names := []string{
			"100% sure",
			"1000 sure",
			"snake_case",
			"snakeXcase",
			`back\slash`,
			"Ça va",              // precomposed Ç
			"C\u0327A DÉCOMPOSÉ", // decomposed Ç
			"Plain",
		}
		for _, n := range names {
			mustCreate(t, db.DB, &store.Team{Name: n, SearchText: store.SearchText(n, "team")})
		}
		search := func(q string) []string {
			var got []string
			if err := db.Model(&store.Team{}).Where(store.SearchWhere, store.LikeContains(q)).
				Order("id").Pluck("name", &got).Error; err != nil {
				t.Fatalf("search %q: %v", q, err)
			}
			return got
		}
		for q, want := range map[string][]string{
			"%":         {"100% sure"},
			"0%":        {"100% sure"},
			"_":         {"snake_case"},
			"e_c":       {"snake_case"},
			`\`:         {`back\slash`},
			`k\s`:       {`back\slash`},
			"Ça":        {"Ça va", "C\u0327A DÉCOMPOSÉ"},
			"ÇA":        {"Ça va", "C\u0327A DÉCOMPOSÉ"},
			"c\u0327a":  {"Ça va", "C\u0327A DÉCOMPOSÉ"},
			"décomposé": {"C\u0327A DÉCOMPOSÉ"},
			"PLAIN":     {"Plain"},
			"sure":      {"100% sure", "1000 sure"},
			"nothing":   nil,
		} {
			if got := search(q); !slices.Equal(got, want) {
				t.Errorf("search %q = %q, want %q", q, got, want)
			}
		}
		if n := len(search("team")); n != len(names) {
			t.Errorf("search team matched %d rows, want %d", n, len(names))
		}
	})
}
