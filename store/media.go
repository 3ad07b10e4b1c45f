package store

import (
	"context"
	"time"

	"gorm.io/gorm"
)

// The media storage drivers (PRODUCT §5.15).
const (
	MediaStorageLocal      = "local"
	MediaStorageCloudinary = "cloudinary"
)

// Media is one uploaded file, mirroring migrations/*/00009_media.sql. PublicID is the storage's id
// (wataomi/<user_id>/<name>); FileKey is the local driver's file name (32 random bytes in base64url
// plus the extension), nil for Cloudinary. MimeType was sniffed from the bytes.
type Media struct {
	ID           int64     `gorm:"column:id;primaryKey"`
	Storage      string    `gorm:"column:storage;not null"`
	PublicID     string    `gorm:"column:public_id;not null"`
	FileKey      *string   `gorm:"column:file_key"`
	URL          string    `gorm:"column:url;not null"`
	SecureURL    string    `gorm:"column:secure_url;not null"`
	ResourceType string    `gorm:"column:resource_type;not null"`
	Format       string    `gorm:"column:format;not null"`
	MimeType     string    `gorm:"column:mime_type;not null"`
	Width        *int      `gorm:"column:width"`
	Height       *int      `gorm:"column:height"`
	Bytes        int64     `gorm:"column:bytes;not null"`
	Filename     string    `gorm:"column:filename;not null"`
	UploadedBy   int64     `gorm:"column:uploaded_by;not null"`
	CreatedAt    time.Time `gorm:"column:created_at;not null"`
}

func (Media) TableName() string { return "media" }

// CreateMedia inserts a media row (CreatedAt defaults to Now). A duplicate (storage, public_id) is
// ErrConflict.
func CreateMedia(ctx context.Context, db *gorm.DB, m *Media) error {
	if m.CreatedAt.IsZero() {
		m.CreatedAt = Now()
	}
	return Classify(db.WithContext(ctx).Create(m).Error)
}

// GetMedia reads one media row.
func GetMedia(ctx context.Context, db *gorm.DB, id int64) (*Media, error) {
	var m Media
	if err := db.WithContext(ctx).Take(&m, id).Error; err != nil {
		return nil, Classify(err)
	}
	return &m, nil
}

// GetMediaByFileKey finds the local driver's row for a file key.
func GetMediaByFileKey(ctx context.Context, db *gorm.DB, key string) (*Media, error) {
	var m Media
	if err := db.WithContext(ctx).Where("storage = ? AND file_key = ?", MediaStorageLocal, key).Take(&m).Error; err != nil {
		return nil, Classify(err)
	}
	return &m, nil
}

// GetMediaByPublicID finds a row by its storage and public id.
func GetMediaByPublicID(ctx context.Context, db *gorm.DB, storage, publicID string) (*Media, error) {
	var m Media
	if err := db.WithContext(ctx).Where("storage = ? AND public_id = ?", storage, publicID).Take(&m).Error; err != nil {
		return nil, Classify(err)
	}
	return &m, nil
}

// MediaFilter is a page request over media.
type MediaFilter struct {
	UploadedBy   int64 // 0: everyone's
	ResourceType string
	Sort         []string // signed keys from the contract's allow-list
	Page         int
	PageSize     int
}

var mediaSortColumns = map[string]string{"created_at": "created_at"}

// ListMedia returns one page of media and the total.
func ListMedia(ctx context.Context, db *gorm.DB, f MediaFilter) ([]Media, int64, error) {
	q := db.WithContext(ctx).Model(&Media{})
	if f.UploadedBy != 0 {
		q = q.Where("uploaded_by = ?", f.UploadedBy)
	}
	if f.ResourceType != "" {
		q = q.Where("resource_type = ?", f.ResourceType)
	}
	var total int64
	if err := q.Count(&total).Error; err != nil {
		return nil, 0, Classify(err)
	}
	var rows []Media
	err := paginate(q.Order(orderBy(f.Sort, mediaSortColumns, "-created_at", "id")), f.Page, f.PageSize).Find(&rows).Error
	return rows, total, Classify(err)
}

// DeleteMedia deletes one row; an unknown id is ErrNotFound.
func DeleteMedia(ctx context.Context, db *gorm.DB, id int64) error {
	res := db.WithContext(ctx).Delete(&Media{}, id)
	if res.Error != nil {
		return Classify(res.Error)
	}
	if res.RowsAffected == 0 {
		return ErrNotFound
	}
	return nil
}
