package store

import (
	"strings"

	"golang.org/x/text/unicode/norm"
)

// SearchWhere is the search condition on a table's search_text column (PRODUCT
// §2.3), with [LikeContains] as its argument. Qualify the column yourself in
// joins: "flows.search_text LIKE ? ESCAPE '\'". Never ILIKE or lower(): they
// differ between the dialects.
const SearchWhere = `search_text LIKE ? ESCAPE '\'`

// fold is the normalisation shared by the stored text and the query, so that
// both sides compare equal whatever form (precomposed, decomposed, upper
// case) the user typed. NFC runs again after lower-casing because a few
// lower-case mappings are not composed.
func fold(s string) string {
	return norm.NFC.String(strings.ToLower(norm.NFC.String(s)))
}

// SearchText is the value of a search_text column: the non-blank fields joined
// by a space, NFC-normalised and lower-cased. Write it on every insert and
// update of the fields it covers.
func SearchText(fields ...string) string {
	parts := make([]string, 0, len(fields))
	for _, f := range fields {
		if f = strings.TrimSpace(f); f != "" {
			parts = append(parts, f)
		}
	}
	return fold(strings.Join(parts, " "))
}

var likeEscaper = strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)

// LikeContains turns a search query into the argument of [SearchWhere]: folded
// like [SearchText], with \, % and _ escaped by a backslash, inside %…%.
func LikeContains(q string) string {
	return "%" + likeEscaper.Replace(fold(q)) + "%"
}
