package store

import (
	"context"
	"time"

	"gorm.io/gorm"
)

// Integration is an organisation-wide provider credential (PRODUCT §5.11), unique per (provider,
// name), mirroring migrations/*/00004_integrations.sql. SecretsCiphertext is a secretbox ciphertext
// of the JSON object of secrets, bound to its row (package integration seals and opens it); this
// package never sees a plaintext secret. SecretsMeta holds the non-secret hints. At most one
// integration per provider has IsDefault.
type Integration struct {
	ID                int64      `gorm:"column:id;primaryKey"`
	Provider          string     `gorm:"column:provider;not null"`
	Name              string     `gorm:"column:name;not null"`
	IsActive          bool       `gorm:"column:is_active;not null"` // no default tag: GORM would turn false into true
	IsDefault         bool       `gorm:"column:is_default;not null"`
	Settings          JSON       `gorm:"column:settings;not null"`     // must be set ({} when empty)
	SecretsCiphertext *string    `gorm:"column:secrets_ciphertext"`    // nil: no secret stored
	SecretsMeta       JSON       `gorm:"column:secrets_meta;not null"` // must be set ({} when empty)
	VerifyToken       *string    `gorm:"column:verify_token"`
	EndpointKey       *string    `gorm:"column:endpoint_key"` // unique; the inbound webhook key of Meta apps
	Status            string     `gorm:"column:status;not null;default:unverified"`
	LastVerifiedAt    *time.Time `gorm:"column:last_verified_at"`
	CreatedBy         *int64     `gorm:"column:created_by"` // SET NULL when the user is deleted
	CreatedAt         time.Time  `gorm:"column:created_at;not null"`
	UpdatedAt         time.Time  `gorm:"column:updated_at;not null"`
}

func (Integration) TableName() string { return "integrations" }

// integrationColumns are the columns an update writes (never id, provider, created_*).
var integrationColumns = []string{"name", "is_active", "is_default", "settings", "secrets_ciphertext", "secrets_meta",
	"verify_token", "endpoint_key", "status", "last_verified_at", "updated_at"}

// SaveIntegration inserts a new integration or updates an existing one (never re-inserting a row
// deleted meanwhile: that is ErrNotFound). A duplicate (provider, name) is ErrConflict.
func SaveIntegration(ctx context.Context, db *gorm.DB, in *Integration) error {
	if in.Settings == nil {
		in.Settings = JSON(`{}`)
	}
	if in.SecretsMeta == nil {
		in.SecretsMeta = JSON(`{}`)
	}
	if in.ID == 0 {
		return Classify(db.WithContext(ctx).Create(in).Error)
	}
	res := db.WithContext(ctx).Model(in).Select(integrationColumns).Updates(in)
	if res.Error != nil {
		return Classify(res.Error)
	}
	if res.RowsAffected == 0 {
		return ErrNotFound
	}
	return nil
}

// GetIntegration reads one integration.
func GetIntegration(ctx context.Context, db *gorm.DB, id int64) (*Integration, error) {
	var in Integration
	if err := db.WithContext(ctx).Take(&in, id).Error; err != nil {
		return nil, Classify(err)
	}
	return &in, nil
}

// GetIntegrationForUpdate reads one integration inside a transaction and, on PostgreSQL, locks it
// until the transaction ends, so that two updates of its secrets (which merge per key) serialise.
func GetIntegrationForUpdate(ctx context.Context, tx *gorm.DB, id int64) (*Integration, error) {
	var in Integration
	if err := forUpdate(tx.WithContext(ctx)).Where("id = ?", id).Take(&in).Error; err != nil {
		return nil, Classify(err)
	}
	return &in, nil
}

// GetIntegrationByName finds an integration by provider and exact name.
func GetIntegrationByName(ctx context.Context, db *gorm.DB, provider, name string) (*Integration, error) {
	var in Integration
	if err := db.WithContext(ctx).Where("provider = ? AND name = ?", provider, name).Take(&in).Error; err != nil {
		return nil, Classify(err)
	}
	return &in, nil
}

// IntegrationFilter is a page request over integrations.
type IntegrationFilter struct {
	Provider string
	IsActive *bool
	Sort     []string // signed keys from the contract's allow-list, e.g. "-created_at"
	Page     int
	PageSize int
}

var integrationSortColumns = map[string]string{"name": "name", "created_at": "created_at"}

// ListIntegrations returns one page of integrations (without their ciphertext) and the total.
func ListIntegrations(ctx context.Context, db *gorm.DB, f IntegrationFilter) ([]Integration, int64, error) {
	q := db.WithContext(ctx).Model(&Integration{})
	if f.Provider != "" {
		q = q.Where("provider = ?", f.Provider)
	}
	if f.IsActive != nil {
		q = q.Where("is_active = ?", *f.IsActive)
	}
	var total int64
	if err := q.Count(&total).Error; err != nil {
		return nil, 0, Classify(err)
	}
	var rows []Integration
	err := paginate(q.Omit("secrets_ciphertext").Order(orderBy(f.Sort, integrationSortColumns, "name", "id")), f.Page, f.PageSize).Find(&rows).Error
	return rows, total, Classify(err)
}

// ClearDefaultIntegration unsets is_default on the provider's other integrations; call it in the
// transaction that makes one the default, before saving it.
func ClearDefaultIntegration(ctx context.Context, tx *gorm.DB, provider string, exceptID int64) error {
	err := tx.WithContext(ctx).Model(&Integration{}).Where("provider = ? AND is_default AND id <> ?", provider, exceptID).
		Updates(map[string]any{"is_default": false, "updated_at": Now()}).Error
	return Classify(err)
}

// HasDefaultIntegration reports whether the provider has an active default integration.
func HasDefaultIntegration(ctx context.Context, db *gorm.DB, provider string) (bool, error) {
	var n int64
	err := db.WithContext(ctx).Model(&Integration{}).Where("provider = ? AND is_default AND is_active", provider).Count(&n).Error
	return n > 0, Classify(err)
}

// ActiveIntegrationFor picks the integration whose credentials a provider's calls use: the active
// default one, else the most recently created active one; ErrNotFound when the provider has none.
func ActiveIntegrationFor(ctx context.Context, db *gorm.DB, provider string) (*Integration, error) {
	var in Integration
	err := db.WithContext(ctx).Where("provider = ? AND is_active", provider).
		Order("is_default DESC, created_at DESC, id DESC").Take(&in).Error
	if err != nil {
		return nil, Classify(err)
	}
	return &in, nil
}

// SetIntegrationVerified records the outcome of a live check.
func SetIntegrationVerified(ctx context.Context, db *gorm.DB, id int64, status string, at time.Time) error {
	res := db.WithContext(ctx).Model(&Integration{}).Where("id = ?", id).
		Updates(map[string]any{"status": status, "last_verified_at": at, "updated_at": at})
	if res.Error != nil {
		return Classify(res.Error)
	}
	if res.RowsAffected == 0 {
		return ErrNotFound
	}
	return nil
}

// DeleteIntegration deletes an integration; call it in a transaction.
func DeleteIntegration(ctx context.Context, tx *gorm.DB, id int64) error {
	res := tx.WithContext(ctx).Delete(&Integration{}, id)
	if res.Error != nil {
		return Classify(res.Error)
	}
	if res.RowsAffected == 0 {
		return ErrNotFound
	}
	return nil
}

// SealedSecrets is an integration's ciphertext, as a key rotation reads it.
type SealedSecrets struct {
	ID         int64
	Ciphertext string
}

// IntegrationsNotSealedWith returns up to limit integrations after afterID (by id) whose ciphertext
// does not start with prefix (the current key's "v1:<key id>:"); prefix holds no LIKE wildcards.
func IntegrationsNotSealedWith(ctx context.Context, db *gorm.DB, prefix string, afterID int64, limit int) ([]SealedSecrets, error) {
	var rows []struct {
		ID                int64
		SecretsCiphertext string
	}
	err := db.WithContext(ctx).Model(&Integration{}).Select("id, secrets_ciphertext").
		Where("id > ? AND secrets_ciphertext IS NOT NULL AND secrets_ciphertext NOT LIKE ?", afterID, prefix+"%").
		Order("id").Limit(limit).Scan(&rows).Error
	out := make([]SealedSecrets, len(rows))
	for i, r := range rows {
		out[i] = SealedSecrets{ID: r.ID, Ciphertext: r.SecretsCiphertext}
	}
	return out, Classify(err)
}

// ReplaceIntegrationCiphertext swaps one ciphertext for another only when the row still holds the
// old one (a concurrent update wins), leaving updated_at alone: re-sealing changes no value. It
// reports whether the row was updated.
func ReplaceIntegrationCiphertext(ctx context.Context, db *gorm.DB, id int64, old, replacement string) (bool, error) {
	res := db.WithContext(ctx).Model(&Integration{}).Where("id = ? AND secrets_ciphertext = ?", id, old).
		UpdateColumn("secrets_ciphertext", replacement)
	return res.RowsAffected == 1, Classify(res.Error)
}
