package adminapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"fairway/fairq"
	"fairway/tenant"
)

// Error codes of the JSON error body. Each goes with one HTTP status; see
// statusOf.
const (
	CodeNotFound     = "not_found"    // 404
	CodeExists       = "exists"       // 409
	CodeInvalid      = "invalid"      // 400 (413 for a body over the limit)
	CodeInFlight     = "in_flight"    // 409
	CodeUnauthorized = "unauthorized" // 401
	CodeForbidden    = "forbidden"    // 403: allowed over the admin socket only
	CodeInternal     = "internal"     // 500; the details are in the daemon's log
)

// Error is the body of every non-2xx response, and what Client returns when
// the daemon refuses a request.
type Error struct {
	// Status is the HTTP status; not part of the body.
	Status  int    `json:"-"`
	Message string `json:"error"`
	Code    string `json:"code"`
	// Lines lists every bad line of a refused import, in file order.
	Lines []LineError `json:"lines,omitempty"`
}

// LineError is one bad line of a refused import.
type LineError struct {
	Line  int    `json:"line"`
	Error string `json:"error"`
}

// Error returns the message and, for an import, one line per bad line.
func (e *Error) Error() string {
	if len(e.Lines) == 0 {
		return e.Message
	}
	var b strings.Builder
	b.WriteString(e.Message)
	for _, l := range e.Lines {
		fmt.Fprintf(&b, "\nline %d: %s", l.Line, l.Error)
	}
	return b.String()
}

// errorf makes an API error with a status and code chosen by the handler.
func errorf(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// internalMessage is all a client learns of an internal error.
const internalMessage = "internal error; the details are in the daemon's log"

// toError maps an error from the directory, the queue or a handler to what
// the client is told. This is the one place where internal errors become
// replies: anything not recognized is internal, and its text stays in the
// log.
func toError(err error) (apiErr *Error, internal bool) {
	var ae *Error
	if errors.As(err, &ae) {
		return ae, false
	}
	var ie *tenant.ImportError
	if errors.As(err, &ie) {
		e := &Error{Status: http.StatusBadRequest, Code: CodeInvalid,
			Message: fmt.Sprintf("%d bad line(s), nothing imported", len(ie.Lines)),
			Lines:   make([]LineError, 0, len(ie.Lines))}
		for _, l := range ie.Lines {
			e.Lines = append(e.Lines, LineError{Line: l.Line, Error: l.Err.Error()})
		}
		return e, false
	}
	switch {
	case errors.Is(err, tenant.ErrNotFound), errors.Is(err, fairq.ErrNotFound):
		return &Error{Status: http.StatusNotFound, Code: CodeNotFound, Message: err.Error()}, false
	case errors.Is(err, tenant.ErrExists):
		return &Error{Status: http.StatusConflict, Code: CodeExists, Message: err.Error()}, false
	case errors.Is(err, tenant.ErrInvalid):
		return &Error{Status: http.StatusBadRequest, Code: CodeInvalid, Message: err.Error()}, false
	case errors.Is(err, fairq.ErrInFlight):
		return &Error{Status: http.StatusConflict, Code: CodeInFlight, Message: err.Error()}, false
	}
	return &Error{Status: http.StatusInternalServerError, Code: CodeInternal, Message: internalMessage}, true
}

// writeError sends err as a JSON error body; internal errors are logged with
// the request (and attrs, such as the tenant) and replaced by a generic
// message.
func writeError(log *slog.Logger, w http.ResponseWriter, r *http.Request, err error, attrs ...any) {
	e, internal := toError(err)
	if internal {
		log.Error("admin request failed", append([]any{"method", r.Method, "path", r.URL.Path, "err", err}, attrs...)...)
	}
	writeJSON(w, e.Status, e)
}

// writeJSON sends v as the JSON body with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // the client went away, or v is ours and encodes
}
