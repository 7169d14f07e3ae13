//go:build !unix

package mailstore

import "os"

func readMessageFile(path string, sizeHint int64) ([]byte, error) { return os.ReadFile(path) }
