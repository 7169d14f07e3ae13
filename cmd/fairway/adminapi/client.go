package adminapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// clientTimeout bounds one CLI request, an import of many mailboxes
// included.
const clientTimeout = 10 * time.Minute

// maxResponseBytes bounds what the client reads of an answer.
const maxResponseBytes = 256 << 20

// Client calls the API over the admin socket, as the CLI does.
type Client struct {
	socketPath string
	http       *http.Client
}

// NewClient returns a client of the daemon listening on socketPath.
func NewClient(socketPath string) *Client {
	var d net.Dialer
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, "unix", socketPath)
		},
		DisableCompression: true,
	}
	return &Client{socketPath: socketPath, http: &http.Client{Transport: tr, Timeout: clientTimeout}}
}

// UnreachableError means no daemon answered on the socket.
type UnreachableError struct {
	Socket string
	Err    error
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("cannot reach the daemon on %s: is `fairway serve` running? (%v)", e.Socket, e.Err)
}

func (e *UnreachableError) Unwrap() error { return e.Err }

// Do sends a request with an optional body (a value to encode as JSON, or an
// io.Reader sent as it is) and returns the raw JSON answer. A refusal is an
// *Error; a daemon that cannot be reached is an *UnreachableError.
func (c *Client) Do(ctx context.Context, method, path string, body any) ([]byte, error) {
	var rd io.Reader
	contentType := ""
	switch b := body.(type) {
	case nil:
	case io.Reader:
		rd, contentType = b, "text/csv"
	default:
		buf, err := json.Marshal(b)
		if err != nil {
			return nil, fmt.Errorf("encoding the request: %w", err)
		}
		rd, contentType = bytes.NewReader(buf), "application/json"
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://fairway"+path, rd)
	if err != nil {
		return nil, fmt.Errorf("request %s %s: %w", method, path, err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		var opErr *net.OpError
		if errors.As(err, &opErr) && opErr.Op == "dial" {
			return nil, &UnreachableError{Socket: c.socketPath, Err: opErr.Err}
		}
		return nil, fmt.Errorf("admin API %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return nil, fmt.Errorf("admin API %s %s: reading the answer: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		e := &Error{}
		if err := json.Unmarshal(raw, e); err != nil || e.Message == "" {
			return raw, fmt.Errorf("admin API %s %s: %s", method, path, resp.Status)
		}
		e.Status = resp.StatusCode
		return raw, e
	}
	return raw, nil
}

// Call is Do, decoding the answer into out (if not nil).
func (c *Client) Call(ctx context.Context, method, path string, body, out any) ([]byte, error) {
	raw, err := c.Do(ctx, method, path, body)
	if err != nil || out == nil {
		return raw, err
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return raw, fmt.Errorf("admin API %s %s: decoding the answer: %w", method, path, err)
	}
	return raw, nil
}
