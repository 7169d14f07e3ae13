package fairq

import (
	"log/slog"
	"time"
)

// Options configure a Queue. The zero value is usable.
type Options struct {
	Logger *slog.Logger
	MaxAge time.Duration
}

// Queue is the durable spool and the tenant-fair scheduler.
type Queue struct{}

// Open opens (creating if needed) the queue stored in dir.
func Open(dir string, opts Options) (*Queue, error) { return &Queue{}, nil }

// Close flushes and closes the queue.
func (q *Queue) Close() error { return nil }
