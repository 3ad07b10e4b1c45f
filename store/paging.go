package store

import (
	"strings"

	"gorm.io/gorm"
)

// The paging and sorting of every page list (PRODUCT §2.3), in one place.

// orderBy turns signed sort keys into an ORDER BY with a unique id tiebreaker. Keys come from the
// contract's enum; an unknown key is skipped rather than interpolated.
func orderBy(keys []string, columns map[string]string, def, idCol string) string {
	if len(keys) == 0 {
		keys = []string{def}
	}
	parts := make([]string, 0, len(keys)+1)
	tie := idCol + " DESC"
	for i, k := range keys {
		dir := "ASC"
		if strings.HasPrefix(k, "-") {
			dir, k = "DESC", k[1:]
		}
		col, ok := columns[k]
		if !ok {
			continue
		}
		if i == 0 {
			tie = idCol + " " + dir
		}
		parts = append(parts, col+" "+dir)
	}
	return strings.Join(append(parts, tie), ", ")
}

// paginate applies a 1-based page of the given size; size <= 0 means no limit.
func paginate(q *gorm.DB, page, size int) *gorm.DB {
	if size <= 0 {
		return q
	}
	return q.Limit(size).Offset((max(page, 1) - 1) * size)
}
