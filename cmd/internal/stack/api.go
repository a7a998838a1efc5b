package stack

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// APIError is a non-2xx answer from Kapacitor's API. Message is Kapacitor's
// own "error" text, verbatim.
type APIError struct {
	Op      string
	Status  int
	Message string
}

// Error returns a message like "define task t: kapacitor answered 400: ...".
func (e *APIError) Error() string {
	return fmt.Sprintf("%s: kapacitor answered %d: %s", e.Op, e.Status, e.Message)
}

// do sends a request to the API and decodes a JSON answer into out (if not nil).
func (k *Kapacitord) do(ctx context.Context, op, method, path string, body io.Reader, contentType string, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, k.URL+path, body)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := k.client.Do(req)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("%s: reading answer: %w", op, err)
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error string `json:"error"`
		}
		msg := strings.TrimSpace(string(data))
		if json.Unmarshal(data, &e) == nil && e.Error != "" {
			msg = e.Error
		}
		return &APIError{Op: op, Status: resp.StatusCode, Message: msg}
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("%s: decoding answer %q: %w", op, data, err)
		}
	}
	return nil
}

// Write sends line-protocol points (nanosecond timestamps) to kapacitord
// for database db and retention policy rp.
func (k *Kapacitord) Write(db, rp, lineProtocol string) error {
	q := url.Values{"db": {db}, "rp": {rp}, "precision": {"ns"}}
	return k.do(context.Background(), "write points", http.MethodPost, "/kapacitor/v1/write?"+q.Encode(), strings.NewReader(lineProtocol), "text/plain", nil)
}
