package media

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Cloudinary stores media through Cloudinary's signed Upload API (POST
// {base}/v1_1/{cloud}/{resource_type}/upload and …/destroy) and reads assets through the Admin API
// (GET {base}/v1_1/{cloud}/resources/{resource_type}/upload/{public_id}, basic auth).
type Cloudinary struct {
	BaseURL, CloudName, APIKey, APISecret string
	Client                                *http.Client
	Now                                   func() time.Time
}

// NewCloudinary builds the driver; uploads may take up to two minutes.
func NewCloudinary(baseURL, cloud, key, secret string) *Cloudinary {
	return &Cloudinary{BaseURL: strings.TrimRight(baseURL, "/"), CloudName: cloud, APIKey: key, APISecret: secret,
		Client: &http.Client{Timeout: 2 * time.Minute}, Now: time.Now}
}

func (c *Cloudinary) Name() string    { return "cloudinary" }
func (c *Cloudinary) TempDir() string { return os.TempDir() }

// Sign is Cloudinary's request signature: the parameters (without file, cloud_name, resource_type
// and api_key; empty values dropped) sorted by name, joined as k=v with &, followed by the API
// secret, SHA-1 in hex.
func Sign(params map[string]string, secret string) string {
	keys := make([]string, 0, len(params))
	for k, v := range params {
		switch k {
		case "file", "cloud_name", "resource_type", "api_key", "signature":
			continue
		}
		if v != "" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + params[k]
	}
	sum := sha1.Sum([]byte(strings.Join(parts, "&") + secret))
	return hex.EncodeToString(sum[:])
}

// SignedParams are the parameters of a direct browser upload into folder.
type SignedParams struct {
	Signature string
	Timestamp int64
	APIKey    string
	CloudName string
	Folder    string
}

// SignUpload signs a direct upload into folder, now.
func (c *Cloudinary) SignUpload(folder string) SignedParams {
	ts := c.Now().Unix()
	sig := Sign(map[string]string{"folder": folder, "timestamp": strconv.FormatInt(ts, 10)}, c.APISecret)
	return SignedParams{Signature: sig, Timestamp: ts, APIKey: c.APIKey, CloudName: c.CloudName, Folder: folder}
}

// Asset is the part of Cloudinary's upload and resource JSON we use.
type Asset struct {
	PublicID         string `json:"public_id"`
	Version          int64  `json:"version"`
	Format           string `json:"format"`
	ResourceType     string `json:"resource_type"`
	Type             string `json:"type"`
	Bytes            int64  `json:"bytes"`
	Width            *int   `json:"width"`
	Height           *int   `json:"height"`
	URL              string `json:"url"`
	SecureURL        string `json:"secure_url"`
	Folder           string `json:"folder"`
	AssetFolder      string `json:"asset_folder"`
	OriginalFilename string `json:"original_filename"`
}

// Put streams the spooled file to the signed Upload API (never the whole file in memory).
func (c *Cloudinary) Put(ctx context.Context, u *Upload) (Stored, error) {
	if _, err := u.File.Seek(0, io.SeekStart); err != nil {
		return Stored{}, err
	}
	params := map[string]string{
		"folder":    u.Folder,
		"public_id": randomName(16),
		"timestamp": strconv.FormatInt(c.Now().Unix(), 10),
	}
	params["signature"] = Sign(params, c.APISecret)
	params["api_key"] = c.APIKey

	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() {
		err := func() error {
			for _, k := range []string{"api_key", "folder", "public_id", "timestamp", "signature"} {
				if err := mw.WriteField(k, params[k]); err != nil {
					return err
				}
			}
			fw, err := mw.CreateFormFile("file", "upload."+u.Kind.Format)
			if err != nil {
				return err
			}
			if _, err := io.Copy(fw, u.File); err != nil {
				return err
			}
			return mw.Close()
		}()
		pw.CloseWithError(err)
	}()
	endpoint := fmt.Sprintf("%s/v1_1/%s/%s/upload", c.BaseURL, url.PathEscape(c.CloudName), u.Kind.ResourceType)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, pr)
	if err != nil {
		pr.CloseWithError(err)
		return Stored{}, err
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	var a Asset
	if err := c.do(req, &a); err != nil {
		pr.CloseWithError(err)
		return Stored{}, err
	}
	if a.PublicID == "" || a.SecureURL == "" {
		return Stored{}, fmt.Errorf("%w: cloudinary answered without public_id or secure_url", ErrUnavailable)
	}
	w, h := a.Width, a.Height
	if w == nil || h == nil {
		w, h = u.Width, u.Height
	}
	return Stored{PublicID: a.PublicID, URL: a.URL, SecureURL: a.SecureURL, Bytes: u.Size, Width: w, Height: h}, nil
}

// Delete destroys an asset; one already gone ("not found") is not an error.
func (c *Cloudinary) Delete(ctx context.Context, publicID, _, resourceType string) error {
	params := map[string]string{"public_id": publicID, "timestamp": strconv.FormatInt(c.Now().Unix(), 10)}
	params["signature"] = Sign(params, c.APISecret)
	params["api_key"] = c.APIKey
	form := url.Values{}
	for k, v := range params {
		form.Set(k, v)
	}
	endpoint := fmt.Sprintf("%s/v1_1/%s/%s/destroy", c.BaseURL, url.PathEscape(c.CloudName), resourceType)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	var out struct {
		Result string `json:"result"`
	}
	if err := c.do(req, &out); err != nil {
		return err
	}
	if out.Result != "ok" && out.Result != "not found" {
		return fmt.Errorf("%w: cloudinary destroy answered %q", ErrUnavailable, out.Result)
	}
	return nil
}

// ErrAssetNotFound is an asset Cloudinary does not have.
var ErrAssetNotFound = errors.New("cloudinary asset not found")

// Resource reads an uploaded asset through the Admin API, trying each resource type.
func (c *Cloudinary) Resource(ctx context.Context, publicID string) (*Asset, error) {
	for _, rt := range []string{"image", "video", "raw"} {
		endpoint := fmt.Sprintf("%s/v1_1/%s/resources/%s/upload/%s", c.BaseURL, url.PathEscape(c.CloudName), rt, escapePublicID(publicID))
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint, nil)
		if err != nil {
			return nil, err
		}
		req.SetBasicAuth(c.APIKey, c.APISecret)
		var a Asset
		err = c.do(req, &a)
		if errors.Is(err, ErrAssetNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		return &a, nil
	}
	return nil, ErrAssetNotFound
}

func escapePublicID(id string) string {
	parts := strings.Split(id, "/")
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	return strings.Join(parts, "/")
}

// do sends a request and decodes a 2xx JSON answer into out. 404 is ErrAssetNotFound; anything else
// is ErrUnavailable with Cloudinary's message (which never holds our secret).
func (c *Cloudinary) do(req *http.Request, out any) error {
	resp, err := c.Client.Do(req)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, redactErr(err))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	if resp.StatusCode == http.StatusNotFound {
		return ErrAssetNotFound
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error struct {
				Message string `json:"message"`
			} `json:"error"`
		}
		_ = json.Unmarshal(body, &e)
		return fmt.Errorf("%w: cloudinary answered %d: %s", ErrUnavailable, resp.StatusCode, e.Error.Message)
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("%w: cloudinary answer: %v", ErrUnavailable, err)
	}
	return nil
}

// redactErr drops the URL of a transport error (basic auth is in a header, but keep it short).
func redactErr(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
