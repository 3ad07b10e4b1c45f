package store

import (
	"context"

	"gorm.io/gorm"
)

// SaveTeam writes a team and refreshes its search text. An existing team is updated, never
// re-inserted: GORM's Save inserts when its UPDATE matches no row, which would bring back a team
// deleted meanwhile; here that is ErrNotFound.
func SaveTeam(ctx context.Context, db *gorm.DB, t *Team) error {
	t.SearchText = SearchText(t.Name)
	if t.ID == 0 {
		return Classify(db.WithContext(ctx).Create(t).Error)
	}
	res := db.WithContext(ctx).Model(t).Select("name", "description", "search_text", "updated_at").Updates(t)
	if res.Error != nil {
		return Classify(res.Error)
	}
	if res.RowsAffected == 0 {
		return ErrNotFound
	}
	return nil
}

// GetTeam reads one team.
func GetTeam(ctx context.Context, db *gorm.DB, id int64) (*Team, error) {
	var t Team
	if err := db.WithContext(ctx).Take(&t, id).Error; err != nil {
		return nil, Classify(err)
	}
	return &t, nil
}

// GetTeamForUpdate reads one team inside a transaction and, on PostgreSQL, locks its row until the
// transaction ends, so writers of one team (rename, member list, delete) run one after another: a
// member list cannot interleave with another one or with the team's deletion, and a partial update
// cannot overwrite a concurrent one with the values it read. Call it first in the transaction.
func GetTeamForUpdate(ctx context.Context, tx *gorm.DB, id int64) (*Team, error) {
	var t Team
	if err := forUpdate(tx.WithContext(ctx)).Where("id = ?", id).Take(&t).Error; err != nil {
		return nil, Classify(err)
	}
	return &t, nil
}

// GetTeamByName finds a team by its exact name.
func GetTeamByName(ctx context.Context, db *gorm.DB, name string) (*Team, error) {
	var t Team
	if err := db.WithContext(ctx).Where("name = ?", name).Take(&t).Error; err != nil {
		return nil, Classify(err)
	}
	return &t, nil
}

// ListTeams returns one page of teams by name, with the total.
func ListTeams(ctx context.Context, db *gorm.DB, search string, desc bool, page, size int) ([]Team, int64, error) {
	q := db.WithContext(ctx).Model(&Team{})
	if search != "" {
		q = q.Where(SearchWhere, LikeContains(search))
	}
	var total int64
	if err := q.Count(&total).Error; err != nil {
		return nil, 0, Classify(err)
	}
	order := "name ASC, id ASC"
	if desc {
		order = "name DESC, id DESC"
	}
	var rows []Team
	err := paginate(q.Order(order), page, size).Find(&rows).Error
	return rows, total, Classify(err)
}

// MemberCounts counts the members of each team in one query.
func MemberCounts(ctx context.Context, db *gorm.DB, teamIDs []int64) (map[int64]int, error) {
	out := make(map[int64]int, len(teamIDs))
	if len(teamIDs) == 0 {
		return out, nil
	}
	var rows []struct {
		TeamID int64
		N      int
	}
	err := db.WithContext(ctx).Model(&TeamMember{}).Select("team_id, count(*) AS n").
		Where("team_id IN ?", teamIDs).Group("team_id").Scan(&rows).Error
	for _, r := range rows {
		out[r.TeamID] = r.N
	}
	return out, Classify(err)
}

// TeamMembers lists a team's users by name.
func TeamMembers(ctx context.Context, db *gorm.DB, teamID int64) ([]User, error) {
	var users []User
	err := db.WithContext(ctx).Joins("JOIN team_members tm ON tm.user_id = users.id AND tm.team_id = ?", teamID).
		Order("users.name, users.id").Find(&users).Error
	return users, Classify(err)
}

// MissingUsers returns the positions in ids of users that do not exist (one query).
func MissingUsers(ctx context.Context, db *gorm.DB, ids []int64) ([]int, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	var found []int64
	if err := db.WithContext(ctx).Model(&User{}).Where("id IN ?", ids).Pluck("id", &found).Error; err != nil {
		return nil, Classify(err)
	}
	have := make(map[int64]bool, len(found))
	for _, id := range found {
		have[id] = true
	}
	var missing []int
	for i, id := range ids {
		if !have[id] {
			missing = append(missing, i)
		}
	}
	return missing, nil
}

// SetTeamMembers replaces a team's members with set-based statements; call it in a transaction.
func SetTeamMembers(ctx context.Context, tx *gorm.DB, teamID int64, userIDs []int64) error {
	if err := tx.WithContext(ctx).Where("team_id = ?", teamID).Delete(&TeamMember{}).Error; err != nil {
		return Classify(err)
	}
	if len(userIDs) == 0 {
		return nil
	}
	now := Now()
	rows := make([]TeamMember, len(userIDs))
	for i, id := range userIDs {
		rows[i] = TeamMember{TeamID: teamID, UserID: id, CreatedAt: now}
	}
	return Classify(tx.WithContext(ctx).CreateInBatches(rows, 500).Error)
}

// DeleteTeam deletes a team; flows shared with it become private first (PRODUCT §3.5), and the
// memberships go with it (ON DELETE CASCADE). Call it in a transaction.
func DeleteTeam(ctx context.Context, tx *gorm.DB, teamID int64) error {
	err := tx.WithContext(ctx).Model(&Flow{}).Where("visibility = ? AND team_id = ?", "team", teamID).
		Updates(map[string]any{"visibility": "private", "team_id": nil, "revision": gorm.Expr("revision + 1"), "updated_at": Now()}).Error
	if err != nil {
		return Classify(err)
	}
	res := tx.WithContext(ctx).Delete(&Team{}, teamID)
	if res.Error != nil {
		return Classify(res.Error)
	}
	if res.RowsAffected == 0 {
		return ErrNotFound
	}
	return nil
}
